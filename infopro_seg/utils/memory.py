"""Measuring the memory held for backward, on any device.

On CUDA the allocator's peak (``torch.cuda.max_memory_allocated``) is the figure users compare
with mmseg's model zoo. The CPU has no such counter, so :class:`SavedTensorMeter` counts what
autograd keeps alive for backward: every tensor saved by an op, de-duplicated by storage, counted
from when it is saved until its graph is freed. That is the memory InfoPro saves (activations),
measured the same way on every device and independent of allocator caching.
"""
from typing import Dict

import torch

#: Byte units for reports (binary: MiB = 2**20 bytes, GiB = 2**30 bytes).
MiB = 1024**2
GiB = 1024**3


def storage_key(tensor: torch.Tensor) -> int:
    """An identity for a tensor's storage that also works on the meta device.

    ``data_ptr()`` is 0 for every meta tensor, so keying by it would merge all of them; the
    address of the storage implementation is unique for as long as the storage is alive, which is
    as long as a meter holds a tensor saved on it.
    """
    return tensor.untyped_storage()._cdata


class _SavedTensor:
    """A saved tensor's handle; autograd drops it when the graph is freed."""

    __slots__ = ('meter', 'key', 'tensor')

    def __init__(self, meter: 'SavedTensorMeter', key: int, tensor: torch.Tensor):
        self.meter, self.key, self.tensor = meter, key, tensor

    def __del__(self):
        self.meter._release(self.key)


class SavedTensorMeter:
    """Context manager counting the bytes of tensors saved for backward; tracks the peak.

    Works on any device, the ``meta`` device included (shapes only, nothing allocated), where it
    gives the same figures as on the CPU.

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
        self._live: Dict[int, list] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, tensor: torch.Tensor):
        if tensor.is_leaf and tensor.requires_grad:
            return tensor
        key = storage_key(tensor)
        self._on_save(key)
        entry = self._live.get(key)
        if entry is None:
            nbytes = tensor.untyped_storage().nbytes()
            self._live[key] = [nbytes, 1]
            self.current_bytes += nbytes
            self._update_peak()
        else:
            entry[1] += 1
        return _SavedTensor(self, key, tensor)

    def _on_save(self, key: int) -> None:
        """Called for every saved tensor (subclasses attribute it to an owner)."""

    def _update_peak(self) -> None:
        """Called whenever the count grows (subclasses add other memory to the peak)."""
        self.peak_bytes = max(self.peak_bytes, self.current_bytes)

    @staticmethod
    def _unpack(packed):
        return packed.tensor if isinstance(packed, _SavedTensor) else packed

    def _release(self, key: int) -> None:
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
