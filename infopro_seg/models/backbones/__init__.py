from .infopro_backbone import BackbonePart, InfoProBackbone
from .infopro_mit import InfoProMixVisionTransformer
from .infopro_mobilenet_v2 import InfoProMobileNetV2
from .infopro_mscan import InfoProMSCAN
from .infopro_resnest import InfoProResNeSt
from .infopro_resnet import InfoProResNet
from .infopro_resnext import InfoProResNeXt
from .infopro_swin import InfoProSwinTransformer

__all__ = ['InfoProBackbone', 'BackbonePart', 'InfoProResNet', 'InfoProResNeXt', 'InfoProResNeSt',
           'InfoProMobileNetV2', 'InfoProMixVisionTransformer', 'InfoProSwinTransformer',
           'InfoProMSCAN']
