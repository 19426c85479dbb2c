"""Building a backbone on the meta device when its constructor reads numbers from tensors.

mmseg's transformers compute their drop-path schedule as
``[x.item() for x in torch.linspace(0, drop_path_rate, depth)]`` in ``__init__``. Built under
``with torch.device('meta')`` (the planner, the benchmark's estimates, config checks) that
``linspace`` lands on the meta device, which holds no values, and ``.item()`` fails. Inside
:class:`HostSchedules`, ``torch.linspace`` without an explicit device runs on the CPU: the
schedule is the same numbers on any device, and parameters are still created where the caller
asked.
"""
import torch
from torch.overrides import TorchFunctionMode


class HostSchedules(TorchFunctionMode):
    """``torch.linspace`` calls without a ``device`` run on the CPU while this mode is active."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.linspace and kwargs.get('device') is None:
            kwargs['device'] = 'cpu'
        return func(*args, **kwargs)
