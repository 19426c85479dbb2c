"""The meta-device profile: what every backbone unit and every head of a model costs.

InfoPro saves memory because only one local module's activations are alive at a time, so the
training peak is the *largest* module's. :func:`profile_model` measures, for a model config and a
crop, everything a module's cost is made of:

- every backbone unit's activation memory: the bytes of the tensors its forward saves for
  backward (storages counted once, as :class:`~infopro_seg.utils.SavedTensorMeter` does);
- the bytes a unit's *input* adds when a module starts at that unit (a cut detaches the input,
  so the next module saves it again once the previous graph is gone);
- the local heads w (reconstruction) and psi (pixel classifier) at every candidate cut: they run
  up to full crop resolution, so they weigh as much as several residual blocks;
- the decode and auxiliary heads, charged to the unit that produces their input (the last unit
  for the ASPP head, the end of layer3 for the FCN auxiliary head).

The model is measured *as the config builds it*: the segmentor is built from the config through
mmseg's registry as one local module (K=1; SyncBN converted to BN afterwards by mmengine's
``revert_sync_batchnorm``, since one device is measured), and its own backbone units and heads
run; the local heads are built by the segmentor's own :func:`build_local_head`. Whatever the
config switches on in those modules is therefore part of the figures. By default everything runs
on PyTorch's ``meta`` device: shapes and dtypes are propagated, nothing is allocated, so R-101-D8
at 1024x2048 takes seconds on any machine.

With ``model.checkpointing`` on, the figures are what the checkpointed model keeps: a
checkpointed unit keeps its input (``unit_bytes``) and, in its module's backward, re-saves its
own activations while it is recomputed (``unit_extra``: that unit's saved bytes without
checkpointing, less its input); the module's peak is then the largest of its forward (everything
kept) and every recomputation (the inputs of the units up to it plus its recomputed bytes, see
:class:`~infopro_seg.planning.solver.SplitPlan`). Heads are measured as the segmentor runs them
(checkpointed up to their logits); their ``*_extra`` is how far their recomputation goes above
what they keep. With ``amp=True`` everything runs under
:class:`~infopro_seg.utils.meta_autocast.EmulatedAutocast` (autocast's casts; parameters and
model state stay float32).

What the figures do not include: gradients, parameters and optimizer state (the model state,
reported separately), temporary buffers that no backward needs, and allocator overheads.
"""
import copy
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..models.backbones.infopro_resnet import RESNET_VARIANTS
from ..models.segmentors.infopro_encoder_decoder import build_local_head
from ..models.segmentors.local_module import checkpointed_head_loss
from ..utils.batch import random_seg_batch
from ..utils.memory import storage_key
from ..utils.meta_autocast import EmulatedAutocast
from .build import build_on_one_device, for_one_device
from .meta import meta_masks_select_all
from .meter import SavedBytesMeter


def optimizer_state_factor(optimizer_cfg: Optional[dict]) -> int:
    """How many parameter-sized tensors training keeps per parameter.

    Args:
        optimizer_cfg: The config's ``optim_wrapper.optimizer`` (``None``: mmseg's SGD with
            momentum).

    Returns:
        int: 1 (the parameter) + 1 (its gradient) + the optimizer's per-parameter buffers
        (SGD with momentum 1, SGD without 0, Adam/AdamW 2).
    """
    if not optimizer_cfg:
        return 3
    kind = str(optimizer_cfg.get('type', 'SGD')).split('.')[-1].lower()
    if kind == 'sgd':
        return 3 if optimizer_cfg.get('momentum', 0) else 2
    if kind.startswith('adam'):
        return 4
    return 3


