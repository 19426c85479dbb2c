"""The saved-bytes meter: what a training step keeps for backward, by owner, on any device.

:class:`SavedBytesMeter` extends :class:`~infopro_seg.utils.SavedTensorMeter` (the bytes autograd
keeps saved, storages counted once) with what the planner and the benchmark need: sections whose
saves are charged to an owner (a unit, a head), their transient peaks, and the gradient bytes of
the parameters as backward creates them (a whole training step's peak).
"""
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from typing import Dict, Hashable, Iterable, Iterator, Optional

import torch
from torch import nn

from ..utils.memory import SavedTensorMeter, storage_key
from ..utils.meta_autocast import EmulatedAutocast
from .meta import meta_masks_select_all


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

    def track_grads(self, params: Iterable[nn.Parameter],
                    optimizer: Optional[torch.optim.Optimizer] = None) -> None:
        """Also count each parameter's gradient from when it first appears.

        Gradients that exist already (not set to ``None`` by the last ``zero_grad``) are counted
        from the start. With ``optimizer``, the gradients it steps stop counting after its step
        (the InfoPro wrappers set them to ``None`` right after), so a module that steps and frees
        its gradients before the next module runs is counted as it happens.
        """
        if optimizer is not None:
            self._grad_handles.append(optimizer.register_step_post_hook(self._on_step))
        for param in params:
            if not param.requires_grad:
                continue
            if param.grad is not None:
                self._grad_seen.add(id(param))
                self.grad_bytes += param.grad.numel() * param.grad.element_size()
            self._grad_handles.append(param.register_post_accumulate_grad_hook(self._on_grad))
        self._update_peak()

    def _on_step(self, optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        for group in optimizer.param_groups:
            for param in group['params']:
                if id(param) in self._grad_seen and param.grad is not None:
                    self._grad_seen.discard(id(param))
                    self.grad_bytes -= param.grad.numel() * param.grad.element_size()

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


def measure_step(model: nn.Module, optim_wrapper, batch: dict,
                 emulated_autocast: Optional[torch.dtype] = None) -> SavedBytesMeter:
    """One training step of ``model`` under a :class:`SavedBytesMeter` that also counts the
    gradients (from their creation until the optimizer step that consumes them).

    The one way the planner's checks, the benchmark and the study measure a step on the CPU or
    the meta device.

    Args:
        model: A segmentor in training mode, on its device.
        optim_wrapper: Its optimizer wrapper (an InfoPro one for an InfoPro model).
        batch: A batch as the data loader gives it.
        emulated_autocast: Run the step under
            :class:`~infopro_seg.utils.meta_autocast.EmulatedAutocast` of this dtype (AMP on the
            meta device).

    Returns:
        SavedBytesMeter: ``peak_bytes`` (saved + gradients) and ``peak_saved_bytes``.
    """
    meter = SavedBytesMeter()
    meter.track_grads(model.parameters(), optim_wrapper.optimizer)
    on_meta = next(model.parameters()).device.type == 'meta'
    with meter, meta_masks_select_all() if on_meta else nullcontext(), \
            EmulatedAutocast(emulated_autocast) if emulated_autocast is not None \
            else nullcontext():
        model.train_step(batch, optim_wrapper)
    return meter
