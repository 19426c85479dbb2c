"""The InfoPro ResNeSt: mmseg's ResNeSt (split-attention bottlenecks) cut into local modules."""
from mmseg.models.backbones import ResNeSt
from mmseg.registry import MODELS

from .infopro_resnet import ResNetUnits


@MODELS.register_module()
class InfoProResNeSt(ResNetUnits, ResNeSt):
    """mmseg's ResNeSt (S-50/101/200; always the V1d deep stem) cut into K local modules.

    Its blocks are ResNet bottlenecks in ``layer1..layer4``, so the ResNet unit listing applies
    unchanged; for S-101 the stem is 64-64-128 channels (``stem_channels=128``).

    Args:
        split_points: Where to cut, e.g. ``['layer3.12']`` (see :mod:`infopro_seg.models.splits`).
        **kwargs: mmseg ``ResNeSt`` arguments (depth, stem_channels, radix, reduction_factor,
            avg_down_stride, dilations, strides, ...).
    """