@dataclass
class MemoryProfile:
    """What each part of a model costs in activation memory (bytes) for one crop and batch.

    Every cost is a pair of lists by unit index: ``*_bytes`` is what the part's graph keeps
    saved for backward, ``*_extra`` how far above that it went while running (tensors saved and
    freed again inside the part). A module's peak is the sum of its parts' kept bytes plus the
    largest extra among them.

    Attributes:
        unit_names: Backbone units in forward order.
        unit_bytes, unit_extra: Each unit's forward (storages counted where first saved).
        input_bytes: Bytes of each unit's input if the unit saves it but an earlier unit saved
            it first (so ``unit_bytes`` leaves it out): what a module starting at that unit pays
            again for its (detached) input.
        output_bytes: Bytes of each unit's output if the unit itself does not save it (a
            max-pool, say): what a module ending there pays when its heads save it.
        seg_head_bytes, seg_head_extra: The decode/auxiliary heads (forward and loss), charged to
            the unit producing their input.
        seg_head_names: Their names (``'decode'``, ``'aux'``, ``'aux_0'``...), by unit index.
        recon_bytes, recon_extra: w (forward and loss) on the output of each unit, i.e. for a cut
            after that unit; 0 where the config has no w.
        classifier_bytes, classifier_extra: The same for psi.
        recon_param_bytes, classifier_param_bytes: Parameter bytes of w and psi at each cut.
        model_param_bytes: Parameter bytes of backbone, decode and auxiliary heads.
        state_factor: Parameter-sized tensors kept per parameter (see
            :func:`optimizer_state_factor`).
        loss_weights: The config's ``local_loss_weights`` (decides which local heads exist).
        crop_size: ``(H, W)``.
        batch_size: Images per batch.
        device: Where it was measured (``'meta'``: shapes only, nothing allocated).
        checkpointed_units: The backbone units are checkpointed (``model.checkpointing``):
            ``unit_bytes`` is each unit's kept input, ``unit_extra`` its recomputation.
        checkpointing: The model's normalised ``checkpointing`` (``None``: off).
        amp: Measured under emulated autocast (float16 activations).
    """
    unit_names: List[str]
    unit_bytes: List[int]
    unit_extra: List[int]
    input_bytes: List[int]
    output_bytes: List[int]
    seg_head_bytes: List[int]
    seg_head_extra: List[int]
    seg_head_names: List[List[str]]
    recon_bytes: List[int]
    recon_extra: List[int]
    classifier_bytes: List[int]
    classifier_extra: List[int]
    recon_param_bytes: List[int]
    classifier_param_bytes: List[int]
    model_param_bytes: int
    state_factor: int
    loss_weights: Union[Sequence, dict]
    crop_size: Tuple[int, int]
    batch_size: int
    device: str
    checkpointed_units: bool = False
    checkpointing: Optional[dict] = None
    amp: bool = False

    @property
    def num_units(self) -> int:
        """How many units the backbone has."""
        return len(self.unit_names)


def _param_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def profiled_model_cfg(model_cfg: dict) -> dict:
    """The config :func:`profile_model` builds: the model as one local module (K=1).

    A copy of ``model_cfg`` with no split points (``'auto'`` included) and no split planner, no
    pretrained weights (nothing is loaded or downloaded), and a plain mmseg ``EncoderDecoder`` on
    a ResNet turned into the InfoPro segmentor and backbone it would become. Everything else is
    kept as the config has it.
    """
    cfg = copy.deepcopy(model_cfg.to_dict() if hasattr(model_cfg, 'to_dict') else dict(model_cfg))
    if cfg.get('type') == 'EncoderDecoder':
        cfg['type'] = 'InfoProEncoderDecoder'
    backbone = dict(cfg['backbone'])
    if backbone.get('type') in RESNET_VARIANTS:
        backbone['variant'] = backbone.pop('type')
        backbone['type'] = 'InfoProResNet'
    backbone.update(split_points=[], init_cfg=None, pretrained=None)
    cfg.update(backbone=backbone, pretrained=None, init_cfg=None)
    cfg.pop('split_planner', None)
    return cfg


