"""The meta-device profile: one cost record per backbone unit, for one crop and batch.

InfoPro saves memory because only one local module's activations are alive at a time, so the
training peak is the *largest* module's. :func:`profile_model` measures, for a model config and a
crop, everything a module's cost is made of, and keeps it as one :class:`UnitCost` per backbone
unit:

- the unit's activation memory: the bytes of the tensors its forward saves for backward
  (storages counted once, as :class:`~infopro_seg.planning.meter.SavedBytesMeter` does), its
  input and output sizes, and its forward FLOPs;
- the decode and auxiliary heads whose latest input the unit produces (the last unit for the
  ASPP head, the end of layer3 for the FCN auxiliary head);
- the local heads w (reconstruction) and psi (pixel classifier) of a cut after the unit: they
  run up to full crop resolution, so they weigh as much as several residual blocks.

Every head is measured twice: as it runs in the plain model (inside the graph of the units, so
storages they share are counted once) and as it runs when its module is checkpointed (alone on
leaf copies of its inputs, under the checkpointing setting of :attr:`MemoryProfile.
checkpointing`). What a module costs with or without checkpointing is then computed from these
records by :mod:`~infopro_seg.planning.cost_model`, so one profile plans every module with or
without recomputation.

The model is measured *as the config builds it*: the segmentor is built from the config through
mmseg's registry as one local module (K=1; SyncBN converted to BN afterwards by mmengine's
``revert_sync_batchnorm``, since one device is measured), and its own backbone units and heads
run through the local-head interface (:mod:`~infopro_seg.models.heads.local_head`); the local
heads are built by the segmentor's own :func:`build_local_head`. By default everything runs on
PyTorch's ``meta`` device: shapes and dtypes are propagated, nothing is allocated, so R-101-D8 at
1024x2048 takes seconds on any machine. With ``amp=True`` everything runs under
:class:`~infopro_seg.utils.meta_autocast.EmulatedAutocast` (autocast's casts; parameters and
model state stay float32).

What the figures do not include: gradients, parameters and optimizer state (the model state,
reported separately), temporary buffers that no backward needs, and allocator overheads.
"""
import copy
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..models.heads.local_head import HeadBatch, as_local_head
from ..models.segmentors.local_module import checkpointed_head_loss
from ..utils.batch import random_seg_batch
from ..utils.memory import storage_key
from ..utils.meta_autocast import EmulatedAutocast
from .config import optimizer_state_factor
from .meta import meta_masks_select_all
from .meter import SavedBytesMeter
from .profiled_model import ProfiledModel, checkpointing_spec, param_bytes


@dataclass
class Cost:
    """Bytes a part's graph keeps saved for backward, and how far above that it went while
    running (tensors saved and freed again inside the part)."""
    kept: int = 0
    extra: int = 0


@dataclass
class HeadCost:
    """A head's cost in the plain model and in a checkpointed module, its parameter bytes and its
    forward FLOPs."""
    plain: Cost = field(default_factory=Cost)
    checkpointed: Cost = field(default_factory=Cost)
    param_bytes: int = 0
    flops: int = 0


@dataclass
class UnitCost:
    """Everything one backbone unit contributes to the cost of the module that holds it.

    Attributes:
        name: The unit's name (a split point).
        forward: Its forward's saves, storages counted where first saved.
        flops: Its forward FLOPs.
        param_bytes: Bytes of its parameters (as many again for their gradients).
        input_bytes: Bytes of its input.
        saves_input: It saves its own input, which no earlier unit saved (so ``forward.kept``
            includes it).
        cut_input_bytes: Its input's bytes if it saves its input but an earlier unit saved it
            first (so ``forward.kept`` leaves it out): what a module starting here pays again for
            its detached input.
        output_bytes: Bytes of its output.
        saves_output: Its output is saved by its own forward (a max-pool's is not).
        tap: What computing a stage output from its output costs, where the backbone does that
            (Swin's stage norms, ``InfoProBackbone._output_taps``); kept in every module.
        seg_heads: Names of the decode/auxiliary heads whose latest input it produces
            (``'decode'``, ``'aux'``, ``'aux_0'``...), and their summed cost in ``seg``.
        recon, classifier: w and psi of a cut after this unit (zero where the config has none).
    """
    name: str
    forward: Cost
    flops: int
    param_bytes: int
    input_bytes: int
    saves_input: bool
    cut_input_bytes: int
    output_bytes: int
    saves_output: bool
    tap: Cost = field(default_factory=Cost)
    seg_heads: List[str] = field(default_factory=list)
    seg: HeadCost = field(default_factory=HeadCost)
    recon: HeadCost = field(default_factory=HeadCost)
    classifier: HeadCost = field(default_factory=HeadCost)


