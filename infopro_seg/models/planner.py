"""Memory-balanced split points (the paper's InfoPro*): measure every unit, then choose the cuts.

InfoPro saves memory because only one local module's activations are alive at a time, so the
training peak is the *largest* module's. The planner measures, for a model config and a crop:

- every backbone unit's activation memory: the bytes of the tensors its forward saves for
  backward (storages counted once, as :class:`~infopro_seg.utils.SavedTensorMeter` does);
- the bytes a unit's *input* adds when a module starts at that unit (a cut detaches the input,
  so the next module saves it again once the previous graph is gone);
- the local heads w (reconstruction) and psi (pixel classifier) at every candidate cut: they run
  up to full crop resolution, so they weigh as much as several residual blocks;
- the decode and auxiliary heads, charged to the module that produces their input (the last
  module for the ASPP head, the module in which layer3 ends for the FCN auxiliary head),

and then picks the K-1 cuts that minimise the largest module (dynamic programming over unit
boundaries; ties are broken by the smallest total). By default everything runs on PyTorch's
``meta`` device: shapes and dtypes are propagated, nothing is allocated, so the plan for
R-101-D8 at 1024x2048 takes seconds on any machine.

What the figures do not include: gradients, parameters and optimizer state (reported separately
as the model state), temporary buffers that no backward needs, and allocator overheads. The
estimate is for float32 training; AMP roughly halves the activation figures.

Use from a config (resolved when the segmentor is built, and logged)::

    model = dict(
        backbone=dict(split_points='auto'),
        split_planner=dict(num_modules=2, crop_size=(512, 1024), batch_size=2))

or ``split_planner=dict(budget_gb=8, ...)`` for the smallest K whose largest module fits.
"""
import copy
import math
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import (Callable, Dict, Hashable, Iterable, Iterator, List, Optional, Sequence,
                    Tuple, Union)

import torch
from mmseg.registry import MODELS
from torch import nn

from ..utils.batch import random_seg_batch
from ..utils.memory import SavedTensorMeter, storage_key
from .backbones.infopro_resnet import RESNET_VARIANTS, InfoProResNet
from .segmentors.infopro_encoder_decoder import build_local_head
from .splits import local_loss_weights as expand_loss_weights

GiB = 1024**3
MiB = 1024**2

#: Normalisation layers that only differ across devices: the planner measures one device.
_SINGLE_DEVICE_NORM = {'SyncBN': 'BN', 'MMSyncBN': 'BN'}


