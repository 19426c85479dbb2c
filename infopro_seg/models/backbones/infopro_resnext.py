"""The InfoPro ResNeXt: mmseg's ResNeXt (grouped bottlenecks) cut into local modules."""
from mmseg.models.backbones import ResNeXt
from mmseg.registry import MODELS

from .infopro_resnet import ResNetUnits


@MODELS.register_module()
class InfoProResNeXt(ResNetUnits, ResNeXt):
    """mmseg's ResNeXt cut into K local modules: the ResNet unit listing, mmseg's parameters.

    Args:
        split_points: Where to cut, e.g. ``['layer3.12']`` (see :mod:`infopro_seg.models.splits`).
        **kwargs: mmseg ``ResNeXt`` arguments (depth, groups, base_width, deep_stem, avg_down,
            dilations, strides, ...).
    """