@dataclass
class MemoryProfile:
    """What each part of a model costs in activation memory (bytes) for one crop and batch.

    Attributes:
        units: One :class:`UnitCost` per backbone unit, in forward order.
        model_param_bytes: Parameter bytes of backbone, decode and auxiliary heads.
        state_factor: Parameter-sized tensors kept per parameter (see
            :func:`optimizer_state_factor`).
        loss_weights: The config's ``local_loss_weights`` (decides which local heads exist).
        crop_size: ``(H, W)``.
        batch_size: Images per batch.
        device: Where it was measured (``'meta'``: shapes only, nothing allocated).
        checkpointing: What a checkpointed module recomputes (parsed ``model.checkpointing``;
            the config's own setting, else every part at its default granularity).
        checkpointed: The config checkpoints every module (``model.checkpointing`` on).
        amp: Measured under emulated autocast (float16 activations).
    """
    units: List[UnitCost]
    model_param_bytes: int
    state_factor: int
    loss_weights: Union[Sequence, dict]
    crop_size: Tuple[int, int]
    batch_size: int
    device: str
    checkpointing: Dict[str, Union[bool, str]]
    checkpointed: bool = False
    amp: bool = False

    @property
    def num_units(self) -> int:
        """How many units the backbone has."""
        return len(self.units)

    @property
    def unit_names(self) -> List[str]:
        """Backbone units in forward order."""
        return [unit.name for unit in self.units]

    @property
    def forward_flops(self) -> int:
        """Forward FLOPs of the backbone and the decode and auxiliary heads (E2E's forward)."""
        return sum(unit.flops + unit.seg.flops for unit in self.units)


def profile_model(model_cfg: dict,
                  crop_size: Sequence[int],
                  batch_size: int,
                  device: Union[str, torch.device] = 'meta',
                  optimizer_cfg: Optional[dict] = None,
                  amp: bool = False) -> MemoryProfile:
    """Measure the activation memory of every unit and head of a model, for one crop and batch.

    The segmentor is built from ``model_cfg`` through mmseg's registry as one local module
    (:func:`profiled_model_cfg`). One forward pass through all its backbone units keeps every
    graph alive, so each storage is charged to the unit that saves it first; the decode and
    auxiliary heads then run on the unit outputs they read, and the local heads on every
    candidate cut's output. Then every head runs once more as a checkpointed module runs it
    (:func:`_measure_checkpointed_heads`).

    Args:
        model_cfg: An InfoPro segmentor config (``cfg.model``), or an mmseg EncoderDecoder on a
            ResNet. Its split points are ignored; its ``checkpointing`` says what a
            checkpointed module recomputes (:func:`checkpointing_spec`).
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
    spec, uniform = checkpointing_spec(model_cfg)
    crop_size = (int(crop_size[0]), int(crop_size[1]))
    with EmulatedAutocast(torch.float16) if amp else nullcontext():
        parts = ProfiledModel(model_cfg, device)
        inputs = torch.randn(batch_size, 3, *crop_size, device=device)
        samples = random_seg_batch(batch_size, crop_size, parts.decode_head.num_classes,
                                   device=str(device))['data_samples']
        units, outputs, stage_outputs = _measure_plain(parts, inputs, samples)
        _measure_checkpointed_heads(parts, spec, units, outputs, stage_outputs, inputs, samples)
    return MemoryProfile(
        units=units, model_param_bytes=param_bytes(parts.segmentor),
        state_factor=optimizer_state_factor(optimizer_cfg), loss_weights=parts.loss_weights,
        crop_size=crop_size, batch_size=batch_size, device=str(device), checkpointing=spec,
        checkpointed=uniform, amp=amp)


def _charged(meter: SavedBytesMeter, owner, run: Callable):
    """``run()`` with its saves charged to ``owner``; returns its result, cost and FLOPs."""
    flops = FlopCounterMode(display=False)
    with meter.charge(owner), flops:
        result = run()
    return result, Cost(meter.kept_bytes[owner], meter.extra_bytes[owner]), \
        flops.get_total_flops()


def _measure_plain(parts: ProfiledModel, inputs: torch.Tensor, samples: list
                   ) -> Tuple[List[UnitCost], List[torch.Tensor], List[torch.Tensor]]:
    """The units and heads as the plain model runs them, every graph kept alive; returns the
    records, the units' outputs and the stage outputs."""
    backbone = parts.backbone
    names = backbone.unit_names
    taps = backbone._output_taps()
    units: List[UnitCost] = []
    outputs: List[torch.Tensor] = []
    stage_outputs: List[torch.Tensor] = []
    meter = SavedBytesMeter()
    kept = []  # the heads' losses: their graphs stay alive, so nothing is counted twice
    with torch.enable_grad(), meta_masks_select_all(), meter:
        x = inputs
        for i, unit in enumerate(backbone.local_parts()[0].units):
            in_key, in_bytes = storage_key(x), x.untyped_storage().nbytes()
            saved_before = meter.is_saved(x)
            x, cost, flops = _charged(meter, ('unit', i), lambda: unit(x))
            outputs.append(x)  # keeps the whole graph alive: each storage is charged once
            saves_input = in_key in meter.saved_keys[('unit', i)]
            units.append(UnitCost(
                name=names[i], forward=cost, flops=flops, param_bytes=param_bytes(unit),
                input_bytes=in_bytes,
                saves_input=saves_input and not saved_before,
                cut_input_bytes=in_bytes if saves_input and saved_before else 0,
                output_bytes=x.untyped_storage().nbytes(), saves_output=meter.is_saved(x)))
            if i in taps:
                tapped, units[i].tap, tap_flops = _charged(meter, ('tap', i),
                                                           lambda: taps[i](x))
                units[i].flops += tap_flops
            stage_outputs.append(tapped if i in taps else x)
        features = [stage_outputs[backbone.stage_end_unit(stage)]
                    for stage in backbone.out_indices]
        batch = HeadBatch(outputs[-1], features, samples, None, parts.train_cfg)
        for name, head in parts.seg_heads:
            record = units[parts.head_input_unit(head)]
            losses, cost, flops = _charged(meter, ('seg', name),
                                           lambda: as_local_head(head).head_loss(batch))
            kept.append(losses)
            record.seg_heads.append(name)
            record.seg.plain.kept += cost.kept
            record.seg.plain.extra = max(record.seg.plain.extra, cost.extra)
            record.seg.flops += flops
            record.seg.param_bytes += param_bytes(head)
        cached = {}
        for i, role, head, key in parts.local_head_sites(outputs):
            if key not in cached:
                # The cost depends only on the feature's shape: run each shape once, with
                # fresh images, as every module's w saves its own reference to the target.
                images = torch.rand(inputs.shape, device=inputs.device)
                site = HeadBatch(outputs[i], features, samples, images, parts.train_cfg)
                losses, cost, flops = _charged(meter, key, lambda: head.head_loss(site))
                kept.append(losses)
                cached[key] = (cost, flops)
            cost, flops = cached[key]
            setattr(units[i], _ROLE_FIELD[role], HeadCost(
                plain=Cost(cost.kept, cost.extra), param_bytes=param_bytes(head), flops=flops))
    return units, outputs, stage_outputs