class SavedBytesMeter(SavedTensorMeter):
    """Counts the bytes saved for backward on any device (meta included), by owner.

    The same rules as :class:`~infopro_seg.utils.SavedTensorMeter` (storages counted once while
    any saved tensor uses them, leaf tensors that require grad, i.e. parameters, not counted), but
    storages are keyed so that meta tensors are told apart, what runs inside :meth:`charge` is
    charged to an owner, and, optionally, gradient bytes are added as parameters receive them
    (:meth:`track_grads`), for a whole-training-step peak.

    Example:
        >>> with SavedBytesMeter() as meter:
        ...     with meter.charge('stem'):
        ...         y = stem(x)
        >>> meter.kept_bytes['stem'], meter.peak_bytes
    """

    def __init__(self):
        super().__init__()
        self.owner: Hashable = None
        self.grad_bytes = 0  # bytes of the parameter gradients that exist now
        # peak_bytes here: max over time of current_bytes + grad_bytes
        self.peak_saved_bytes = 0  # max over time of current_bytes alone
        #: Per owner: bytes still saved when its section ended (its graph's share) ...
        self.kept_bytes: Dict[Hashable, int] = defaultdict(int)
        #: ... and how far above that the section went (saved tensors freed before it ended,
        #: such as the indices ``topk`` saves in mmseg's accuracy metric).
        self.extra_bytes: Dict[Hashable, int] = defaultdict(int)
        #: Per owner: the storages its section saved (already counted or not).
        self.saved_keys: Dict[Hashable, set] = defaultdict(set)
        self._section_max = 0
        self._grad_seen: set = set()
        self._grad_handles: list = []

    def _on_save(self, key: int) -> None:
        self.saved_keys[self.owner].add(key)

    def is_saved(self, tensor: torch.Tensor) -> bool:
        """Whether a saved tensor currently holds ``tensor``'s storage."""
        return storage_key(tensor) in self._live

    def _update_peak(self) -> None:
        self._section_max = max(self._section_max, self.current_bytes)
        self.peak_saved_bytes = max(self.peak_saved_bytes, self.current_bytes)
        self.peak_bytes = max(self.peak_bytes, self.current_bytes + self.grad_bytes)

    @contextmanager
    def charge(self, owner: Hashable) -> Iterator[None]:
        """Charge what is saved inside the block to ``owner`` (sections must not nest)."""
        start = self._section_max = self.current_bytes
        self.owner = owner
        try:
            yield
        finally:
            self.owner = None
            self.kept_bytes[owner] += self.current_bytes - start
            self.extra_bytes[owner] = max(self.extra_bytes[owner],
                                          self._section_max - self.current_bytes)

    def track_grads(self, params: Iterable[nn.Parameter]) -> None:
        """Also count each parameter's gradient from when it first appears (until exit).

        Gradients that exist already (not set to ``None`` by the last ``zero_grad``) are counted
        from the start.
        """
        for param in params:
            if not param.requires_grad:
                continue
            if param.grad is not None:
                self._grad_seen.add(id(param))
                self.grad_bytes += param.grad.numel() * param.grad.element_size()
            self._grad_handles.append(param.register_post_accumulate_grad_hook(self._on_grad))
        self._update_peak()

    def _on_grad(self, param: nn.Parameter) -> None:
        if id(param) not in self._grad_seen:
            self._grad_seen.add(id(param))
            self.grad_bytes += param.grad.numel() * param.grad.element_size()
            self._update_peak()

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        for handle in self._grad_handles:
            handle.remove()
        self._grad_handles = []


@contextmanager
def meta_safe_accuracy() -> Iterator[None]:
    """Let mmseg's heads compute their losses on meta tensors.

    ``accuracy`` (a logged metric) selects the labels that are not ignored with a boolean mask,
    whose size a meta tensor cannot know. On meta tensors it returns a zero instead; real tensors
    go to mmseg's own function. Its ``topk`` on the logits does save indices for backward (alive
    until the metric returns, so they can set the peak); the stand-in saves the same.
    """
    from mmseg.models.decode_heads import decode_head as decode_head_module
    original = decode_head_module.accuracy

    def accuracy(pred, target, topk=1, *args, **kwargs):
        if pred.is_meta:
            pred.topk(max(topk) if isinstance(topk, (tuple, list)) else topk, dim=1)
            return pred.new_zeros(1)
        return original(pred, target, topk, *args, **kwargs)

    decode_head_module.accuracy = accuracy
    try:
        yield
    finally:
        decode_head_module.accuracy = original


def single_device_norm(cfg):
    """A copy of a config with SyncBN replaced by BN (same memory on one device, and no process
    group needed)."""
    if isinstance(cfg, dict):
        out = {key: single_device_norm(value) for key, value in cfg.items()}
        if out.get('type') in _SINGLE_DEVICE_NORM:
            out['type'] = _SINGLE_DEVICE_NORM[out['type']]
        return out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(single_device_norm(value) for value in cfg)
    return copy.deepcopy(cfg)


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


def _param_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


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

    @property
    def num_units(self) -> int:
        """How many units the backbone has."""
        return len(self.unit_names)


