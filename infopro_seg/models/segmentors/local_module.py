"""One gradient-isolated local module: a run of backbone units plus the heads its loss trains."""
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from ..backbones.infopro_resnet import BackbonePart

#: How a head reads its input, by kind:
#: 'reconstruction' (w): the module output and the de-normalised images;
#: 'classifier' (psi): the module output alone;
#: 'segmentation' (decode / auxiliary heads): the backbone output tuple, picking ``in_index``.
HEAD_KINDS = ('reconstruction', 'classifier', 'segmentation')


class LocalModule(nn.Module):
    """Backbone part k and its heads, run as one unit with one local loss.

    It references modules owned by the segmentor (no parameters or state-dict keys of its own),
    so the segmentor's checkpoints stay mmseg's, while this unit can be wrapped on its own (a DDP
    instance per local module, each synchronising once per iteration).

    Args:
        backbone_part: The module's backbone units.
        heads: ``(log prefix, head, kind, loss weight)`` for every head this module's loss trains;
            kind is one of :data:`HEAD_KINDS`; the weight scales the head's ``loss*`` entries.
        train_cfg: The segmentor's ``train_cfg``, passed to mmseg heads.
    """

    def __init__(self,
                 backbone_part: BackbonePart,
                 heads: Sequence[Tuple[str, nn.Module, str, float]],
                 train_cfg: Optional[dict] = None):
        super().__init__()
        self.backbone_part = backbone_part
        self.heads = nn.ModuleList(head for _, head, _, _ in heads)
        self.head_specs = [(prefix, kind, weight) for prefix, _, kind, weight in heads]
        self.train_cfg = train_cfg
        for _, kind, _ in self.head_specs:
            assert kind in HEAD_KINDS, kind

    def forward(self, x: torch.Tensor, features: Sequence[Optional[torch.Tensor]],
                data_samples: list, images: Optional[torch.Tensor]
                ) -> Tuple[torch.Tensor, Dict[int, torch.Tensor], Dict[str, torch.Tensor]]:
        """Run the module and compute its local loss.

        Args:
            x: The previous module's output, detached (or the input batch).
            features: Backbone outputs produced by earlier modules (detached), ``None`` where not
                computed yet; segmentation heads read from it by ``in_index``.
            data_samples: The batch's ``SegDataSample`` list (labels).
            images: The input crops in [0, 1] for the reconstruction heads, else ``None``.

        Returns:
            tuple: The module output, ``{output index: feature}`` for the backbone outputs
            produced here, and the losses named ``<prefix>.<name>``.
        """
        x, outputs = self.backbone_part(x)
        all_features = list(features)
        for position, feature in outputs.items():
            all_features[position] = feature
        losses = {}
        for head, (prefix, kind, weight) in zip(self.heads, self.head_specs):
            if kind == 'reconstruction':
                head_losses = head.loss(x, images)
            elif kind == 'classifier':
                head_losses = head.loss([x], data_samples, self.train_cfg)
            else:
                head_losses = head.loss(all_features, data_samples, self.train_cfg)
            for name, value in head_losses.items():
                if 'loss' in name and weight != 1:
                    value = value * weight
                losses[f'{prefix}.{name}'] = value
        return x, outputs, losses
