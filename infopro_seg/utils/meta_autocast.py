"""Autocast's casting rules where ``torch.autocast`` does not run: the meta device.

Memory estimates run a training step on the meta device (shapes only, nothing allocated), but
autocast dispatches by device and has no meta implementation, so an AMP step there would run in
float32. :class:`EmulatedAutocast` applies the casts CUDA's float16 autocast makes to the ops
that matter for memory (what each op saves for backward takes the dtype it runs in):

- convolutions and matrix products run in the low-precision dtype (inputs, weights and biases
  cast; the cast weights are saved for backward, as under autocast);
- softmax/log-softmax, the losses (cross-entropy, NLL, BCE with logits, MSE, L1), group and layer
  norm, exp/log/pow run in float32;
- every other op runs in its inputs' dtype (BatchNorm, ReLU, pooling, interpolation,
  concatenation), as autocast leaves it.

Parameters, gradients and optimizer state stay float32 (the model is not converted). It is an
emulation of autocast's op lists for estimates, not autocast itself: ops outside these lists that
a real run would cast are left alone. Checkpointed regions recompute under it as they would under
autocast (:func:`emulated_autocast_dtype`).
"""
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

_LOWER = {
    torch.conv1d, torch.conv2d, torch.conv3d, torch.conv_transpose1d, torch.conv_transpose2d,
    torch.conv_transpose3d, F.linear, torch.matmul, torch.Tensor.matmul, torch.mm,
    torch.Tensor.mm, torch.bmm, torch.Tensor.bmm, torch.addmm, torch.baddbmm, torch.addbmm,
    torch.prelu
}
_FLOAT32 = {
    # The Python functionals dispatch under their own names; the builtins they call do not
    # reach the mode again.
    F.softmax, F.log_softmax, F.cross_entropy, F.nll_loss, F.binary_cross_entropy,
    F.binary_cross_entropy_with_logits, F.mse_loss, F.l1_loss, F.smooth_l1_loss, F.group_norm,
    F.layer_norm,
    torch.softmax, torch.Tensor.softmax, torch.log_softmax, torch.Tensor.log_softmax,
    torch._C._nn.cross_entropy_loss, torch._C._nn.nll_loss_nd, torch._C._nn.nll_loss,
    torch._C._nn.nll_loss2d, torch.binary_cross_entropy_with_logits,
    torch._C._nn.binary_cross_entropy, torch._C._nn.mse_loss, torch._C._nn.l1_loss,
    torch._C._nn.smooth_l1_loss, torch.group_norm, torch.layer_norm, torch.exp, torch.Tensor.exp,
    torch.log, torch.Tensor.log, torch.pow, torch.Tensor.pow
}


_ACTIVE: List[torch.dtype] = []


def emulated_autocast_dtype() -> Optional[torch.dtype]:
    """The dtype of the innermost active :class:`EmulatedAutocast`, else ``None``."""
    return _ACTIVE[-1] if _ACTIVE else None


def _cast(value, dtype: torch.dtype):
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != dtype:
        return value.to(dtype)
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(v, dtype) for v in value)
    return value


class EmulatedAutocast(TorchFunctionMode):
    """Context manager: CUDA autocast's casts, on any device (see the module docstring).

    Args:
        dtype: The low-precision dtype, ``torch.float16`` (default) or ``torch.bfloat16``.

    Example:
        >>> with torch.device('meta'):
        ...     model = MODELS.build(cfg.model)
        >>> with SavedTensorMeter() as meter, EmulatedAutocast():
        ...     model.train_step(batch, optim_wrapper)
    """

    def __init__(self, dtype: torch.dtype = torch.float16):
        super().__init__()
        self.dtype = dtype

    def __enter__(self):
        _ACTIVE.append(self.dtype)
        return super().__enter__()

    def __exit__(self, *exc):
        _ACTIVE.pop()
        return super().__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _LOWER:
            args, kwargs = _cast(args, self.dtype), {k: _cast(v, self.dtype)
                                                     for k, v in kwargs.items()}
        elif func in _FLOAT32:
            args, kwargs = _cast(args, torch.float32), {k: _cast(v, torch.float32)
                                                        for k, v in kwargs.items()}
        return func(*args, **kwargs)