@dataclass
class SplitPlan:
    """Where to cut, and what every module then costs.

    Attributes:
        split_points: Unit names to cut after (``resolve_split_points`` accepts them).
        cuts: Their unit indices.
        modules: Per module: ``dict(units=(first, last), units_bytes, input_bytes, output_bytes,
            recon_bytes, classifier_bytes, seg_head_bytes, seg_heads, transient_bytes,
            total_bytes, recon_param_bytes, classifier_param_bytes)``.
        state_bytes: Parameters + gradients + optimizer state of the whole model with these local
            heads (constant over time, present in every module).
        profile: The measurements the plan was made from.
    """
    split_points: List[str]
    cuts: List[int]
    modules: List[dict]
    state_bytes: int
    profile: MemoryProfile = field(repr=False)

    @property
    def num_modules(self) -> int:
        """K."""
        return len(self.cuts) + 1

    @property
    def peak_bytes(self) -> int:
        """The largest module's activation bytes: the training peak of activations."""
        return max(module['total_bytes'] for module in self.modules)

    @property
    def peak_with_state_bytes(self) -> int:
        """Largest module plus the model state: what must fit in the device's memory."""
        return self.peak_bytes + self.state_bytes

    def describe(self) -> str:
        """A small table: one line per module, then the peak (for logs and the CLI)."""
        profile = self.profile
        lines = [f'K={self.num_modules}, split points {self.split_points} (crop '
                 f'{profile.crop_size[0]}x{profile.crop_size[1]}, batch {profile.batch_size}, '
                 f'measured on {profile.device}; activations = bytes saved for backward, MiB)',
                 f'{"module":<8}{"units":<24}{"units":>10}{"in/out":>9}{"w":>9}{"psi":>9}'
                 f'{"seg heads":>11}{"transient":>11}{"total":>10}']
        for k, module in enumerate(self.modules):
            first, last = module['units']
            units = f'{profile.unit_names[first]}..{profile.unit_names[last]}'
            in_out = module['input_bytes'] + module['output_bytes']
            lines.append(
                f'{k + 1:<8}{units:<24}{module["units_bytes"] / MiB:>10.1f}{in_out / MiB:>9.1f}'
                f'{module["recon_bytes"] / MiB:>9.1f}{module["classifier_bytes"] / MiB:>9.1f}'
                f'{module["seg_head_bytes"] / MiB:>11.1f}{module["transient_bytes"] / MiB:>11.1f}'
                f'{module["total_bytes"] / MiB:>10.1f}')
        lines.append(f'largest module {self.peak_bytes / MiB:.1f} MiB; model state (params + '
                     f'grads + optimizer, x{profile.state_factor}) {self.state_bytes / MiB:.1f} '
                     f'MiB; together {self.peak_with_state_bytes / GiB:.2f} GiB')
        return '\n'.join(lines)


