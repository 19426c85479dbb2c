"""The InfoPro SwinTransformer: mmseg's Swin (T/S/B/L) cut into local modules."""
from typing import Dict, List, Optional

import torch
from mmseg.models.backbones import SwinTransformer
from mmseg.registry import MODELS
from torch import nn

from ...errors import ConfigError
from .infopro_backbone import InfoProBackbone
from .token_maps import TokenBlockUnit, map_to_tokens, tokens_to_map


class SwinPatchEmbedUnit(nn.Module):
    """Swin's patch embedding, absolute position embedding (if used) and dropout after it.

    Args:
        patch_embed: mmseg's ``PatchEmbed`` (``patch_embed``).
        drop_after_pos: The dropout after the position embedding (``drop_after_pos``).
        absolute_pos_embed: The backbone's ``absolute_pos_embed`` parameter (the same tensor,
            shared), or ``None`` when ``use_abs_pos_embed`` is off.
    """

    def __init__(self, patch_embed: nn.Module, drop_after_pos: nn.Module,
                 absolute_pos_embed: Optional[nn.Parameter] = None):
        super().__init__()
        self.patch_embed = patch_embed
        self.drop_after_pos = drop_after_pos
        self.absolute_pos_embed = absolute_pos_embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, hw_shape = self.patch_embed(x)
        if self.absolute_pos_embed is not None:
            tokens = tokens + self.absolute_pos_embed
        return tokens_to_map(self.drop_after_pos(tokens), hw_shape)


class SwinStageOutput(nn.Module):
    """What Swin outputs for a stage: its ``norm<i>`` on the last block's tokens, as NCHW.

    Args:
        norm: The stage's output norm (``norm<i>``).
    """

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, (height, width) = map_to_tokens(x)
        out = self.norm(tokens)
        return out.view(-1, height, width, out.shape[-1]).permute(0, 3, 1, 2).contiguous()


def _stride(value) -> int:
    return int(value[0] if isinstance(value, (tuple, list)) else value)


@MODELS.register_module()
class InfoProSwinTransformer(InfoProBackbone, SwinTransformer):
    """mmseg's Swin Transformer cut into K local modules.

    Units, named by module path: ``'patch_embed'`` (patch embedding, absolute position embedding
    when ``use_abs_pos_embed``, dropout) and every block ``'stages.<i>.blocks.<j>'``. A stage's
    output is its ``norm<i>`` applied to the tokens *before* the stage's patch merging
    (``stages.<i>.downsample``), while the next stage continues from the unnormalised tokens; so
    the tokens leave the stage's last block unnormalised (as an NCHW map: a cut after it hands
    the stage's own width and resolution to the local heads), the output norm runs beside them
    (:meth:`_output_taps`), and the patch merging opens the next stage's first block unit. Swin-B
    (``depths=[2, 2, 18, 2]``) has 25 units, e.g. ``split_points=['stages.2.blocks.5']``.
    ``forward``, the parameters and their names, window shifts, relative position bias tables,
    drop-path rates, ``with_cp``, ``frozen_stages`` and ``init_cfg`` are mmseg's.

    Args:
        split_points: Where to cut (see :mod:`infopro_seg.models.splits`).
        **kwargs: mmseg ``SwinTransformer`` arguments.
    """

    def _unit_names(self) -> List[str]:
        return ['patch_embed'] + [f'stages.{i}.blocks.{j}' for i, stage in enumerate(self.stages)
                                  for j in range(len(stage.blocks))]

    def _units(self) -> List[nn.Module]:
        pos_embed = self.absolute_pos_embed if self.use_abs_pos_embed else None
        units = [SwinPatchEmbedUnit(self.patch_embed, self.drop_after_pos, pos_embed)]
        for i, stage in enumerate(self.stages):
            merge = self.stages[i - 1].downsample if i > 0 else None
            units += [TokenBlockUnit(block, merge=merge if j == 0 else None)
                      for j, block in enumerate(stage.blocks)]
        return units

    def _output_taps(self) -> Dict[int, nn.Module]:
        return {self.stage_end_unit(i): SwinStageOutput(getattr(self, f'norm{i}'))
                for i in self.out_indices}

    def stage_end_unit(self, stage: int) -> int:
        """Index of the unit that ends stage ``stage`` (its last block)."""
        if not 0 <= stage < len(self.stages):
            raise ConfigError(f'{type(self).__name__} has no stage {stage} (stages 0-'
                              f'{len(self.stages) - 1})')
        return self.unit_names.index(f'stages.{stage}.blocks.{len(self.stages[stage].blocks) - 1}')

    def _unit_stage(self, index: int) -> int:
        name = self.unit_names[index]
        return 0 if name == 'patch_embed' else int(name.split('.')[1])

    def unit_out_channels(self, index: int) -> int:
        """Channels of the feature leaving unit ``index``: the stage's embedding width."""
        return self.num_features[self._unit_stage(index)]

    def unit_out_stride(self, index: int) -> int:
        """Down-sampling factor of the feature leaving unit ``index``."""
        stride = _stride(self.patch_embed.projection.stride)
        for stage in self.stages[:self._unit_stage(index)]:
            stride *= _stride(stage.downsample.sampler.stride)
        return stride
