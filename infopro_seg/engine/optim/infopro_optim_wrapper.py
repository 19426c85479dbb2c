"""The fp32 InfoPro optimizer wrapper: mmengine's OptimWrapper with the local-step protocol."""
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from .local_step import LocalStepMixin


@OPTIM_WRAPPERS.register_module()
class InfoProOptimWrapper(LocalStepMixin, OptimWrapper):
    """:class:`~mmengine.optim.OptimWrapper` that InfoPro's training step drives.

    Everything of mmengine's wrapper (accumulation, ``clip_grad``, ``optim_context``,
    ``update_params`` for models trained end to end) is unchanged; InfoPro's segmentor calls
    :meth:`local_backward` per local module and :meth:`finish_iteration` once
    (:mod:`~infopro_seg.engine.optim.local_step`).

    Args:
        optimizer: The optimizer.
        step_each_module: See :class:`~infopro_seg.engine.optim.local_step.LocalStepMixin`.
        check_finite: Stop on a NaN/inf local loss (default on).
        **kwargs: OptimWrapper arguments (``accumulative_counts``, ``clip_grad``).
    """