class _Parts:
    """The pieces of an InfoPro segmentor the planner runs, built from a model config.

    Args:
        model_cfg: The segmentor config (its split points are ignored: one module).
        device: Where to build and run them (``meta``: nothing is allocated).
    """

    def __init__(self, model_cfg: dict, device: torch.device):
        cfg = single_device_norm(dict(model_cfg))
        backbone_cfg = dict(cfg['backbone'])
        if backbone_cfg.get('type') in RESNET_VARIANTS:
            # A plain mmseg ResNet config: profile it as the InfoPro ResNet it would become.
            backbone_cfg['variant'] = backbone_cfg.pop('type')
            backbone_cfg['type'] = 'InfoProResNet'
        backbone_cfg.update(split_points=[], init_cfg=None, pretrained=None)
        self.loss_weights = cfg.get('local_loss_weights', ((1.0, 1.0), ))
        self.local_head_cfgs = cfg.get('local_heads') or {}
        self.train_cfg = cfg.get('train_cfg') or {}
        # Build straight on the target device: on meta nothing is allocated, even for R-101.
        with torch.device(device):
            self.backbone = MODELS.build(backbone_cfg)
            if not isinstance(self.backbone, InfoProResNet):
                raise TypeError('the split planner needs an InfoProResNet (or mmseg ResNet) '
                                f'backbone, got {type(self.backbone).__name__}')
            self.decode_head = MODELS.build(cfg['decode_head'])
            aux_cfg = cfg.get('auxiliary_head')
            aux_cfgs = aux_cfg if isinstance(aux_cfg, (list, tuple)) else (
                [aux_cfg] if aux_cfg else [])
            self.aux_heads = [MODELS.build(c) for c in aux_cfgs]
        names = ['decode'] + ([f'aux_{i}' for i in range(len(aux_cfgs))]
                              if isinstance(aux_cfg, (list, tuple)) else ['aux'] * len(aux_cfgs))
        self.seg_heads = list(zip(names, [self.decode_head] + self.aux_heads))
        self.device = device
        self._local_heads: Dict[Tuple[str, int, int], nn.Module] = {}
        for module in self.modules():
            module.train()

    def modules(self) -> List[nn.Module]:
        """Backbone, decode head and auxiliary heads (not the local heads)."""
        return [self.backbone] + [head for _, head in self.seg_heads]

    def head_input_unit(self, head: nn.Module) -> int:
        """The unit producing a segmentation head's latest input (its cost goes there)."""
        outs = self.backbone.out_indices
        return max(self.backbone.stage_end_unit(outs[position])
                   for position in self.backbone.output_positions(head.in_index))

    def local_head(self, kind: str, unit: int) -> Optional[nn.Module]:
        """w or psi for a cut after ``unit``, filled in as the segmentor does; ``None`` if the
        config has no such head."""
        cfg = self.local_head_cfgs.get(kind)
        if cfg is None:
            return None
        key = (kind, self.backbone.unit_out_channels(unit), self.backbone.unit_out_stride(unit))
        if key not in self._local_heads:
            with torch.device(self.device):
                head = build_local_head(kind, cfg, self.backbone, unit, self.decode_head)
            head.train()
            self._local_heads[key] = head
        return self._local_heads[key]


def profile_model(model_cfg: dict,
                  crop_size: Sequence[int],
                  batch_size: int,
                  device: Union[str, torch.device] = 'meta',
                  optimizer_cfg: Optional[dict] = None) -> MemoryProfile:
    """Measure the activation memory of every unit and head of a model, for one crop and batch.

    One forward pass through all units keeps every graph alive, so each storage is charged to
    the unit that saves it first; the heads then run on the unit outputs they would read.

    Args:
        model_cfg: An InfoPro segmentor config (``cfg.model``), or an mmseg EncoderDecoder on a
            ResNet. Its split points are ignored.
        crop_size: ``(H, W)`` of the training crops.
        batch_size: Images per batch (per device).
        device: ``'meta'`` (default: shapes only, no memory, any size) or a real device (needs
            the memory of E2E training plus every candidate local head).
        optimizer_cfg: ``optim_wrapper.optimizer`` of the config, for the model-state figure.

    Returns:
        MemoryProfile: The measurements.
    """
    device = torch.device(device)
    crop_size = (int(crop_size[0]), int(crop_size[1]))
    parts = _Parts(model_cfg, device)
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
    meter = SavedBytesMeter()
    with torch.enable_grad(), meta_safe_accuracy(), meter:
        x = inputs
        for i, unit in enumerate(units):
            in_key, in_bytes = storage_key(x), x.untyped_storage().nbytes()
            saved_before = meter.is_saved(x)
            with meter.charge(('unit', i)):
                x = unit(x)
            outputs.append(x)  # keeps the whole graph alive: each storage is charged once
            costs['unit_bytes'][i] = meter.kept_bytes[('unit', i)]
            costs['unit_extra'][i] = meter.extra_bytes[('unit', i)]
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
        for i in range(n - 1):  # a cut after the last unit is not allowed
            for kind, prefix in (('reconstruction', 'recon'), ('classifier', 'classifier')):
                head = parts.local_head(kind, i)
                if head is None:
                    continue
                key = (kind, ) + tuple(outputs[i].shape[1:])
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
    return MemoryProfile(
        unit_names=list(backbone.unit_names), seg_head_names=seg_head_names,
        model_param_bytes=sum(_param_bytes(m) for m in parts.modules()),
        state_factor=optimizer_state_factor(optimizer_cfg), loss_weights=parts.loss_weights,
        crop_size=crop_size, batch_size=batch_size, device=str(device), **costs)


