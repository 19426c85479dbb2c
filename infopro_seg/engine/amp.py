"""mmengine's AmpOptimWrapper on any device (mmengine's own refuses to be built without a GPU)."""
from contextlib import contextmanager
from typing import Union

import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from torch import nn

from ..errors import ConfigError
from .optim.local_step import LocalStepMixin


@OPTIM_WRAPPERS.register_module()
class DeviceAmpOptimWrapper(LocalStepMixin, AmpOptimWrapper):
    """:class:`~mmengine.optim.AmpOptimWrapper` with the autocast and GradScaler of a given device.

    The loss-scaling logic is mmengine's, unchanged (``backward`` scales, ``step`` unscales once,
    skips the optimizer step if any gradient is inf/NaN and updates the scale): only the
    construction and the autocast device differ. On the CPU it runs float16 or bfloat16
    autocast with ``torch.amp.GradScaler('cpu')``, e.g. to benchmark AMP, or to test that an
    overflow in one InfoPro local module skips the whole iteration without a GPU. On CUDA use
    mmengine's ``AmpOptimWrapper`` (``tools/train.py --amp``).

    Args:
        device: ``'cpu'`` or ``'cuda'``: where autocast and the scaler run.
        loss_scale: As for AmpOptimWrapper: ``'dynamic'``, an initial scale (float, static), or a
            dict of GradScaler arguments.
        dtype: Autocast dtype, ``'float16'`` or ``'bfloat16'`` (default).
        step_each_module: Step each InfoPro local module right after its local backward
            (:mod:`~infopro_seg.engine.optim.local_step`).
        **kwargs: OptimWrapper arguments (optimizer, accumulative_counts, clip_grad).
    """

    def __init__(self,
                 device: str = 'cpu',
                 loss_scale: Union[str, float, dict] = 'dynamic',
                 dtype: Union[str, torch.dtype] = 'bfloat16',
                 step_each_module: bool = False,
                 **kwargs):
        OptimWrapper.__init__(self, **kwargs)  # AmpOptimWrapper.__init__ asserts a GPU
        # The loss scaler handles overflows: non-finite losses are not checked.
        self.init_local_step(step_each_module, check_finite=False)
        self.device = device
        self._scale_update_param = None
        if loss_scale == 'dynamic':
            self.loss_scaler = torch.amp.GradScaler(device)
        elif isinstance(loss_scale, float):
            self._scale_update_param = loss_scale
            self.loss_scaler = torch.amp.GradScaler(device, init_scale=loss_scale)
        elif isinstance(loss_scale, dict):
            self.loss_scaler = torch.amp.GradScaler(device, **loss_scale)
        else:
            raise ConfigError(f"loss_scale must be 'dynamic', a float or a dict, got "
                              f'{loss_scale!r}')
        if isinstance(dtype, str):
            if dtype not in ('float16', 'bfloat16'):
                raise ConfigError(f"dtype must be 'float16' or 'bfloat16', got {dtype!r}")
            dtype = getattr(torch, dtype)
        self.cast_dtype = dtype

    def uncounted_backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Back-propagate the loss multiplied by the current loss scale."""
        self.loss_scaler.scale(loss).backward(**kwargs)

    @contextmanager
    def optim_context(self, model: nn.Module):
        """OptimWrapper's context (no_sync while accumulating) and this device's autocast."""
        autocast = torch.autocast(self.device, dtype=self.cast_dtype)
        with OptimWrapper.optim_context(self, model), autocast:
            yield