class _ProfiledModel:
    """The segmentor built from a config as one module, and its heads, ready to be measured.

    Args:
        model_cfg: The segmentor config (see :func:`profiled_model_cfg`).
        device: Where to build and run it (``meta``: nothing is allocated).
    """

    def __init__(self, model_cfg: dict, device: torch.device):
        cfg = profiled_model_cfg(model_cfg)
        self.segmentor = build_on_one_device(cfg, device)
        self.segmentor.train()
        self.backbone = self.segmentor.backbone
        self.decode_head = self.segmentor.decode_head
        aux = getattr(self.segmentor, 'auxiliary_head', None)
        if isinstance(aux, nn.ModuleList):
            aux_heads = [(f'aux_{i}', head) for i, head in enumerate(aux)]
        else:
            aux_heads = [('aux', aux)] if aux is not None else []
        self.seg_heads = [('decode', self.decode_head)] + aux_heads
        self.train_cfg = self.segmentor.train_cfg or {}
        self.loss_weights = cfg.get('local_loss_weights', ((1.0, 1.0), ))
        self.local_head_cfgs = cfg.get('local_heads') or {}
        self.device = device
        self._local_heads: Dict[Tuple[str, int, int], nn.Module] = {}

    def head_input_unit(self, head: nn.Module) -> int:
        """The unit producing a segmentation head's latest input (its cost goes there)."""
        # The segmentor found which outputs the head reads (DeepLab-V3+'s c1 included).
        return max(self.backbone.output_unit(position)
                   for position in head.infopro_backbone_inputs)

    def local_head(self, kind: str, unit: int) -> Optional[nn.Module]:
        """w or psi for a cut after ``unit``, built as the segmentor builds it; ``None`` if the
        config has no such head."""
        cfg = self.local_head_cfgs.get(kind)
        if cfg is None:
            return None
        key = (kind, self.backbone.unit_out_channels(unit), self.backbone.unit_out_stride(unit))
        if key not in self._local_heads:
            with torch.device(self.device):
                head = build_local_head(kind, cfg, self.backbone, unit, self.decode_head)
            head = for_one_device(head, self.device)  # its norm_cfg is the decode head's
            head.train()
            self._local_heads[key] = head
        return self._local_heads[key]


def _local_head_sites(parts: _ProfiledModel, outputs: Sequence[torch.Tensor]
                      ) -> Iterator[Tuple[int, str, str, nn.Module, tuple]]:
    """``(unit, kind, cost prefix, head, shape key)`` for w and psi at every candidate cut.

    A cut after the last unit is not allowed; the key (kind and feature shape) is what a head's
    cost depends on, so each is measured once.
    """
    for i in range(len(outputs) - 1):
        for kind, prefix in (('reconstruction', 'recon'), ('classifier', 'classifier')):
            head = parts.local_head(kind, i)
            if head is not None:
                yield i, kind, prefix, head, (kind, ) + tuple(outputs[i].shape[1:])


def profile_model(model_cfg: dict,
                  crop_size: Sequence[int],
                  batch_size: int,
                  device: Union[str, torch.device] = 'meta',
                  optimizer_cfg: Optional[dict] = None,
                  amp: bool = False) -> MemoryProfile:
    """Measure the activation memory of every unit and head of a model, for one crop and batch.

    The segmentor is built from ``model_cfg`` through mmseg's registry as one local module
    (:func:`profiled_model_cfg`; SyncBN converted to BN after the build), so the modules measured
    are the ones the config builds. One forward pass through all its backbone units keeps every
    graph alive, so each storage is charged to the unit that saves it first; the decode and
    auxiliary heads then run on the unit outputs they read, and the local heads (built by the
    segmentor's :func:`build_local_head`) on every candidate cut's output.

    Args:
        model_cfg: An InfoPro segmentor config (``cfg.model``), or an mmseg EncoderDecoder on a
            ResNet. Its split points are ignored.
        crop_size: ``(H, W)`` of the training crops.
        batch_size: Images per batch (per device).
        device: ``'meta'`` (default: shapes only, no memory, any size) or a real device (needs
            the memory of E2E training plus every candidate local head).
        optimizer_cfg: ``optim_wrapper.optimizer`` of the config, for the model-state figure.
        amp: Measure mixed precision: every forward and backward under
            :class:`~infopro_seg.utils.meta_autocast.EmulatedAutocast` (float16; the meta device
            only, where autocast does not run).

    Returns:
        MemoryProfile: The measurements.

    Raises:
        ValueError: ``amp`` on a device other than ``meta``.
    """
    device = torch.device(device)
    if amp and device.type != 'meta':
        raise ValueError(f'profile_model(amp=True) emulates autocast on the meta device; got '
                         f"device={str(device)!r}: use device='meta'")
    with EmulatedAutocast(torch.float16) if amp else nullcontext():
        return _profile(model_cfg, crop_size, batch_size, device, optimizer_cfg, amp)