def _head_presence(profile: MemoryProfile, num_modules: int) -> List[Tuple[bool, bool]]:
    """Which of (w, psi) each local module builds: a loss weight of 0 builds no head."""
    try:
        weights = expand_loss_weights(profile.loss_weights, num_modules - 1)
    except ValueError:
        # The config's weights are for another K: assume both heads (the costlier case).
        weights = [(1.0, 1.0)] * (num_modules - 1)
    return [(w[0] != 0, w[1] != 0) for w in weights]


class _Costs:
    """Module costs from prefix sums over a profile."""

    def __init__(self, profile: MemoryProfile, num_modules: int):
        self.profile = profile
        self.presence = _head_presence(profile, num_modules)
        self.num_modules = num_modules
        self._units = [0]
        self._seg = [0]
        for unit, seg in zip(profile.unit_bytes, profile.seg_head_bytes):
            self._units.append(self._units[-1] + unit)
            self._seg.append(self._seg[-1] + seg)

    def breakdown(self, module: int, start: int, end: int) -> dict:
        """Costs of module ``module`` over units ``[start, end)``."""
        profile = self.profile
        last = module == self.num_modules - 1
        with_recon, with_classifier = (False, False) if last else self.presence[module]
        parts = dict(
            units=(start, end - 1),
            units_bytes=self._units[end] - self._units[start],
            input_bytes=profile.input_bytes[start] if start > 0 else 0,
            # The heads reading the module's output save it, if its last unit did not.
            output_bytes=(profile.output_bytes[end - 1] if with_recon or with_classifier
                          or profile.seg_head_names[end - 1] else 0),
            recon_bytes=profile.recon_bytes[end - 1] if with_recon else 0,
            classifier_bytes=profile.classifier_bytes[end - 1] if with_classifier else 0,
            seg_head_bytes=self._seg[end] - self._seg[start],
            seg_heads=[name for names in profile.seg_head_names[start:end] for name in names],
            recon_param_bytes=profile.recon_param_bytes[end - 1] if with_recon else 0,
            classifier_param_bytes=(profile.classifier_param_bytes[end - 1]
                                    if with_classifier else 0))
        # Transient saves (freed inside a part) add on top of everything kept so far; taking
        # the largest over the module's parts is exact when it comes last (the heads' metric)
        # and an upper bound otherwise.
        extras = profile.unit_extra[start:end] + profile.seg_head_extra[start:end]
        if with_recon:
            extras.append(profile.recon_extra[end - 1])
        if with_classifier:
            extras.append(profile.classifier_extra[end - 1])
        parts['transient_bytes'] = max(extras)
        parts['total_bytes'] = (parts['units_bytes'] + parts['input_bytes']
                                + parts['output_bytes'] + parts['recon_bytes']
                                + parts['classifier_bytes'] + parts['seg_head_bytes']
                                + parts['transient_bytes'])
        return parts

    def total(self, module: int, start: int, end: int) -> int:
        return self.breakdown(module, start, end)['total_bytes']


