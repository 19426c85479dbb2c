"""The InfoPro ResNet: an mmseg ResNet that knows where it is cut into local modules."""
import math
from typing import List, Sequence, Union

from mmseg.models.backbones import ResNet
from mmseg.registry import MODELS
from torch import nn

from ...errors import ConfigError
from ..splits import SplitPoint
from .infopro_backbone import BackbonePart, InfoProBackbone

__all__ = ['RESNET_VARIANTS', 'BackbonePart', 'ResNetUnits', 'InfoProResNet']

#: Stem and down-sampling variants of mmseg's ResNet family, as mmseg's subclasses set them.
RESNET_VARIANTS = {
    'ResNet': dict(deep_stem=False, avg_down=False),
    'ResNetV1c': dict(deep_stem=True, avg_down=False),
    'ResNetV1d': dict(deep_stem=True, avg_down=True),
}


class ResNetUnits(InfoProBackbone):
    """The unit listing of mmseg's ResNet family (ResNet, V1c/V1d, ResNeXt, ResNeSt).

    Units: the stem (one unit, conv-norm-ReLU-max-pool; or three for the deep stem, its three
    conv-norm-ReLU, the max-pool closing the last) and every residual block, named
    ``'stem.<i>'`` and ``'layer<stage>.<block>'`` as mmseg names the blocks.
    """

    def _unit_names(self) -> List[str]:
        names = [f'stem.{i}' for i in range(3 if self.deep_stem else 1)]
        for stage, num_blocks in enumerate(self.stage_blocks, start=1):
            names += [f'layer{stage}.{block}' for block in range(num_blocks)]
        return names

    def _units(self) -> List[nn.Module]:
        """The backbone's units, in forward order, as references to its own modules."""
        if self.deep_stem:
            # ``stem`` is conv-norm-ReLU three times; max-pool closes the stem.
            stem = [self.stem[0:3], self.stem[3:6], nn.Sequential(*self.stem[6:9], self.maxpool)]
        else:
            stem = [nn.Sequential(self.conv1, self.norm1, self.relu, self.maxpool)]
        blocks = [block for name in self.res_layers for block in getattr(self, name)]
        return stem + blocks

    def unit_out_channels(self, index: int) -> int:
        """Channels of the feature leaving unit ``index``."""
        name = self.unit_names[index]
        if name.startswith('stem.'):
            # The deep stem's first two convolutions have half the stem's channels.
            return self.stem_channels if name == self._last_stem_unit else self.stem_channels // 2
        return self.base_channels * 2**(self._stage_of(name) - 1) * self.block.expansion

    def unit_out_stride(self, index: int) -> int:
        """Down-sampling factor of the feature leaving unit ``index`` relative to the input."""
        name = self.unit_names[index]
        if name.startswith('stem.') and name != self._last_stem_unit:
            return 2  # after the first stem convolution, before the max-pool
        stride = 4  # stem convolution and max-pool
        if name.startswith('layer'):
            stride *= math.prod(self.strides[:self._stage_of(name)])
        return stride

    @property
    def _last_stem_unit(self) -> str:
        return f'stem.{2 if self.deep_stem else 0}'


@MODELS.register_module()
class InfoProResNet(ResNetUnits, ResNet):
    """mmseg's ResNet (any depth, V1b/V1c/V1d, dilated) cut into K local modules.

    The network and its parameter names are exactly mmseg's (``forward`` is untouched), so
    ImageNet-pretrained weights and mmseg DeepLab checkpoints load unchanged. The cut only
    matters to :meth:`local_parts`, which the InfoPro segmentor runs one after another.

    Args:
        split_points: Where to cut (see :mod:`infopro_seg.models.splits`), e.g. ``['layer3.12']``.
        variant: ``'ResNet'``, ``'ResNetV1c'`` (deep stem, as mmseg's DeepLab-V3) or
            ``'ResNetV1d'`` (deep stem, average-pool down-sampling).
        **kwargs: mmseg ``ResNet`` arguments (depth, dilations, strides, norm_cfg, ...).
    """

    def __init__(self,
                 split_points: Union[str, Sequence[SplitPoint]] = (),
                 variant: str = 'ResNet',
                 **kwargs):
        if variant not in RESNET_VARIANTS:
            raise ConfigError(f'unknown ResNet variant {variant!r}; choose one of '
                              f'{sorted(RESNET_VARIANTS)}')
        super().__init__(split_points=split_points, **{**RESNET_VARIANTS[variant], **kwargs})
        self.variant = variant
