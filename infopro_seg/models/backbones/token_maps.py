"""Token sequences and feature maps: how transformer units hand one tensor to the next.

InfoPro's backbone parts pass one tensor between units, and the local heads read a module's
output as an NCHW feature map. Transformer blocks work on token sequences ``(N, H*W, C)`` and need
the spatial shape beside them. A transformer unit therefore receives and returns an NCHW map that
is a *view* of the tokens: :func:`tokens_to_map` is mmseg's ``nlc_to_nchw`` (a transpose and a
reshape, no copy where the layout allows) and :func:`map_to_tokens` undoes it to the very same
memory layout the tokens had. The blocks thus see exactly the tensors ``forward`` gives them, and
running the units in order computes bit for bit what the backbone's ``forward`` computes.
"""
from typing import Optional, Tuple

import torch
from mmseg.models.utils import nlc_to_nchw
from torch import nn


def tokens_to_map(tokens: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
    """``(N, H*W, C)`` tokens as an ``(N, C, H, W)`` map (a view where the layout allows).

    Args:
        tokens: The token sequence.
        hw_shape: ``(H, W)``.

    Returns:
        torch.Tensor: The feature map.
    """
    return nlc_to_nchw(tokens, hw_shape)


def map_to_tokens(feature: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """An ``(N, C, H, W)`` map as ``(N, H*W, C)`` tokens and ``(H, W)``.

    Unlike mmseg's ``nchw_to_nlc`` it never copies, so tokens that went through
    :func:`tokens_to_map` come back with their own strides.

    Args:
        feature: The feature map.

    Returns:
        tuple: The tokens and ``(H, W)``.
    """
    return feature.flatten(2).transpose(1, 2), (feature.shape[2], feature.shape[3])


class TokenBlockUnit(nn.Module):
    """A transformer block ``block(tokens, hw_shape) -> tokens`` as a map-in, map-out unit.

    Args:
        block: The block (mmseg's MiT ``TransformerEncoderLayer``, Swin ``SwinBlock``).
        merge: Run before the block: ``merge(tokens, hw_shape) -> (tokens, hw_shape)``, e.g. the
            previous Swin stage's ``PatchMerging``. Default: none.
        norm: Run after the block on its tokens, e.g. the norm that closes a MiT stage.
            Default: none.
    """

    def __init__(self, block: nn.Module, merge: Optional[nn.Module] = None,
                 norm: Optional[nn.Module] = None):
        super().__init__()
        self.block = block
        self.merge = merge
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, hw_shape = map_to_tokens(x)
        if self.merge is not None:
            tokens, hw_shape = self.merge(tokens, hw_shape)
        tokens = self.block(tokens, hw_shape)
        if self.norm is not None:
            tokens = self.norm(tokens)
        return tokens_to_map(tokens, hw_shape)
