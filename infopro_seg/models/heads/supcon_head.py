"""A supervised-contrastive psi: the InfoPro paper's contrastive task term, for pixels."""
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import nn

from ...errors import ConfigError
from .local_head import ModuleOutputHeadMixin


def sample_pixels_per_class(labels: torch.Tensor, max_per_class: int,
                            ignore_index: int) -> torch.Tensor:
    """Indices of at most ``max_per_class`` pixels of every class present, drawn at random.

    Args:
        labels: Flat labels, ``(P, )``.
        max_per_class: Pixels kept per class (all of a class's pixels when it has fewer).
        ignore_index: Label of pixels never sampled.

    Returns:
        torch.Tensor: Flat indices into ``labels``, grouped by class.
    """
    picked = []
    for cls in labels.unique():
        if cls == ignore_index:
            continue
        where = (labels == cls).nonzero(as_tuple=True)[0]
        if where.numel() > max_per_class:
            where = where[torch.randperm(where.numel(), device=where.device)[:max_per_class]]
        picked.append(where)
    if not picked:
        return labels.new_zeros(0)
    return torch.cat(picked)


def supervised_contrastive_loss(embeddings: torch.Tensor, labels: torch.Tensor,
                                temperature: float) -> torch.Tensor:
    """SupCon (Khosla et al., 2020, the L_out form) over a set of L2-normalised embeddings.

    For every anchor i with at least one positive (another sample of its label):
    ``-mean_{p in P(i)} log(exp(z_i.z_p / t) / sum_{a != i} exp(z_i.z_a / t))``; the loss is the
    mean over those anchors (0, still attached to the graph, when there is none).

    Args:
        embeddings: ``(M, D)``, unit norm.
        labels: ``(M, )``.
        temperature: ``t``.

    Returns:
        torch.Tensor: The scalar loss.
    """
    logits = embeddings @ embeddings.t() / temperature
    self_mask = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    logits = logits.masked_fill(self_mask, float('-inf'))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    num_positives = positives.sum(1)
    anchors = num_positives > 0
    if not anchors.any():
        return embeddings.sum() * 0
    positive_log_prob = log_prob.masked_fill(~positives, 0).sum(1)
    return -(positive_log_prob[anchors] / num_positives[anchors]).mean()


@MODELS.register_module()
class SupConHead(ModuleOutputHeadMixin, BaseModule):
    """psi as a supervised contrastive loss on sampled pixel embeddings (kind ``'classifier'``).

    The paper's CIFAR variant with the best accuracy replaces psi's cross-entropy by a
    supervised contrastive loss on a projection of the local feature. For dense prediction each
    pixel of the local feature is a sample: a projection head (1x1 conv-norm-ReLU, 1x1 conv to
    ``proj_channels``, L2 normalisation) embeds every pixel; the labels are down-sampled to the
    feature's resolution by nearest neighbour; then, over the whole batch, at most
    ``max_pixels_per_class`` pixels of every class present are drawn uniformly at random
    (ignored pixels never), so that small classes weigh as much as road and sky and the
    similarity matrix stays small (at most ``19 * max_pixels_per_class`` squared). The loss is
    SupCon over those pixels.

    It is built and called like :class:`LocalClassifierHead`: ``local_heads=dict(classifier=
    dict(type='SupConHead', ...))``; the segmentor fills in ``in_channels``, ``num_classes``,
    ``ignore_index``, ``norm_cfg`` and ``align_corners``.

    Args:
        in_channels: Channels of the local module's output.
        num_classes: Unused (filled in by the segmentor for every psi); classes are read from
            the labels.
        channels: Hidden width of the projection head.
        proj_channels: Embedding dimension.
        temperature: SupCon temperature.
        max_pixels_per_class: Pixels sampled per class and batch.
        loss_weight: Scales the loss (on top of the module's lambda2).
        ignore_index: Label never sampled.
        norm_cfg: Normalisation in the projection head.
        align_corners: Unused (accepted as the segmentor fills it in for every psi).
        init_cfg: mmengine initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 channels: int = 128,
                 proj_channels: int = 64,
                 temperature: float = 0.1,
                 max_pixels_per_class: int = 64,
                 loss_weight: float = 1.0,
                 ignore_index: int = 255,
                 norm_cfg: Optional[dict] = dict(type='BN', requires_grad=True),
                 align_corners: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if temperature <= 0:
            raise ConfigError(f'temperature must be positive, got {temperature}')
        if max_pixels_per_class < 2:
            raise ConfigError('max_pixels_per_class must be at least 2 (a pixel needs a positive), '
                              f'got {max_pixels_per_class}')
        self.temperature = temperature
        self.max_pixels_per_class = max_pixels_per_class
        self.loss_weight = loss_weight
        self.ignore_index = ignore_index
        self.project = nn.Sequential(
            ConvModule(in_channels, channels, 1, norm_cfg=norm_cfg),
            nn.Conv2d(channels, proj_channels, 1))

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Unit-norm pixel embeddings ``(N, proj_channels, H, W)`` of the module output."""
        return F.normalize(self.project(inputs[-1]), dim=1)

    def loss(self, inputs: Sequence[torch.Tensor], batch_data_samples: list,
             train_cfg: Optional[dict] = None) -> Dict[str, torch.Tensor]:
        """SupCon loss of the batch (the signature of an mmseg decode head's ``loss``).

        Args:
            inputs: ``[module output]``.
            batch_data_samples: ``SegDataSample`` list with ``gt_sem_seg``.
            train_cfg: Unused.

        Returns:
            dict: ``loss_supcon``.
        """
        return self.loss_by_feat(self(inputs), batch_data_samples)

    def loss_by_feat(self, embeddings: torch.Tensor, batch_data_samples: list
                     ) -> Dict[str, torch.Tensor]:
        """SupCon loss of pixel embeddings (:meth:`forward`'s output) sampled per class."""
        embeddings = embeddings.float()
        labels = torch.stack([s.gt_sem_seg.data for s in batch_data_samples]).float()
        labels = F.interpolate(labels, size=embeddings.shape[-2:], mode='nearest')
        labels = labels.long().flatten()
        flat = embeddings.permute(0, 2, 3, 1).reshape(-1, embeddings.shape[1])
        index = sample_pixels_per_class(labels, self.max_pixels_per_class, self.ignore_index)
        loss = supervised_contrastive_loss(flat[index], labels[index], self.temperature)
        return dict(loss_supcon=loss * self.loss_weight)
