from .infopro_resnet import BackbonePart, InfoProResNet

__all__ = ['InfoProResNet', 'BackbonePart']