def _profile(model_cfg, crop_size, batch_size, device: torch.device, optimizer_cfg,
             amp: bool) -> MemoryProfile:
    """:func:`profile_model` inside its autocast state."""
    crop_size = (int(crop_size[0]), int(crop_size[1]))
    parts = _ProfiledModel(model_cfg, device)
    backbone = parts.backbone
    units = backbone.local_parts()[0].units
    n = len(units)
    # Normalised inputs (the data preprocessor's output) and labelled samples of the crop size.
    inputs = torch.randn(batch_size, 3, *crop_size, device=device)
    samples = random_seg_batch(batch_size, crop_size, parts.decode_head.num_classes,
                               device=str(device))['data_samples']
    costs = {name: [0] * n for name in ('unit_bytes', 'unit_extra', 'input_bytes', 'output_bytes',
                                        'seg_head_bytes', 'seg_head_extra', 'recon_bytes',
                                        'recon_extra', 'classifier_bytes', 'classifier_extra',
                                        'recon_param_bytes', 'classifier_param_bytes')}
    seg_head_names = [[] for _ in range(n)]
    outputs, cached = [], {}
    in_sizes, own_input = [0] * n, [False] * n
    meter = SavedBytesMeter()
    with torch.enable_grad(), meta_masks_select_all(), meter:
        x = inputs
        for i, unit in enumerate(units):
            in_key, in_bytes = storage_key(x), x.untyped_storage().nbytes()
            saved_before = meter.is_saved(x)
            with meter.charge(('unit', i)):
                x = unit(x)
            outputs.append(x)  # keeps the whole graph alive: each storage is charged once
            costs['unit_bytes'][i] = meter.kept_bytes[('unit', i)]
            costs['unit_extra'][i] = meter.extra_bytes[('unit', i)]
            in_sizes[i] = in_bytes
            own_input[i] = not saved_before and in_key in meter.saved_keys[('unit', i)]
            if saved_before and in_key in meter.saved_keys[('unit', i)]:
                costs['input_bytes'][i] = in_bytes
            if not meter.is_saved(x):
                costs['output_bytes'][i] = x.untyped_storage().nbytes()
        features = [outputs[backbone.stage_end_unit(stage)] for stage in backbone.out_indices]
        kept = []  # the heads' losses: their graphs stay alive, so nothing is counted twice
        for name, head in parts.seg_heads:
            unit = parts.head_input_unit(head)
            with meter.charge(('seg', name)):
                kept.append(head.loss(features, samples, parts.train_cfg))
            costs['seg_head_bytes'][unit] += meter.kept_bytes[('seg', name)]
            costs['seg_head_extra'][unit] = max(costs['seg_head_extra'][unit],
                                                meter.extra_bytes[('seg', name)])
            seg_head_names[unit].append(name)
        for i, kind, prefix, head, key in _local_head_sites(parts, outputs):
            if key not in cached:
                # The cost depends only on the feature's shape: run each shape once, with
                # fresh images, as every module's w saves its own reference to the target.
                with meter.charge(key):
                    if kind == 'reconstruction':
                        images = torch.rand(inputs.shape, device=device)
                        kept.append(head.loss(outputs[i], images))
                    else:
                        kept.append(head.loss([outputs[i]], samples, parts.train_cfg))
                cached[key] = (meter.kept_bytes[key], meter.extra_bytes[key],
                               _param_bytes(head))
            (costs[f'{prefix}_bytes'][i], costs[f'{prefix}_extra'][i],
             costs[f'{prefix}_param_bytes'][i]) = cached[key]
    checkpointing = getattr(parts.segmentor, 'checkpointing', None)
    if checkpointing and any(checkpointing.values()):
        if checkpointing.get('backbone'):
            for i in range(n):
                # Kept: the input; recomputed in backward: the unit's own saves, without it.
                recomputed = costs['unit_bytes'][i] - (in_sizes[i] if own_input[i] else 0)
                costs['unit_extra'][i] = recomputed + costs['unit_extra'][i]
                costs['unit_bytes'][i] = in_sizes[i]
                costs['input_bytes'][i] = 0
                costs['output_bytes'][i] = outputs[i].untyped_storage().nbytes()
        _measure_heads_checkpointed(parts, checkpointing, costs, outputs, features_of=backbone,
                                    inputs=inputs, samples=samples)
    else:
        checkpointing = None
    return MemoryProfile(
        unit_names=list(backbone.unit_names), seg_head_names=seg_head_names,
        model_param_bytes=_param_bytes(parts.segmentor),
        state_factor=optimizer_state_factor(optimizer_cfg), loss_weights=parts.loss_weights,
        crop_size=crop_size, batch_size=batch_size, device=str(device),
        checkpointed_units=bool(checkpointing and checkpointing.get('backbone')),
        checkpointing=checkpointing, amp=amp, **costs)


