"""The InfoPro ResNet: an mmseg ResNet that knows where it is cut into local modules."""
import math
from typing import Dict, List, Sequence, Tuple, Union

import torch
from mmseg.models.backbones import ResNet
from mmseg.registry import MODELS
from torch import nn

from ..splits import SplitPoint, resolve_split_points

#: Stem and down-sampling variants of mmseg's ResNet family, as mmseg's subclasses set them.
RESNET_VARIANTS = {
    'ResNet': dict(deep_stem=False, avg_down=False),
    'ResNetV1c': dict(deep_stem=True, avg_down=False),
    'ResNetV1d': dict(deep_stem=True, avg_down=True),
}


class BackbonePart(nn.Module):
    """The contiguous run of backbone units that belongs to one local module.

    It holds references to the backbone's own sub-modules (it adds no parameters and no state-dict
    keys), so it can be wrapped on its own, e.g. by DDP, while the backbone keeps mmseg's names.

    Args:
        units: The units in forward order.
        stage_outputs: ``{position in units: position in the backbone's output tuple}`` for each
            unit that ends a stage listed in ``out_indices``.
    """

    def __init__(self, units: Sequence[nn.Module], stage_outputs: Dict[int, int]):
        super().__init__()
        self.units = nn.ModuleList(units)
        self.stage_outputs = stage_outputs

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Dict[int, torch.Tensor]]:
        """Run the units.

        Returns:
            tuple: The output of the last unit, and ``{output index: feature}`` for the backbone
            outputs (``out_indices``) produced inside this part.
        """
        outputs = {}
        for position, unit in enumerate(self.units):
            x = unit(x)
            if position in self.stage_outputs:
                outputs[self.stage_outputs[position]] = x
        return x, outputs


@MODELS.register_module()
class InfoProResNet(ResNet):
    """mmseg's ResNet (any depth, V1b/V1c/V1d, dilated) cut into K local modules.

    The network and its parameter names are exactly mmseg's (``forward`` is untouched), so
    ImageNet-pretrained weights and mmseg DeepLab-V3 checkpoints load unchanged. The cut only
    matters to :meth:`local_parts`, which the InfoPro segmentor runs one after another.

    Args:
        split_points: Where to cut (see :mod:`infopro_seg.models.splits`), e.g. ``['layer3.12']``
            or a preset name. Empty: one module, i.e. end-to-end training. ``'auto'`` is
            resolved by the segmentor (``model.split_planner``) before the backbone is built.
        variant: ``'ResNet'``, ``'ResNetV1c'`` (deep stem, as mmseg's DeepLab-V3) or
            ``'ResNetV1d'`` (deep stem, average-pool down-sampling).
        **kwargs: mmseg ``ResNet`` arguments (depth, dilations, strides, norm_cfg, ...).
    """

    def __init__(self,
                 split_points: Union[str, Sequence[SplitPoint]] = (),
                 variant: str = 'ResNet',
                 **kwargs):
        if variant not in RESNET_VARIANTS:
            raise ValueError(f'unknown ResNet variant {variant!r}; choose one of '
                             f'{sorted(RESNET_VARIANTS)}')
        if isinstance(split_points, str) and split_points == 'auto':
            raise ValueError("split_points='auto' is resolved by InfoProEncoderDecoder from "
                             'model.split_planner (see infopro_seg.planning); a backbone '
                             'built on its own needs explicit split points')
        super().__init__(**{**RESNET_VARIANTS[variant], **kwargs})
        self.variant = variant
        self.unit_names = self._unit_names()
        self.cuts = resolve_split_points(split_points, self.unit_names)
        self.split_points = [self.unit_names[i] for i in self.cuts]

    def train(self, mode: bool = True) -> 'InfoProResNet':
        """As mmseg's (frozen stages, norm_eval), but returns self like ``nn.Module.train``."""
        super().train(mode)
        return self

    @property
    def num_modules(self) -> int:
        """K, the number of local modules."""
        return len(self.cuts) + 1

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

    def module_ranges(self) -> List[Tuple[int, int]]:
        """``[start, end)`` unit indices of each local module."""
        bounds = [0] + [cut + 1 for cut in self.cuts] + [len(self.unit_names)]
        return list(zip(bounds[:-1], bounds[1:]))

    def stage_end_unit(self, stage: int) -> int:
        """Index of the unit that ends stage ``stage`` (0-based, as in ``out_indices``)."""
        return self.unit_names.index(f'layer{stage + 1}.{self.stage_blocks[stage] - 1}')

    def output_positions(self, in_index: Union[int, Sequence[int]]) -> List[int]:
        """Positions in the output tuple that a head with this ``in_index`` reads."""
        in_index = in_index if isinstance(in_index, (list, tuple)) else [in_index]
        return [i % len(self.out_indices) for i in in_index]

    def module_of_output(self, out_position: int) -> int:
        """The local module that produces the ``out_position``-th backbone output."""
        unit = self.stage_end_unit(self.out_indices[out_position])
        return next(k for k, (start, end) in enumerate(self.module_ranges()) if start <= unit < end)

    def local_parts(self) -> List[BackbonePart]:
        """One :class:`BackbonePart` per local module, built from the current sub-modules.

        Built on demand (it is cheap) so that module swaps made after construction, such as
        SyncBN conversion, are always seen.
        """
        units = self._units()
        output_of_unit = {self.stage_end_unit(stage): position
                          for position, stage in enumerate(self.out_indices)}
        return [BackbonePart(units[start:end],
                             {i - start: output_of_unit[i]
                              for i in range(start, end) if i in output_of_unit})
                for start, end in self.module_ranges()]

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

    @staticmethod
    def _stage_of(unit_name: str) -> int:
        return int(unit_name[len('layer'):unit_name.index('.')])

    def module_out_channels(self, module: int) -> int:
        """Channels of local module ``module``'s output."""
        return self.unit_out_channels(self.module_ranges()[module][1] - 1)

    def module_out_stride(self, module: int) -> int:
        """Output stride of local module ``module``'s output."""
        return self.unit_out_stride(self.module_ranges()[module][1] - 1)

    def describe_modules(self) -> str:
        """One line per local module: its units, output channels and stride (for logs)."""
        lines = []
        for k, (start, end) in enumerate(self.module_ranges()):
            lines.append(f'module {k + 1}: {self.unit_names[start]} .. {self.unit_names[end - 1]} '
                         f'({end - start} units, out {self.module_out_channels(k)} ch, '
                         f'stride {self.module_out_stride(k)})')
        return '\n'.join(lines)