def evaluate_cuts(profile: MemoryProfile, cuts: Sequence[int]) -> SplitPlan:
    """What given cuts cost, module by module.

    Args:
        profile: From :func:`profile_model`.
        cuts: Unit indices to cut after, increasing, each below the last unit.

    Returns:
        SplitPlan: The plan for these cuts.
    """
    cuts = [int(c) for c in cuts]
    if any(b <= a for a, b in zip(cuts, cuts[1:])) or (cuts and not 0 <= cuts[0]) or (
            cuts and cuts[-1] >= profile.num_units - 1):
        raise ValueError(f'cuts must increase and lie in [0, {profile.num_units - 2}], got {cuts}')
    costs = _Costs(profile, len(cuts) + 1)
    bounds = [0] + [c + 1 for c in cuts] + [profile.num_units]
    modules = [costs.breakdown(k, s, e) for k, (s, e) in enumerate(zip(bounds[:-1], bounds[1:]))]
    local_params = sum(m['recon_param_bytes'] + m['classifier_param_bytes'] for m in modules)
    return SplitPlan(split_points=[profile.unit_names[c] for c in cuts], cuts=cuts,
                     modules=modules,
                     state_bytes=(profile.model_param_bytes + local_params) * profile.state_factor,
                     profile=profile)


def _best_cuts(costs: _Costs, n: int, num_modules: int,
               objective: Callable[[int, int], int], bound: Optional[int]) -> Optional[list]:
    """Dynamic programme over unit boundaries.

    ``objective`` combines a prefix's value with the next module's cost (``max`` for the
    min-max pass, ``+`` for the tie-break); modules dearer than ``bound`` are not allowed.
    Returns the cuts, or ``None`` when no split satisfies the bound.
    """
    inf = math.inf
    # best[k][e]: best value of modules 0..k covering units [0, e); parent[k][e]: start of k.
    best = [[inf] * (n + 1) for _ in range(num_modules)]
    parent = [[-1] * (n + 1) for _ in range(num_modules)]
    for k in range(num_modules):
        last = k == num_modules - 1
        # Module k needs at least one unit and must leave one per remaining module.
        ends = [n] if last else range(k + 1, n - (num_modules - 1 - k) + 1)
        for end in ends:
            starts = [0] if k == 0 else range(k, end)
            for start in starts:
                prefix = 0 if k == 0 else best[k - 1][start]
                if prefix == inf:
                    continue
                cost = costs.total(k, start, end)
                if bound is not None and cost > bound:
                    continue
                value = cost if k == 0 else objective(prefix, cost)
                if value < best[k][end]:
                    best[k][end], parent[k][end] = value, start
    if best[num_modules - 1][n] == inf:
        return None
    cuts, end = [], n
    for k in range(num_modules - 1, 0, -1):
        start = parent[k][end]
        cuts.append(start - 1)
        end = start
    return cuts[::-1]


def plan_splits(profile: MemoryProfile, num_modules: int) -> SplitPlan:
    """The K-1 cuts that minimise the largest module's activation memory (InfoPro*).

    Among the splits with the smallest largest module, the one with the smallest sum over
    modules is taken (fewer bytes spent on local heads).

    Args:
        profile: From :func:`profile_model`.
        num_modules: K (1 is end-to-end training).

    Returns:
        SplitPlan: The balanced plan.
    """
    n = profile.num_units
    if not 1 <= num_modules <= n:
        raise ValueError(f'K={num_modules} local modules: K must be between 1 and the number of '
                         f'backbone units ({n})')
    costs = _Costs(profile, num_modules)
    if num_modules == 1:
        return evaluate_cuts(profile, [])
    minmax = _best_cuts(costs, n, num_modules, max, None)
    smallest_peak = max(m['total_bytes'] for m in evaluate_cuts(profile, minmax).modules)
    cuts = _best_cuts(costs, n, num_modules, lambda a, b: a + b, smallest_peak) or minmax
    return evaluate_cuts(profile, cuts)


def naive_cuts(num_units: int, num_modules: int) -> List[int]:
    """Evenly spaced unit indices: the split one would make without measuring."""
    return [round(num_units * k / num_modules) - 1 for k in range(1, num_modules)]