#: The UnitCost field of each local head role.
_ROLE_FIELD = dict(reconstruction='recon', classifier='classifier')


def _head_cost(run: Callable[[], Dict[str, torch.Tensor]]) -> Cost:
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
    return Cost(kept, extra)


def _measure_checkpointed_heads(parts: ProfiledModel, spec: dict, units: List[UnitCost],
                                outputs: List[torch.Tensor], stage_outputs: List[torch.Tensor],
                                inputs: torch.Tensor, samples: list) -> None:
    """Every head's cost in a checkpointed module, each run alone on leaf copies of its inputs
    (what it reads is paid by the units: kept inputs, or the module's output)."""
    backbone = parts.backbone
    leaves = [o.detach().requires_grad_() for o in outputs]
    features = [stage_outputs[backbone.stage_end_unit(stage)].detach().requires_grad_()
                for stage in backbone.out_indices]
    batch = HeadBatch(leaves[-1], features, samples, None, parts.train_cfg)
    for name, head in parts.seg_heads:
        record = units[parts.head_input_unit(head)]
        granularity = spec['decode_head' if name == 'decode' else 'auxiliary_head']
        cost = _head_cost(lambda: _head_loss(as_local_head(head), granularity, batch))
        record.seg.checkpointed.kept += cost.kept
        record.seg.checkpointed.extra = max(record.seg.checkpointed.extra, cost.extra)
    cached = {}
    for i, role, head, key in parts.local_head_sites(outputs):
        if key not in cached:
            images = torch.rand(inputs.shape, device=inputs.device)
            site = HeadBatch(leaves[i], [], samples, images, parts.train_cfg)
            cached[key] = _head_cost(lambda: _head_loss(head, spec['local_heads'], site))
        getattr(units[i], _ROLE_FIELD[role]).checkpointed = copy.copy(cached[key])


def _head_loss(head, granularity: Union[bool, str], batch: HeadBatch) -> Dict[str, torch.Tensor]:
    """A head's losses, checkpointed at ``granularity`` (or plain when it is off)."""
    if granularity:
        return checkpointed_head_loss(head, granularity, batch)
    return head.head_loss(batch)
