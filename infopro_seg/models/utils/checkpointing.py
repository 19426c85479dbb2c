"""Gradient checkpointing of whole local modules: backbone units and heads.

A checkpointed region keeps only its inputs during the forward pass and runs its forward again in
its local module's backward. Regions are each backbone unit (stem piece or block: the backbone's
own list of units, so any InfoPro backbone adapter is covered) and each head. Two things must not
change the results:

- Dropout: :func:`torch.utils.checkpoint.checkpoint` restores the RNG state of the first pass
  before recomputing, so every mask is drawn again identically.
- Running statistics (BatchNorm): a training-mode forward updates them, so a recomputation would
  update them a second time (mmseg's ``with_cp`` does nothing about it). Here the buffers of
  every layer inside a region are saved before a recomputation and restored after it, so they
  are updated exactly once per iteration, as without checkpointing.

Heads are checkpointed up to their logits; the loss (up-sampling to the label size and the
cross-entropy) stays outside, so its saved tensors are freed before the head is recomputed and the
two never coexist in the module's backward.

Why units rather than mmseg's ``with_cp`` alone: a ``with_cp`` block checkpoints only when its
input requires grad, which the first block after every cut never does (its input is detached),
and stems have no ``with_cp`` at all; at 1024x2048 one such R-101 layer3 block keeps about 1.3 GB.
Units that checkpoint themselves (``with_cp`` set in the config) are left to do so, with their
running statistics guarded the same way (:class:`BlockCheckpointGuard`).

Regions are run by torch's *reentrant* variant, the one mmseg's ``with_cp`` uses: its
recomputation saves tensors through the ordinary saved-tensor hooks, so
:class:`~infopro_seg.utils.SavedTensorMeter` (the CPU and meta-device accounting) sees the
recomputation's memory as it happens. With the non-reentrant variant the meter would miss it and
report a peak that is too low. The reentrant variant needs an input that requires grad to
back-propagate into the region's parameters; where there is none (the image, a detached module
input) a zero-size anchor that does is passed along.
"""
from contextlib import contextmanager, nullcontext
from typing import Callable, Dict, Iterator, List, Tuple, Union

import torch
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...errors import ConfigError
from ...utils.meta_autocast import EmulatedAutocast, emulated_autocast_dtype

#: The parts of a local module ``model.checkpointing`` switches, by name.
CHECKPOINT_PARTS = ('backbone', 'decode_head', 'auxiliary_head', 'local_heads')

#: How a head is recomputed: ``'head'``: the whole head up to its logits is one region (it keeps
#: only its input); ``'layers'``: each conv-norm-activation layer is a region (it keeps each
#: layer's input, and only one layer's activations exist during its backward).
HEAD_GRANULARITIES = ('head', 'layers')

#: What ``True`` means per part. The ASPP head's five branches and its concatenation would all be
#: alive at once when recomputed as one region (about 0.5 GiB at 512x1024, batch 2, measured on
#: the meta device): layer by layer, only one branch is. w and psi keep only their input whole.
DEFAULT_GRANULARITY = dict(backbone=True, decode_head='layers', auxiliary_head='layers',
                           local_heads='head')


def parse_checkpointing(cfg: Union[None, bool, str, dict]) -> Dict[str, Union[bool, str]]:
    """Normalise ``model.checkpointing`` to one entry per :data:`CHECKPOINT_PARTS`.

    Args:
        cfg: ``None`` or ``False`` (off, the default); ``True`` or ``'all'`` (every part, at its
            :data:`DEFAULT_GRANULARITY`); or a dict naming parts (parts not named are off):
            ``backbone=True`` recomputes every backbone unit, a head part takes ``True``
            (its default granularity), ``'head'`` or ``'layers'`` (:data:`HEAD_GRANULARITIES`).

    Returns:
        dict: ``backbone``: bool; each head part: ``False``, ``'head'`` or ``'layers'``.

    Raises:
        ConfigError: Anything else, listing every accepted value.
    """
    if cfg is None or cfg is False:
        return {part: False for part in CHECKPOINT_PARTS}
    if cfg is True or cfg == 'all':
        return dict(DEFAULT_GRANULARITY)
    if not isinstance(cfg, dict):
        raise ConfigError(
            f'model.checkpointing={cfg!r} is not a checkpointing setting; it takes None or False '
            "(off), True or 'all' (every part), or a dict of parts, e.g. "
            "dict(backbone=True, decode_head='layers'); parts: "
            f"{', '.join(CHECKPOINT_PARTS)} (e.g. --cfg-options model.checkpointing=True)")
    unknown = sorted(set(cfg) - set(CHECKPOINT_PARTS))
    if unknown:
        raise ConfigError(f'model.checkpointing: unknown part(s) {unknown}; the parts are '
                          f"{', '.join(CHECKPOINT_PARTS)}")
    parsed = {}
    for part in CHECKPOINT_PARTS:
        value = cfg.get(part, False)
        allowed = [True, False] + ([] if part == 'backbone' else list(HEAD_GRANULARITIES))
        if not any(value is a if isinstance(a, bool) else value == a for a in allowed):
            raise ConfigError(f'model.checkpointing.{part} must be one of '
                              f"{', '.join(map(repr, allowed))}, got {value!r}")
        parsed[part] = DEFAULT_GRANULARITY[part] if value is True else value
    return parsed