def fit_budget(profile: MemoryProfile, budget_bytes: int,
               max_modules: int = 16) -> Tuple[Optional[SplitPlan], SplitPlan]:
    """The smallest K whose balanced plan (largest module + model state) fits a budget.

    Args:
        profile: From :func:`profile_model`.
        budget_bytes: Memory available for training.
        max_modules: Largest K to try (capped at the number of units).

    Returns:
        tuple: The fitting plan (``None`` if no K up to ``max_modules`` fits) and the plan with
        the smallest peak among those tried (to name what is achievable).
    """
    best = None
    for k in range(1, min(max_modules, profile.num_units) + 1):
        plan = plan_splits(profile, k)
        if best is None or plan.peak_with_state_bytes < best.peak_with_state_bytes:
            best = plan
        if plan.peak_with_state_bytes <= budget_bytes:
            return plan, best
    return None, best


def plan_for_segmentor(planner_cfg: Optional[dict], **model_cfg) -> SplitPlan:
    """Resolve ``split_points='auto'`` for :class:`InfoProEncoderDecoder` at build time.

    Args:
        planner_cfg: The segmentor's ``split_planner``: ``dict(num_modules=K)`` or
            ``dict(budget_gb=X)`` (smallest K whose largest module plus model state fits X GiB;
            ``max_modules`` caps the search), with ``crop_size=(H, W)`` (default: the data
            preprocessor's ``size``), ``batch_size`` (default 2, mmseg's images per GPU),
            ``device`` (default ``'meta'``) and ``state_factor`` (default 3: SGD with momentum).
        **model_cfg: The segmentor's arguments (backbone, decode_head, auxiliary_head,
            local_heads, local_loss_weights, train_cfg, data_preprocessor).

    Returns:
        SplitPlan: The plan; its ``split_points`` go to the backbone.
    """
    cfg = dict(planner_cfg or {})
    unknown = set(cfg) - {'num_modules', 'budget_gb', 'crop_size', 'batch_size', 'device',
                          'max_modules', 'state_factor'}
    if unknown:
        raise ValueError(f'split_planner got unknown keys {sorted(unknown)}; it takes '
                         'num_modules or budget_gb, crop_size, batch_size, device, max_modules, '
                         'state_factor')
    if ('num_modules' in cfg) == ('budget_gb' in cfg):
        raise ValueError("split_points='auto' needs model.split_planner with exactly one of "
                         'num_modules=K or budget_gb=X, e.g. split_planner=dict(num_modules=2, '
                         'crop_size=(512, 1024), batch_size=2)')
    crop_size = cfg.get('crop_size') or (model_cfg.get('data_preprocessor') or {}).get('size')
    if crop_size is None:
        raise ValueError('split_planner needs crop_size=(H, W) (the data preprocessor has no '
                         'size to take it from)')
    profile = profile_model(model_cfg, crop_size, int(cfg.get('batch_size', 2)),
                            cfg.get('device', 'meta'))
    profile.state_factor = int(cfg.get('state_factor', profile.state_factor))
    if 'num_modules' in cfg:
        return plan_splits(profile, int(cfg['num_modules']))
    plan, best = fit_budget(profile, int(float(cfg['budget_gb']) * GiB),
                            int(cfg.get('max_modules', 16)))
    if plan is None:
        raise ValueError(budget_message(best, float(cfg['budget_gb'])))
    return plan


def budget_message(best: SplitPlan, budget_gb: float) -> str:
    """The message when no K fits a budget: what the best split would need."""
    profile = best.profile
    return (f'no K fits a budget of {budget_gb:g} GiB for crop {profile.crop_size[0]}x'
            f'{profile.crop_size[1]}, batch {profile.batch_size}: the smallest achievable peak is '
            f'{best.peak_with_state_bytes / GiB:.2f} GiB (K={best.num_modules}, split points '
            f'{best.split_points}: largest module {best.peak_bytes / GiB:.2f} GiB of activations '
            f'+ {best.state_bytes / GiB:.2f} GiB model state); use a smaller crop or batch, AMP, '
            'or more memory')
