"""One gradient-isolated local module: a run of backbone units plus the heads its loss trains."""
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import nn

from ..backbones.infopro_resnet import BackbonePart
from ..heads.reconstruction_head import ReconstructionHead
from ..utils.checkpointing import (checkpoint_call, layer_checkpointed_view,
                                   wrap_units_for_checkpointing)

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
            kind is one of :data:`HEAD_KINDS`; the weight scales the head's ``loss*`` entries. A
            weight may be a callable returning it, read at every forward: a schedule changes it
            while the module lives on (e.g. inside its DDP wrapper).
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
                 heads: Sequence[Tuple[str, nn.Module, str, Union[float, Callable[[], float]]]],
                 train_cfg: Optional[dict] = None,
                 checkpoint_heads: Sequence[Union[bool, str]] = (),
                 checkpoint_units: bool = False):
        super().__init__()
        self.backbone_part = backbone_part
        self.heads = nn.ModuleList(head for _, head, _, _ in heads)
        self.head_specs = [(prefix, kind, weight) for prefix, _, kind, weight in heads]
        self.train_cfg = train_cfg
        for _, kind, _ in self.head_specs:
            assert kind in HEAD_KINDS, kind
        self.checkpoint_heads: List[Union[bool, str]] = (list(checkpoint_heads)
                                                        or [False] * len(heads))
        assert len(self.checkpoint_heads) == len(heads), (checkpoint_heads, len(heads))
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
        losses = {}
        for head, (prefix, kind, weight), checkpointed in zip(self.heads, self.head_specs,
                                                              self.checkpoint_heads):
            weight = weight() if callable(weight) else weight
            if checkpointed:
                head_losses = checkpointed_head_loss(head, kind, checkpointed, x, all_features,
                                                     data_samples, images, self.train_cfg)
            elif kind == 'reconstruction':
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


def checkpointed_head_loss(head: nn.Module, kind: str, granularity: str, x: torch.Tensor,
                           features: List[Optional[torch.Tensor]], data_samples: list,
                           images: Optional[torch.Tensor], train_cfg) -> Dict[str, torch.Tensor]:
    """A head's losses with its forward recomputed in backward.

    Heads whose ``loss`` is forward + ``loss_by_feat`` (mmseg's decode heads, w, psi) are
    checkpointed up to their logits, as one region or layer by layer (``granularity``), and
    the loss is computed outside; any other head's whole ``loss`` is one region.

    Args:
        head: The head.
        kind: ``'reconstruction'`` (w), ``'classifier'`` (psi) or a segmentation head's kind.
        granularity: ``'head'`` or ``'layers'``.
        x: The module's output (w and psi read it).
        features: The backbone outputs (segmentation heads read them).
        data_samples: The labels.
        images: w's target.
        train_cfg: The segmentor's ``train_cfg``.

    Returns:
        dict: The head's losses.
    """
    if kind == 'reconstruction':
        inputs, unpack, target = [x], (lambda feature: feature), images
    else:
        if kind == 'classifier':
            inputs = [x]
        else:
            # Every output: heads may read more than ``in_index`` says (DeepLab-V3+ reads
            # ``inputs[0]`` directly). Outputs of this module are alive until its backward
            # anyway; earlier ones are passed only while a later head needs them.
            inputs = list(features)
        unpack, target = (lambda *feats: list(feats)), data_samples
    if type(head).loss in (BaseDecodeHead.loss, ReconstructionHead.loss):
        if granularity == 'layers':
            logits = layer_checkpointed_view(head)(unpack(*inputs))
        else:
            logits = checkpoint_call(lambda *t: head(unpack(*t)), head, *inputs)
        return head.loss_by_feat(logits, target)
    names = []

    def whole_loss(*tensors):
        if kind == 'reconstruction':
            head_losses = head.loss(unpack(*tensors), target)
        else:
            head_losses = head.loss(unpack(*tensors), target, train_cfg)
        names[:] = list(head_losses)
        return tuple(head_losses.values())

    values = checkpoint_call(whole_loss, head, *inputs)
    return dict(zip(names, values))
