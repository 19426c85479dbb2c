"""What every InfoPro backbone shares: a list of units, the cuts between them, the local parts.

An *adapter* turns an mmseg backbone into an InfoPro backbone by subclassing it together with
:class:`InfoProBackbone` and saying how its ``forward`` divides into *units* (the pieces a cut may
fall between). It adds no parameters, buffers or sub-modules, so the state dict keeps mmseg's
names: ImageNet weights and mmseg model-zoo checkpoints load strictly, and a trained InfoPro
network loads into mmseg's own config of the same model. An adapter implements five things:

- ``_unit_names()``: the units in forward order, ``'stem.<i>'`` for the stem and
  ``'layer<stage>.<block>'`` for the blocks, with stages numbered as the backbone's attribute
  names (``layer1`` is stage 0 of ``out_indices``). Split points use these names.
- ``_units()``: the unit modules, in the same order, as references to the backbone's own
  sub-modules (wrap several of them in an ``nn.Sequential`` when one unit is several modules).
  Running them one after another must compute exactly what ``forward`` computes.
- ``unit_out_channels(i)`` and ``unit_out_stride(i)``: channels and down-sampling factor of the
  feature leaving unit ``i`` (the local heads at a cut there are built from them).
- ``out_indices`` (the mmseg backbone's attribute): which stages' last blocks are the outputs.

Stage ``s`` of ``out_indices`` ends at the last unit named ``layer<s + 1>.*``; an adapter whose
stages are named otherwise overrides :meth:`stage_end_unit` (the transformer adapters name units by
their module paths, e.g. ``'layers.2.1.5'``). A backbone whose stage output is computed from the
stage's last unit output rather than being it (Swin's per-stage norm) returns those computations
from ``_output_taps()``.
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ...errors import ConfigError
from ..splits import SplitPoint, resolve_split_points
from .host_schedules import HostSchedules


class BackbonePart(nn.Module):
    """The contiguous run of backbone units that belongs to one local module.

    It holds references to the backbone's own sub-modules (it adds no parameters and no state-dict
    keys), so it can be wrapped on its own, e.g. by DDP, while the backbone keeps mmseg's names.

    Args:
        units: The units in forward order.
        stage_outputs: ``{position in units: position in the backbone's output tuple}`` for each
            unit that ends a stage listed in ``out_indices``.
        output_taps: ``{position in units: module}`` for stage outputs that are not the unit's
            output itself but computed from it (Swin normalises a stage's output, while the
            next stage continues from the unnormalised tokens). Default: none.
    """

    def __init__(self, units: Sequence[nn.Module], stage_outputs: Dict[int, int],
                 output_taps: Optional[Dict[int, nn.Module]] = None):
        super().__init__()
        self.units = nn.ModuleList(units)
        self.stage_outputs = stage_outputs
        self.output_taps = nn.ModuleDict(
            {str(position): tap for position, tap in (output_taps or {}).items()})

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
                key = str(position)
                outputs[self.stage_outputs[position]] = (
                    self.output_taps[key](x) if key in self.output_taps else x)
        return x, outputs


class InfoProBackbone:
    """Mixin for an mmseg backbone cut into K local modules; list it before the mmseg class.

    Args:
        split_points: Where to cut (see :mod:`infopro_seg.models.splits`), e.g. ``['layer3.12']``
            or a preset name. Empty: one module, i.e. end-to-end training. ``'auto'`` is
            resolved by the segmentor (``model.split_planner``) before the backbone is built.
        **kwargs: The mmseg backbone's own arguments.
    """

    unit_names: List[str]
    cuts: List[int]

    def __init__(self, split_points: Union[str, Sequence[SplitPoint]] = (), **kwargs):
        if isinstance(split_points, str) and split_points == 'auto':
            raise ConfigError("split_points='auto' is resolved by InfoProEncoderDecoder from "
                              'model.split_planner (see infopro_seg.planning); a backbone built '
                              'on its own needs explicit split points')
        with HostSchedules():  # drop-path schedules are read with .item(), also on meta
            super().__init__(**kwargs)
        self.unit_names = self._unit_names()
        self.cuts = resolve_split_points(split_points, self.unit_names)
        self.split_points = [self.unit_names[i] for i in self.cuts]

    # What an adapter implements ---------------------------------------------------------------
    def _unit_names(self) -> List[str]:
        raise NotImplementedError

    def _units(self) -> List[nn.Module]:
        raise NotImplementedError

    def _output_taps(self) -> Dict[int, nn.Module]:
        """``{unit index: module}`` where a stage output is computed from the unit's output
        rather than being that output (see :class:`BackbonePart`); most backbones need none."""
        return {}

    def unit_out_channels(self, index: int) -> int:
        """Channels of the feature leaving unit ``index``."""
        raise NotImplementedError

    def unit_out_stride(self, index: int) -> int:
        """Down-sampling factor of the feature leaving unit ``index`` relative to the input."""
        raise NotImplementedError

    # Shared -----------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> 'InfoProBackbone':
        """As the mmseg backbone's (frozen stages, norm_eval), but returns self like
        ``nn.Module.train`` (some mmseg backbones return None)."""
        super().train(mode)
        return self

    @property
    def num_modules(self) -> int:
        """K, the number of local modules."""
        return len(self.cuts) + 1

    def stage_end_unit(self, stage: int) -> int:
        """Index of the unit that ends stage ``stage`` (0-based, as in ``out_indices``)."""
        prefix = f'layer{stage + 1}.'
        ends = [i for i, name in enumerate(self.unit_names) if name.startswith(prefix)]
        if not ends:
            raise ValueError(f'{type(self).__name__} has no stage {stage} (no unit {prefix}*)')
        return ends[-1]

    def module_ranges(self) -> List[Tuple[int, int]]:
        """``[start, end)`` unit indices of each local module."""
        bounds = [0] + [cut + 1 for cut in self.cuts] + [len(self.unit_names)]
        return list(zip(bounds[:-1], bounds[1:]))

    @property
    def num_outputs(self) -> int:
        """Length of the backbone's output tuple."""
        return len(self.out_indices)

    def output_unit(self, position: int) -> int:
        """The unit that produces the ``position``-th backbone output."""
        return self.stage_end_unit(self.out_indices[position])

    def module_of_output(self, out_position: int) -> int:
        """The local module that produces the ``out_position``-th backbone output."""
        unit = self.output_unit(out_position)
        return next(k for k, (start, end) in enumerate(self.module_ranges()) if start <= unit < end)

    def describe_outputs(self) -> str:
        """The output tuple, e.g. ``0: layer1.2 (256 ch, stride 4), 1: ...`` (for messages)."""
        parts = []
        for position in range(self.num_outputs):
            unit = self.output_unit(position)
            parts.append(f'{position}: {self.unit_names[unit]} ({self.unit_out_channels(unit)} '
                         f'ch, stride {self.unit_out_stride(unit)})')
        return ', '.join(parts)

    def local_parts(self) -> List[BackbonePart]:
        """One :class:`BackbonePart` per local module, built from the current sub-modules.

        Built on demand (it is cheap) so that module swaps made after construction, such as
        SyncBN conversion, are always seen.
        """
        units, taps = self._units(), self._output_taps()
        output_of_unit = {self.stage_end_unit(stage): position
                          for position, stage in enumerate(self.out_indices)}
        return [BackbonePart(units[start:end],
                             {i - start: output_of_unit[i]
                              for i in range(start, end) if i in output_of_unit},
                             {i - start: taps[i] for i in range(start, end) if i in taps})
                for start, end in self.module_ranges()]

    def module_out_channels(self, module: int) -> int:
        """Channels of local module ``module``'s output."""
        return self.unit_out_channels(self.module_ranges()[module][1] - 1)

    def module_out_stride(self, module: int) -> int:
        """Output stride of local module ``module``'s output."""
        return self.unit_out_stride(self.module_ranges()[module][1] - 1)

    def following_unit_copies(self, unit: int, depth: int) -> List[Tuple[nn.Module, int, int]]:
        """Freshly initialised copies of ``depth`` units evenly spaced after unit ``unit``.

        What AugLocal's auxiliary networks are made of: the primary network's own layers that
        follow a cut, sampled uniformly (the first and the last following unit are always among
        them), with their own parameters. Copies never checkpoint (``with_cp`` off).

        Args:
            unit: Index of the unit the cut follows.
            depth: How many units to copy (at most the number that follow).

        Returns:
            list: ``(copy, in_channels, out_channels)`` in network order; ``in_channels`` is what
            the original unit receives, so a caller can bridge skipped units.
        """
        following = list(range(unit + 1, len(self.unit_names)))
        if depth < 1 or not following:
            raise ValueError(f'cannot copy {depth} unit(s) after {self.unit_names[unit]}: '
                             f'{len(following)} unit(s) follow it (depth must be >= 1)')
        depth = min(depth, len(following))
        step = (len(following) - 1) / max(depth - 1, 1)  # >= 1: the picks are distinct
        chosen = [following[round(i * step)] for i in range(depth)]
        units, copies = self._units(), []
        for index in chosen:
            copied = copy.deepcopy(units[index])
            for sub in copied.modules():
                if hasattr(sub, 'with_cp'):
                    sub.with_cp = False
                if hasattr(sub, 'reset_parameters'):
                    sub.reset_parameters()
            copies.append((copied, self.unit_out_channels(index - 1),
                           self.unit_out_channels(index)))
        return copies

    def describe_modules(self) -> str:
        """One line per local module: its units, output channels and stride (for logs)."""
        lines = []
        for k, (start, end) in enumerate(self.module_ranges()):
            lines.append(f'module {k + 1}: {self.unit_names[start]} .. {self.unit_names[end - 1]} '
                         f'({end - start} units, out {self.module_out_channels(k)} ch, '
                         f'stride {self.module_out_stride(k)})')
        return '\n'.join(lines)

    @staticmethod
    def _stage_of(unit_name: str) -> int:
        """``'layer3.5'`` -> 3."""
        return int(unit_name[len('layer'):unit_name.index('.')])
