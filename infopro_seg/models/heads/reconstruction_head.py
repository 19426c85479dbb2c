"""The InfoPro reconstruction decoder w (Sec. 3.2: it keeps module k's feature informative
about the input image by reconstructing the image from it)."""
import math
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import nn

from ...errors import ConfigError
from .local_head import HeadBatch, ModuleOutputHeadMixin


@MODELS.register_module()
class ReconstructionHead(ModuleOutputHeadMixin, BaseModule):
    """Reconstructs the (de-normalised) input crop from a local module's feature.

    As in the paper's segmentation code: a 1x1 conv, then per x2 bilinear up-sampling a 3x3
    conv-norm-ReLU, the last 3x3 conv giving 3 channels at input resolution. For a feature at
    stride 8 and ``channels=(128, 32, 12)`` that is 1x1->128, up, 3x3->32, up, 3x3->12, up, 3x3->3.
    The layers run at up to full crop resolution, so they count towards the module's peak memory:
    keep the channels small.

    Args:
        in_channels: Channels of the local module's output (filled in by the segmentor).
        in_stride: Output stride of that feature, a power of two (filled in by the segmentor).
        channels: Widths after the 1x1 conv and after each intermediate up-sampling step; the
            last entry repeats if the stride needs more steps.
        loss_type: ``'bce'`` (binary cross-entropy on a sigmoid output, the reference) or
            ``'mse'``.
        norm_cfg: Normalisation after each hidden conv.
        align_corners: For the bilinear up-sampling.
        target_stride: 1 (the paper): reconstruct the crop at full resolution. 2, 4, ... (a
            power of two below ``in_stride``): reconstruct the crop down-sampled by that factor
            (area averaging), with that many fewer up-sampling steps; the layers that would run
            at the finest resolutions, which dominate w's memory, are not built.
        init_cfg: mmengine initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 in_stride: int,
                 channels: Sequence[int] = (128, 32, 12),
                 loss_type: str = 'bce',
                 norm_cfg: Optional[dict] = dict(type='BN', requires_grad=True),
                 align_corners: bool = False,
                 target_stride: int = 1,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if loss_type not in ('bce', 'mse'):
            raise ConfigError(f"loss_type must be 'bce' or 'mse', got {loss_type!r}")
        if in_stride < 2 or 2**int(round(math.log2(in_stride))) != in_stride:
            raise ConfigError(f'in_stride must be a power of two >= 2, got {in_stride}')
        if (target_stride < 1 or 2**int(round(math.log2(target_stride))) != target_stride
                or target_stride > in_stride):
            raise ConfigError(f'target_stride must be a power of two from 1 to in_stride '
                              f'({in_stride}), got {target_stride}')
        num_upsamples = int(round(math.log2(in_stride // target_stride)))
        widths = list(channels) + [channels[-1]] * max(0, num_upsamples - len(channels))
        self.loss_type = loss_type
        self.align_corners = align_corners
        self.target_stride = target_stride
        self.num_upsamples = num_upsamples
        self.squeeze = ConvModule(in_channels, widths[0], 1, norm_cfg=norm_cfg)
        self.refine = nn.ModuleList(
            ConvModule(widths[i], widths[i + 1], 3, padding=1, norm_cfg=norm_cfg)
            for i in range(num_upsamples - 1))
        self.to_image = nn.Conv2d(widths[max(num_upsamples - 1, 0)], 3, 3, padding=1)

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=self.align_corners)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """Returns reconstruction logits (apply a sigmoid for the image in [0, 1]) at the
        crop's resolution divided by ``target_stride``."""
        x = self.squeeze(feature)
        for conv in self.refine:
            x = conv(self._up(x))
        if self.num_upsamples > 0:
            x = self._up(x)
        return self.to_image(x)

    def forward_args(self, inputs: Sequence[torch.Tensor]) -> tuple:
        """``forward`` takes the module output alone."""
        return (inputs[0], )

    def head_loss_by_logits(self, logits: torch.Tensor, batch: HeadBatch
                            ) -> Dict[str, torch.Tensor]:
        """The loss against the batch's crops in [0, 1]."""
        return self.loss_by_feat(logits, batch.images)

    def loss(self, feature: torch.Tensor, target: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Reconstruction loss against the input crop scaled to [0, 1].

        Args:
            feature: The local module's output, ``(N, C, H/s, W/s)``.
            target: The un-normalised input crop divided by 255, ``(N, 3, H, W)``.

        Returns:
            dict: ``loss_recon``.
        """
        return self.loss_by_feat(self(feature), target)

    def loss_by_feat(self, logits: torch.Tensor, target: torch.Tensor
                     ) -> Dict[str, torch.Tensor]:
        """The loss of reconstruction logits (:meth:`forward`'s output) against the crop.

        Args:
            logits: ``(N, 3, H/t, W/t)`` for ``target_stride`` t.
            target: The un-normalised input crop divided by 255, ``(N, 3, H, W)``.

        Returns:
            dict: ``loss_recon``.
        """
        if self.target_stride > 1:
            size = [math.ceil(s / self.target_stride) for s in target.shape[-2:]]
            target = F.adaptive_avg_pool2d(target, size)  # area averaging
        if logits.shape[-2:] != target.shape[-2:]:
            # Odd crop sizes: the strided convolutions rounded up.
            logits = F.interpolate(logits, size=target.shape[-2:], mode='bilinear',
                                   align_corners=self.align_corners)
        logits = logits.float()
        if self.loss_type == 'bce':
            # The logits form is the numerically safe (and autocast-safe) BCE(sigmoid(x), t).
            loss = F.binary_cross_entropy_with_logits(logits, target)
        else:
            loss = F.mse_loss(logits.sigmoid(), target)
        return dict(loss_recon=loss)
