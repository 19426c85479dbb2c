"""The InfoPro MobileNetV2: mmseg's MobileNetV2 (dilated or not) cut into local modules."""
import math
from typing import List

from mmseg.models.backbones import MobileNetV2
from mmseg.models.utils import make_divisible
from mmseg.registry import MODELS
from torch import nn

from .infopro_backbone import InfoProBackbone


@MODELS.register_module()
class InfoProMobileNetV2(InfoProBackbone, MobileNetV2):
    """mmseg's MobileNetV2 cut into K local modules.

    Units: ``'stem.0'`` (``conv1``, the stride-2 3x3 conv) and every inverted-residual block,
    named as mmseg names them: ``layer1.0`` .. ``layer7.0`` (seven stages of 1, 2, 3, 4, 3, 3, 1
    blocks). ``out_indices`` count these stages from 0, so mmseg's DeepLab configs'
    ``out_indices=(1, 2, 4, 6)`` are the ends of layer2, layer3, layer5 and layer7; e.g.
    ``split_points=['layer4.1']`` cuts after the second block of layer4.

    Args:
        split_points: Where to cut (see :mod:`infopro_seg.models.splits`).
        **kwargs: mmseg ``MobileNetV2`` arguments (widen_factor, strides, dilations,
            out_indices, norm_cfg, ...).
    """

    def _unit_names(self) -> List[str]:
        names = ['stem.0']
        for stage, (_, _, num_blocks) in enumerate(self.arch_settings, start=1):
            names += [f'layer{stage}.{block}' for block in range(num_blocks)]
        return names

    def _units(self) -> List[nn.Module]:
        return [self.conv1] + [block for name in self.layers for block in getattr(self, name)]

    def unit_out_channels(self, index: int) -> int:
        name = self.unit_names[index]
        if name == 'stem.0':
            return make_divisible(32 * self.widen_factor, 8)
        channels = self.arch_settings[self._stage_of(name) - 1][1]
        return make_divisible(channels * self.widen_factor, 8)

    def unit_out_stride(self, index: int) -> int:
        name = self.unit_names[index]
        if name == 'stem.0':
            return 2
        return 2 * math.prod(self.strides[:self._stage_of(name)])
