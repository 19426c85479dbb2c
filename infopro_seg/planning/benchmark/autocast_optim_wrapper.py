"""Mixed precision by autocast alone, on any device: the benchmark's AMP off CUDA."""
from contextlib import contextmanager
from typing import Iterator, Union

import torch
from mmengine.optim import OptimWrapper
from mmengine.runner.amp import autocast
from mmseg.registry import OPTIM_WRAPPERS
from torch import nn


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """An optimizer wrapper that runs the forward pass under ``autocast``, without loss scaling.

    mmengine's ``AmpOptimWrapper`` refuses to be built without an accelerator (its loss scaler is
    CUDA's). On the CPU, autocast runs in bfloat16, which has float32's range and needs no loss
    scaling: this wrapper is what ``AmpOptimWrapper`` does there with its scaler disabled, the
    same ``optim_context`` (mmengine's ``autocast``, cache disabled) and plain backward and step.

    Args:
        dtype: The autocast type (``'bfloat16'`` by default; CPU autocast supports only it).
        **kwargs: ``OptimWrapper`` arguments (optimizer, accumulative_counts, clip_grad).
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', **kwargs):
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """The parent's context (no-sync while accumulating) under autocast."""
        with super().optim_context(model), autocast(dtype=self.cast_dtype, cache_enabled=False):
            yield
