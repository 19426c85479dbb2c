"""Measuring the memory held for backward, on any device.

On CUDA the allocator's peak (``torch.cuda.max_memory_allocated``) is the figure users compare
with mmseg's model zoo. The CPU has no such counter, so :class:`SavedTensorMeter` counts what
autograd keeps alive for backward: every tensor saved by an op, de-duplicated by storage, counted
from when it is saved until its graph is freed. That is the memory InfoPro saves (activations),
measured the same way on every device and independent of allocator caching.
"""
from typing import Dict, Tuple

import torch


class _SavedTensor:
    """A saved tensor's handle; autograd drops it when the graph is freed."""

    __slots__ = ('meter', 'key', 'tensor')

    def __init__(self, meter: 'SavedTensorMeter', key: Tuple, tensor: torch.Tensor):
        self.meter, self.key, self.tensor = meter, key, tensor

    def __del__(self):
        self.meter._release(self.key)


class SavedTensorMeter:
    """Context manager counting the bytes of tensors saved for backward; tracks the peak.

    Parameters (leaf tensors that require grad) are not counted: they are alive anyway. Casts of
    them (autocast) are, as they are real memory held for backward.

    Example:
        >>> with SavedTensorMeter() as meter:
        ...     loss = model(x).sum(); loss.backward()
        >>> meter.peak_bytes
    """

    def __init__(self):
        self.current_bytes = 0
        self.peak_bytes = 0
        self._live: Dict[Tuple, list] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, tensor: torch.Tensor):
        if tensor.is_leaf and tensor.requires_grad:
            return tensor
        storage = tensor.untyped_storage()
        key = (tensor.device, storage.data_ptr())
        entry = self._live.get(key)
        if entry is None:
            self._live[key] = [storage.nbytes(), 1]
            self.current_bytes += storage.nbytes()
            self.peak_bytes = max(self.peak_bytes, self.current_bytes)
        else:
            entry[1] += 1
        return _SavedTensor(self, key, tensor)

    @staticmethod
    def _unpack(packed):
        return packed.tensor if isinstance(packed, _SavedTensor) else packed

    def _release(self, key: Tuple) -> None:
        entry = self._live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del self._live[key]
            self.current_bytes -= entry[0]

    def __enter__(self) -> 'SavedTensorMeter':
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)
