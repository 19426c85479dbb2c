from .infopro_backbone import BackbonePart, InfoProBackbone
from .infopro_mobilenet_v2 import InfoProMobileNetV2
from .infopro_resnest import InfoProResNeSt
from .infopro_resnet import InfoProResNet
from .infopro_resnext import InfoProResNeXt

__all__ = ['InfoProBackbone', 'BackbonePart', 'InfoProResNet', 'InfoProResNeXt', 'InfoProResNeSt',
           'InfoProMobileNetV2']
