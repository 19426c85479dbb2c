"""The InfoPro MSCAN: SegNeXt's multi-scale convolutional attention network in local modules."""
import math
from typing import List, Optional, Tuple

import torch
from mmseg.models.backbones import MSCAN
from mmseg.registry import MODELS
from torch import nn

from ...errors import ConfigError
from .infopro_backbone import InfoProBackbone
from .token_maps import map_to_tokens, tokens_to_map


class MSCANPatchEmbedUnit(nn.Module):
    """An MSCAN stage's patch embedding (``StemConv`` or ``OverlapPatchEmbed``), map out.

    Args:
        patch_embed: The stage's ``patch_embed<i>``.
    """

    def __init__(self, patch_embed: nn.Module):
        super().__init__()
        self.patch_embed = patch_embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, height, width = self.patch_embed(x)
        return tokens_to_map(tokens, (height, width))


class MSCANBlockUnit(nn.Module):
    """An ``MSCABlock`` as a map-in, map-out unit; the stage's last one closes the stage.

    Args:
        block: The block (``block<i>.<j>``).
        norm: The stage's ``norm<i>`` for its last block (then the unit returns the stage's
            output as ``MSCAN.forward`` does: normalised, NCHW, contiguous), else ``None``.
    """

    def __init__(self, block: nn.Module, norm: Optional[nn.Module] = None):
        super().__init__()
        self.block = block
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, (height, width) = map_to_tokens(x)
        tokens = self.block(tokens, height, width)
        if self.norm is None:
            return tokens_to_map(tokens, (height, width))
        tokens = self.norm(tokens)
        return tokens.reshape(x.shape[0], height, width, -1).permute(0, 3, 1, 2).contiguous()


@MODELS.register_module()
class InfoProMSCAN(InfoProBackbone, MSCAN):
    """SegNeXt's MSCAN backbone cut into K local modules.

    Units, named by module path: ``'patch_embed<i>'`` (stage ``i``'s patch embedding, ``i`` from
    1 as mmseg names them; ``patch_embed1`` is the convolutional stem) and every block
    ``'block<i>.<j>'``; the stage's ``norm<i>`` and the reshape to NCHW close its last block's
    unit. MSCAN-B (``depths=[3, 3, 12, 3]``) has 25 units, e.g.
    ``split_points=['block3.5']``. MSCAN outputs every stage; ``out_indices`` (which mmseg's MSCAN
    does not take) reads ``(0, 1, 2, 3)``. ``forward``, the parameters and their names, drop-path
    rates and ``init_cfg`` are mmseg's.

    Args:
        split_points: Where to cut (see :mod:`infopro_seg.models.splits`).
        **kwargs: mmseg ``MSCAN`` arguments.
    """

    @property
    def out_indices(self) -> Tuple[int, ...]:
        """Every stage, as ``MSCAN.forward`` returns them."""
        return tuple(range(self.num_stages))

    def _unit_names(self) -> List[str]:
        names = []
        for stage in range(1, self.num_stages + 1):
            names.append(f'patch_embed{stage}')
            names += [f'block{stage}.{j}' for j in range(self.depths[stage - 1])]
        return names

    def _units(self) -> List[nn.Module]:
        units = []
        for stage in range(1, self.num_stages + 1):
            blocks, norm = getattr(self, f'block{stage}'), getattr(self, f'norm{stage}')
            units.append(MSCANPatchEmbedUnit(getattr(self, f'patch_embed{stage}')))
            units += [MSCANBlockUnit(block, norm if j == len(blocks) - 1 else None)
                      for j, block in enumerate(blocks)]
        return units

    def stage_end_unit(self, stage: int) -> int:
        """Index of the unit that ends stage ``stage`` (0-based; its last block, norm included)."""
        if not 0 <= stage < self.num_stages:
            raise ConfigError(f'{type(self).__name__} has no stage {stage} (stages 0-'
                              f'{self.num_stages - 1})')
        return self.unit_names.index(f'block{stage + 1}.{self.depths[stage] - 1}')

    def _unit_stage(self, index: int) -> int:
        """The 1-based stage of unit ``index``, as in its name."""
        name = self.unit_names[index].split('.')[0]
        return int(name[len('patch_embed'):] if name.startswith('patch_embed') else
                   name[len('block'):])

    def unit_out_channels(self, index: int) -> int:
        """Channels of the feature leaving unit ``index``: the stage's embedding width."""
        return getattr(self, f'norm{self._unit_stage(index)}').normalized_shape[0]

    def unit_out_stride(self, index: int) -> int:
        """Down-sampling factor of the feature leaving unit ``index``: the product of the patch
        embeddings' convolution strides up to its stage."""
        return math.prod(conv.stride[0] for stage in range(1, self._unit_stage(index) + 1)
                         for conv in getattr(self, f'patch_embed{stage}').modules()
                         if isinstance(conv, nn.Conv2d))
