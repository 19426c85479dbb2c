"""The InfoPro MixVisionTransformer: SegFormer's MiT (B0-B5) cut into local modules."""
import math
from typing import List

from mmseg.models.backbones import MixVisionTransformer
from mmseg.registry import MODELS
from torch import nn

from ...errors import ConfigError
from .infopro_backbone import InfoProBackbone
from .token_maps import TokenBlockUnit, tokens_to_map


class MiTPatchEmbedUnit(nn.Module):
    """A MiT stage's overlapping patch embedding (conv and norm), map in, map out.

    Args:
        patch_embed: mmseg's ``PatchEmbed`` of the stage (``layers.<stage>.0``).
    """

    def __init__(self, patch_embed: nn.Module):
        super().__init__()
        self.patch_embed = patch_embed

    def forward(self, x):
        return tokens_to_map(*self.patch_embed(x))


@MODELS.register_module()
class InfoProMixVisionTransformer(InfoProBackbone, MixVisionTransformer):
    """SegFormer's MixVisionTransformer cut into K local modules.

    mmseg keeps stage ``i`` as ``layers.<i>`` = (patch embedding, blocks, norm). The units, named
    by these module paths: ``'layers.<i>.0'`` (the stage's patch embedding) and
    ``'layers.<i>.1.<j>'`` (its block ``j``); the stage's norm and the reshape to NCHW close its
    last block's unit, so every unit hands an NCHW map to the next and the stage output is the
    last unit's output. MiT-B5 (``num_layers=[3, 6, 40, 3]``) thus has 56 units, e.g.
    ``split_points=['layers.2.1.9']`` cuts after the tenth block of stage 2. ``forward``, the
    parameters (names included), drop-path rates, ``with_cp`` and ``init_cfg`` are mmseg's.

    Args:
        split_points: Where to cut (see :mod:`infopro_seg.models.splits`).
        **kwargs: mmseg ``MixVisionTransformer`` arguments.
    """

    def _unit_names(self) -> List[str]:
        if min(self.num_layers) < 1:
            raise ConfigError(f'InfoProMixVisionTransformer needs at least one block per stage, '
                              f'got num_layers={list(self.num_layers)}')
        names = []
        for stage, depth in enumerate(self.num_layers):
            names += [f'layers.{stage}.0'] + [f'layers.{stage}.1.{j}' for j in range(depth)]
        return names

    def _units(self) -> List[nn.Module]:
        units = []
        for patch_embed, blocks, norm in self.layers:
            units.append(MiTPatchEmbedUnit(patch_embed))
            units += [TokenBlockUnit(block, norm=norm if j == len(blocks) - 1 else None)
                      for j, block in enumerate(blocks)]
        return units

    def stage_end_unit(self, stage: int) -> int:
        """Index of the unit that ends stage ``stage`` (its last block, norm included)."""
        if not 0 <= stage < self.num_stages:
            raise ConfigError(f'{type(self).__name__} has no stage {stage} (stages 0-'
                              f'{self.num_stages - 1})')
        return self.unit_names.index(f'layers.{stage}.1.{self.num_layers[stage] - 1}')

    def _unit_stage(self, index: int) -> int:
        return int(self.unit_names[index].split('.')[1])

    def unit_out_channels(self, index: int) -> int:
        """Channels of the feature leaving unit ``index``: the stage's embedding width."""
        return self.embed_dims * self.num_heads[self._unit_stage(index)]

    def unit_out_stride(self, index: int) -> int:
        """Down-sampling factor of the feature leaving unit ``index``."""
        return math.prod(self.strides[:self._unit_stage(index) + 1])
