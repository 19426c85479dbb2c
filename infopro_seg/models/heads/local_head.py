"""The one call every head of a local module answers: ``head_loss(batch)``.

A local module trains several kinds of heads: InfoPro's w (reconstruction) and psi (pixel
classifier) and their variants (SupCon, AugLocal) on the module's output, and mmseg's decode and
auxiliary heads on the backbone outputs. They differ in what they read and in the signature of
their ``loss``; this module gives them one interface, which :class:`LocalModule`, gradient
checkpointing and the memory planner all use:

- :class:`HeadBatch`: everything a head may read in one iteration;
- ``head.head_loss(batch) -> dict of losses``;
- for checkpointing, ``head_inputs(batch)`` (the tensors it reads) and
  ``batch_with_inputs(batch, inputs)`` (the batch with those tensors replaced), so its whole loss
  can be one recomputed region; a head that computes its losses from logits
  (``splits_at_logits``) also answers ``forward_args(inputs)`` (how its module's ``forward``
  takes them) and ``head_loss_by_logits(logits, batch)``, so it is recomputed up to its logits
  while the loss stays outside.

InfoPro's own heads implement it through :class:`ModuleOutputHeadMixin`; an mmseg decode head is
wrapped by :func:`as_local_head` in a :class:`SegHeadAdapter` (no parameters of its own, so no
state-dict entries).
"""
from typing import Dict, List, NamedTuple, Optional, Sequence

import torch
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import nn


class HeadBatch(NamedTuple):
    """What the heads of a local module may read in one iteration.

    Attributes:
        output: The module's output (w, psi and their variants read it).
        features: The backbone outputs by position, ``None`` where not computed yet (the decode
            and auxiliary heads read them by ``in_index``).
        data_samples: The batch's ``SegDataSample`` list (labels).
        images: The input crops in [0, 1] (w's target), ``None`` if no w runs.
        train_cfg: The segmentor's ``train_cfg``.
    """
    output: torch.Tensor
    features: Sequence[Optional[torch.Tensor]]
    data_samples: list
    images: Optional[torch.Tensor] = None
    train_cfg: Optional[dict] = None


class ModuleOutputHeadMixin:
    """The interface for heads that read the module's output and compute losses from logits.

    The defaults fit an mmseg-style decode head (``forward`` takes a list of features,
    ``loss_by_feat(logits, data_samples)``); a head that differs overrides what differs.
    """

    #: The losses are a function of the logits that ``forward`` returns.
    splits_at_logits = True

    @property
    def module(self) -> nn.Module:
        """The ``nn.Module`` whose parameters the losses train."""
        return self

    def head_inputs(self, batch: HeadBatch) -> List[torch.Tensor]:
        """The tensors the head's forward reads."""
        return [batch.output]

    def batch_with_inputs(self, batch: HeadBatch, inputs: Sequence[torch.Tensor]) -> HeadBatch:
        """``batch`` reading ``inputs`` (as :meth:`head_inputs` returns them) instead."""
        return batch._replace(output=inputs[0])

    def forward_args(self, inputs: Sequence[torch.Tensor]) -> tuple:
        """``forward``'s arguments made from :meth:`head_inputs`."""
        return (list(inputs), )

    def head_loss_by_logits(self, logits: torch.Tensor, batch: HeadBatch
                            ) -> Dict[str, torch.Tensor]:
        """The losses of the head's logits."""
        return self.loss_by_feat(logits, batch.data_samples)

    def head_loss(self, batch: HeadBatch) -> Dict[str, torch.Tensor]:
        """The head's losses for this batch."""
        return self.head_loss_by_logits(
            self(*self.forward_args(self.head_inputs(batch))), batch)


class SegHeadAdapter:
    """An mmseg decode or auxiliary head seen through the local-head interface.

    It reads every backbone output (a head may read more than its ``in_index`` says: DeepLab-V3+
    reads ``inputs[0]`` directly). A head whose ``loss`` is mmseg's (forward, then
    ``loss_by_feat``) splits at its logits; any other is run whole by its own ``loss``.

    Args:
        head: The decode or auxiliary head.
    """

    def __init__(self, head: nn.Module):
        self.module = head
        self.splits_at_logits = type(head).loss is BaseDecodeHead.loss

    def head_inputs(self, batch: HeadBatch) -> List[Optional[torch.Tensor]]:
        return list(batch.features)

    def batch_with_inputs(self, batch: HeadBatch, inputs: Sequence[torch.Tensor]) -> HeadBatch:
        return batch._replace(features=list(inputs))

    def forward_args(self, inputs: Sequence[torch.Tensor]) -> tuple:
        return (list(inputs), )

    def head_loss_by_logits(self, logits: torch.Tensor, batch: HeadBatch
                            ) -> Dict[str, torch.Tensor]:
        return self.module.loss_by_feat(logits, batch.data_samples)

    def head_loss(self, batch: HeadBatch) -> Dict[str, torch.Tensor]:
        return self.module.loss(list(batch.features), batch.data_samples, batch.train_cfg)


def as_local_head(head: nn.Module):
    """``head`` itself if it implements the local-head interface, else its adapter."""
    return head if callable(getattr(head, 'head_loss', None)) else SegHeadAdapter(head)