def parse_module_checkpointing(cfg, num_modules: int
                               ) -> Union[Dict[str, Union[bool, str]], List[dict]]:
    """Normalise ``model.checkpointing``: one setting for every module, or one per module.

    Args:
        cfg: Any value :func:`parse_checkpointing` takes (every module alike), or a list with
            one such value per local module (e.g. ``[None, True, True, None]``: recompute only
            modules 2 and 3).
        num_modules: K.

    Returns:
        The parsed setting (a dict), or a list of K parsed settings.

    Raises:
        ConfigError: A bad value, or a list whose length is not K.
    """
    if not isinstance(cfg, (list, tuple)):
        return parse_checkpointing(cfg)
    if len(cfg) != num_modules:
        raise ConfigError(f'model.checkpointing has {len(cfg)} entries but the split points '
                          f'make K={num_modules} local modules; give one entry per module '
                          '(None or True each) or one setting for all')
    return [parse_checkpointing(entry) for entry in cfg]


@contextmanager
def buffers_restored(module: nn.Module) -> Iterator[None]:
    """Run the block and put every buffer of ``module`` back as it was (running statistics)."""
    saved = [(buffer, buffer.clone()) for buffer in module.buffers()]
    try:
        yield
    finally:
        restore_buffers(saved)


def restore_buffers(saved: List[Tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Copy saved values back into buffers without bumping their autograd version.

    The recomputed graph saved the running statistics (BatchNorm's backward takes them as inputs
    but, in training mode, does not use them) and is back-propagated right after this; an
    ordinary in-place copy would make that backward fail its version check.
    """
    for buffer, value in saved:
        buffer.data.copy_(value)


def checkpoint_call(function: Callable, stateful: nn.Module, *args):
    """``function(*args)``, recomputed in backward instead of keeping its activations.

    A plain call where no backward can follow (gradients disabled).

    Args:
        function: Takes ``*args``, returns a tensor or a tuple of tensors.
        stateful: The module(s) ``function`` runs; their buffers are restored after each
            recomputation so running statistics are updated once.
        *args: Tensors (or ``None``/other values, passed through); the tensors are kept.

    Returns:
        Whatever ``function`` returns.
    """
    if not torch.is_grad_enabled():
        return function(*args)
    tensors = [arg for arg in args if isinstance(arg, torch.Tensor)]
    anchor = ()
    if not any(tensor.requires_grad for tensor in tensors):
        # Without an input that requires grad, the reentrant variant's output would not either,
        # and the parameters inside would get no gradient.
        device = tensors[0].device if tensors else None
        anchor = (torch.empty(0, device=device, requires_grad=True), )
    calls = []
    # torch's checkpoint recomputes under the forward's autocast state; do the same for the
    # emulation that memory estimates use on the meta device.
    emulated = emulated_autocast_dtype()

    def run(*inputs):
        inputs = inputs[:len(args)]  # drop the anchor
        calls.append(None)
        if len(calls) == 1:  # the forward pass
            return function(*inputs)
        # A recomputation in backward.
        with buffers_restored(stateful), (EmulatedAutocast(emulated) if emulated is not None
                                          else nullcontext()):
            return function(*inputs)

    return checkpoint(run, *args, *anchor, use_reentrant=True)


class CheckpointedUnit(nn.Module):
    """Runs a backbone unit or a head's layer through :func:`checkpoint_call`.

    Used in the local modules' on-demand views only (backbone parts, head views): the model and
    its state dict keep mmseg's modules and names.

    Args:
        unit: The unit or layer (one input tensor, one output tensor).
    """

    def __init__(self, unit: nn.Module):
        super().__init__()
        self.unit = unit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return checkpoint_call(self.unit, self.unit, x)


def checkpoints_itself(unit: nn.Module) -> bool:
    """Whether a unit contains a block with mmseg's ``with_cp`` switched on."""
    return any(getattr(module, 'with_cp', False) is True for module in unit.modules())


def wrap_units_for_checkpointing(units: nn.ModuleList) -> None:
    """Wrap, in place, every unit that does not checkpoint itself in :class:`CheckpointedUnit`."""
    for index, unit in enumerate(units):
        if not isinstance(unit, CheckpointedUnit) and not checkpoints_itself(unit):
            units[index] = CheckpointedUnit(unit)


class BlockCheckpointGuard:
    """Keeps the running statistics of a ``with_cp`` backbone block updated once per forward.

    mmseg's blocks (ResNet, ResNeXt, ResNeSt, MobileNetV2, ...) checkpoint themselves when
    ``with_cp`` is set; their recomputation happens in backward, outside the block's own call.
    A pre-hook on the block records whether the current call checkpoints; a pre-hook on each layer
    inside that owns buffers saves them when it runs outside the block's call (a recomputation),
    and its forward hook restores them.

    Args:
        block: A module with a ``with_cp`` attribute.
    """

    def __init__(self, block: nn.Module):
        self.block = block
        self.checkpointed = False  # whether the latest call of the block checkpointed
        self.in_call = False  # inside the block's own call (the forward pass)
        self._saved: Dict[int, List] = {}
        self._layer_handles: Dict[int, list] = {}
        self.handles = [
            block.register_forward_pre_hook(self._block_enter),
            block.register_forward_hook(self._block_exit, always_call=True)
        ]
        self._hook_layers()

    def _hook_layers(self) -> None:
        """Hook every layer inside the block that owns buffers (again after a module swap,
        e.g. mmengine reverting SyncBN to BN)."""
        layers = {id(layer): layer for layer in self.block.modules()
                  if next(layer.buffers(recurse=False), None) is not None}
        if layers.keys() == self._layer_handles.keys():
            return
        for handles in self._layer_handles.values():
            for handle in handles:
                handle.remove()
        self._layer_handles = {
            key: [layer.register_forward_pre_hook(self._layer_enter),
                  layer.register_forward_hook(self._layer_exit, always_call=True)]
            for key, layer in layers.items()
        }

    def _block_enter(self, block: nn.Module, args: tuple) -> None:
        x = args[0] if args else None
        # mmseg's blocks checkpoint when ``with_cp and x.requires_grad``; no backward, no
        # recomputation, without gradients.
        self.checkpointed = bool(block.with_cp and torch.is_grad_enabled()
                                 and isinstance(x, torch.Tensor) and x.requires_grad)
        self.in_call = True
        if self.checkpointed:
            self._hook_layers()

    def _block_exit(self, block: nn.Module, args: tuple, output) -> None:
        self.in_call = False

    def _layer_enter(self, layer: nn.Module, args: tuple) -> None:
        if self.checkpointed and not self.in_call:
            self._saved[id(layer)] = [(b, b.clone()) for b in layer.buffers(recurse=False)]

    def _layer_exit(self, layer: nn.Module, args: tuple, output) -> None:
        saved = self._saved.pop(id(layer), None)
        if saved is not None:
            restore_buffers(saved)

    def remove(self) -> None:
        """Remove the hooks."""
        for handle in self.handles + sum(self._layer_handles.values(), []):
            handle.remove()
        self.handles, self._layer_handles = [], {}


def _is_layer(module: nn.Module) -> bool:
    return isinstance(module, (ConvModule, DepthwiseSeparableConvModule))


def _outermost_layers(module: nn.Module) -> Iterator[Tuple[nn.Module, str, nn.Module]]:
    """``(parent, name, layer)`` for every conv-norm-activation layer inside ``module`` that is
    not itself inside such a layer."""
    for name, child in module.named_children():
        if _is_layer(child):
            yield module, name, child
        else:
            yield from _outermost_layers(child)


class LayerCheckpointedView(nn.Module):
    """Runs a module with each of its conv-norm-activation layers through
    :class:`CheckpointedUnit`.

    For the duration of a call, every such layer is registered in its parent under its own name
    wrapped in a :class:`CheckpointedUnit` (``register_module``), and put back when the call
    returns or raises; so the module's own ``forward`` runs unchanged and calls the wrapped
    layers, and outside the call the module is as it was (its parameters, names and state dict
    never change). A recomputation in backward runs the layer itself, not its parent, so it does
    not depend on the swap.

    Args:
        module: A module containing :class:`~mmcv.cnn.ConvModule` or
            :class:`~mmcv.cnn.DepthwiseSeparableConvModule` layers.
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module
        # A plain list: the parents and layers are registered in ``module`` already.
        self.sites = list(_outermost_layers(module))

    @contextmanager
    def _layers_wrapped(self) -> Iterator[None]:
        for parent, name, layer in self.sites:
            parent.register_module(name, CheckpointedUnit(layer))
        try:
            yield
        finally:
            for parent, name, layer in self.sites:
                parent.register_module(name, layer)

    def forward(self, *args, **kwargs):
        with self._layers_wrapped():
            return self.module(*args, **kwargs)


def layer_checkpointed_view(module: nn.Module) -> nn.Module:
    """``module`` with each conv-norm-activation layer run through :class:`CheckpointedUnit`
    (:class:`LayerCheckpointedView`); the module itself is left as it is.

    Each layer keeps only its input; one layer at a time is recomputed. A module that is a layer
    itself is one :class:`CheckpointedUnit`; a module without layers is returned as it is.
    """
    if _is_layer(module):
        return CheckpointedUnit(module)
    view = LayerCheckpointedView(module)
    return view if view.sites else module


def guard_with_cp_blocks(backbone: nn.Module) -> List[BlockCheckpointGuard]:
    """A :class:`BlockCheckpointGuard` for every block of ``backbone`` with ``with_cp`` on.

    Blocks a config set ``with_cp`` on (mmseg's switch) then update their running statistics
    once, as every checkpointed region here does.
    """
    return [BlockCheckpointGuard(module) for module in backbone.modules()
            if module is not backbone and getattr(module, 'with_cp', False) is True]
