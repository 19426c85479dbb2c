"""The InfoPro pixel classifier psi (Sec. 3.2: the task term of the local loss)."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmseg.models.decode_heads import FCNHead
from mmseg.registry import MODELS

from .local_head import ModuleOutputHeadMixin


@MODELS.register_module()
class LocalClassifierHead(ModuleOutputHeadMixin, FCNHead):
    """Predicts the labels from a local module's feature: pixel-wise cross-entropy.

    The reference psi is exactly a one-conv FCN head: 3x3 conv -> ``channels`` + norm + ReLU,
    Dropout2d(0.1), 1x1 conv -> classes, bilinear up-sampling to the label size, cross-entropy
    ignoring label 255. It reads one feature (the module output), so ``in_index`` is -1.

    Args:
        in_channels: Channels of the local module's output (filled in by the segmentor).
        num_classes: Filled in by the segmentor from the decode head.
        channels: Width of the hidden conv (512 in the paper).
        dropout_ratio: Dropout before the classifier.
        loss_at_feature_resolution: ``False`` (the paper): up-sample the logits to the label
            size. ``True``: compute the loss at the feature's resolution against labels
            down-sampled by nearest neighbour (ignored pixels stay ignored); the full-resolution
            logits, the largest tensors psi keeps for backward, are never made.
        **kwargs: Any other ``FCNHead`` / ``BaseDecodeHead`` argument (norm_cfg, loss_decode,
            ignore_index, align_corners, ...).
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 channels: int = 512,
                 dropout_ratio: float = 0.1,
                 loss_at_feature_resolution: bool = False,
                 **kwargs):
        kwargs.setdefault('num_convs', 1)
        kwargs.setdefault('kernel_size', 3)
        kwargs.setdefault('concat_input', False)
        kwargs.setdefault('in_index', -1)
        super().__init__(in_channels=in_channels, channels=channels, num_classes=num_classes,
                         dropout_ratio=dropout_ratio, **kwargs)
        self.loss_at_feature_resolution = loss_at_feature_resolution
        self._label_size: Optional[Sequence[int]] = None

    def loss_by_feat(self, seg_logits: torch.Tensor, batch_data_samples: list) -> dict:
        """mmseg's loss, at the logits' resolution if ``loss_at_feature_resolution``."""
        if not self.loss_at_feature_resolution:
            return super().loss_by_feat(seg_logits, batch_data_samples)
        # The base class resizes the logits to the stacked labels' size: make that the logits'.
        self._label_size = seg_logits.shape[2:]
        try:
            return super().loss_by_feat(seg_logits, batch_data_samples)
        finally:
            self._label_size = None

    def _stack_batch_gt(self, batch_data_samples: list) -> torch.Tensor:
        labels = super()._stack_batch_gt(batch_data_samples)
        if self._label_size is None or tuple(labels.shape[2:]) == tuple(self._label_size):
            return labels
        # Nearest neighbour keeps every label a real one (255 stays ignored), no class mixing.
        return F.interpolate(labels.float(), size=tuple(self._label_size),
                             mode='nearest').to(labels.dtype)
