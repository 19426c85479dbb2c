"""One gradient-isolated local module: a run of backbone units plus the heads its loss trains."""
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..backbones.infopro_backbone import BackbonePart
from ..heads.local_head import HeadBatch, as_local_head
from ..utils.checkpointing import (checkpoint_call, layer_checkpointed_view,
                                   wrap_units_for_checkpointing)

#: A loss weight, or a callable returning it (read at every forward).
Weight = Union[float, Callable[[], float]]


class LocalModule(nn.Module):
    """Backbone part k and its heads, run as one unit with one local loss.

    It references modules owned by the segmentor (no parameters or state-dict keys of its own),
    so the segmentor's checkpoints stay mmseg's, while this unit can be wrapped on its own (a DDP
    instance per local module, each synchronising once per iteration).

    Args:
        backbone_part: The module's backbone units.
        heads: ``(log prefix, head, loss weight)`` for every head this module's loss trains. Each
            head answers the local-head interface (:mod:`~infopro_seg.models.heads.local_head`;
            mmseg decode heads through its adapter); the weight scales the head's ``loss*``
            entries. A weight may be a callable returning it, read at every forward: a schedule
            changes it while the module lives on (e.g. inside its DDP wrapper).
        train_cfg: The segmentor's ``train_cfg``, passed to mmseg heads.
        checkpoint_heads: One entry per head: ``False``, or recompute it in this module's
            backward instead of keeping its activations, as one region (``'head'``) or layer by
            layer (``'layers'``) (see :mod:`infopro_seg.models.utils.checkpointing`). Default:
            none.
        checkpoint_units: Recompute every backbone unit of this module in its backward (units
            with mmseg's ``with_cp`` on do it themselves).
    """

    def __init__(self,
                 backbone_part: BackbonePart,
                 heads: Sequence[Tuple[str, nn.Module, Weight]],
                 train_cfg: Optional[dict] = None,
                 checkpoint_heads: Sequence[Union[bool, str]] = (),
                 checkpoint_units: bool = False):
        super().__init__()
        self.backbone_part = backbone_part
        self.heads = nn.ModuleList(head for _, head, _ in heads)
        self.head_specs = [(prefix, weight) for prefix, _, weight in heads]
        self.train_cfg = train_cfg
        self.checkpoint_heads: List[Union[bool, str]] = (
            list(checkpoint_heads) or [False] * len(heads))
        if len(self.checkpoint_heads) != len(heads):
            raise ValueError(f'checkpoint_heads has {len(self.checkpoint_heads)} entries for '
                             f'{len(heads)} heads')
        if checkpoint_units:
            wrap_units_for_checkpointing(backbone_part.units)

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
        batch = HeadBatch(x, all_features, data_samples, images, self.train_cfg)
        losses = {}
        for head, (prefix, weight), checkpointed in zip(self.heads, self.head_specs,
                                                        self.checkpoint_heads):
            weight = weight() if callable(weight) else weight
            head = as_local_head(head)
            head_losses = (checkpointed_head_loss(head, checkpointed, batch) if checkpointed
                           else head.head_loss(batch))
            for name, value in head_losses.items():
                if 'loss' in name and weight != 1:
                    value = value * weight
                losses[f'{prefix}.{name}'] = value
        return x, outputs, losses


def checkpointed_head_loss(head, granularity: str, batch: HeadBatch) -> Dict[str, torch.Tensor]:
    """A head's losses with its forward recomputed in backward.

    A head that splits at its logits (``head.splits_at_logits``: InfoPro's heads, mmseg's decode
    heads) is checkpointed up to its logits, as one region or layer by layer (``granularity``),
    and its loss is computed outside; any other head's whole ``head_loss`` is one region.

    Args:
        head: A head answering the local-head interface (:func:`as_local_head`).
        granularity: ``'head'`` or ``'layers'``.
        batch: What the heads read.

    Returns:
        dict: The head's losses.
    """
    module = head.module
    if head.splits_at_logits:
        inputs = head.head_inputs(batch)
        if granularity == 'layers':
            logits = layer_checkpointed_view(module)(*head.forward_args(inputs))
        else:
            logits = checkpoint_call(lambda *t: module(*head.forward_args(t)), module, *inputs)
        return head.head_loss_by_logits(logits, batch)
    # One region over the whole loss, keeping only the tensors the head reads.
    names = []

    def whole_loss(*inputs):
        losses = head.head_loss(head.batch_with_inputs(batch, inputs))
        names[:] = list(losses)
        return tuple(losses.values())

    values = checkpoint_call(whole_loss, module, *head.head_inputs(batch))
    return dict(zip(names, values))