def _head_cost(run) -> Tuple[int, int]:
    """What a head's loss keeps (its inputs, leaves, not counted) and how far its forward or its
    backward (a checkpointed head's recomputation) goes above that."""
    meter = SavedBytesMeter()
    with torch.enable_grad(), meta_masks_select_all(), meter:
        with meter.charge('head'):
            losses = run()
        kept = meter.kept_bytes['head']
        before = meter.current_bytes
        meter.peak_saved_bytes = before
        total = sum(value.sum() for name, value in losses.items()
                    if 'loss' in name and isinstance(value, torch.Tensor)
                    and value.requires_grad)
        total.backward()
        extra = max(meter.extra_bytes['head'], meter.peak_saved_bytes - before)
    return kept, extra


def _measure_heads_checkpointed(parts: '_ProfiledModel', checkpointing: dict, costs: dict,
                                outputs: List[torch.Tensor], features_of, inputs: torch.Tensor,
                                samples: list) -> None:
    """Every head's cost with ``model.checkpointing`` on, each run alone on leaf copies of its
    inputs (what it reads is paid by the units: kept inputs, or a module's output)."""
    backbone, n = features_of, len(outputs)
    leaves = [o.detach().requires_grad_() for o in outputs]
    features = [leaves[backbone.stage_end_unit(stage)] for stage in backbone.out_indices]
    train_cfg = parts.train_cfg
    for unit in range(n):
        costs['seg_head_bytes'][unit], costs['seg_head_extra'][unit] = 0, 0
    for name, head in parts.seg_heads:
        unit = parts.head_input_unit(head)
        granularity = checkpointing['decode_head' if name == 'decode' else 'auxiliary_head']
        if granularity:
            kept, extra = _head_cost(lambda: checkpointed_head_loss(
                head, name, granularity, leaves[-1], features, samples, None, train_cfg))
        else:
            kept, extra = _head_cost(lambda: head.loss(features, samples, train_cfg))
        costs['seg_head_bytes'][unit] += kept
        costs['seg_head_extra'][unit] = max(costs['seg_head_extra'][unit], extra)
    granularity = checkpointing['local_heads']
    cached = {}
    for i, kind, prefix, head, key in _local_head_sites(parts, outputs):
        if key not in cached:
            images = torch.rand(inputs.shape, device=inputs.device)
            if granularity:
                cached[key] = _head_cost(lambda: checkpointed_head_loss(
                    head, kind, granularity, leaves[i], [], samples, images, train_cfg))
            elif kind == 'reconstruction':
                cached[key] = _head_cost(lambda: head.loss(leaves[i], images))
            else:
                cached[key] = _head_cost(lambda: head.loss([leaves[i]], samples, train_cfg))
        costs[f'{prefix}_bytes'][i], costs[f'{prefix}_extra'][i] = cached[key]
