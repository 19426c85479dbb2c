"""The mixed-precision InfoPro optimizer wrapper: mmengine's AmpOptimWrapper with local steps."""
import torch
from mmengine.optim import AmpOptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from .local_step import LocalStepMixin


@OPTIM_WRAPPERS.register_module()
class InfoProAmpOptimWrapper(LocalStepMixin, AmpOptimWrapper):
    """:class:`~mmengine.optim.AmpOptimWrapper` (CUDA) that InfoPro's training step drives.

    Every local loss is scaled by the same loss scale; the iteration's step unscales, skips the
    update if any gradient overflowed and updates the scale, as mmengine's wrapper does. The loss
    scaler handles overflows, so non-finite losses are not checked here.

    Args:
        step_each_module: See :class:`~infopro_seg.engine.optim.local_step.LocalStepMixin`.
        **kwargs: AmpOptimWrapper arguments (``optimizer``, ``loss_scale``, ``dtype``, ...).
    """

    def __init__(self, *args, check_finite: bool = False, **kwargs):
        super().__init__(*args, check_finite=check_finite, **kwargs)

    def uncounted_backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Back-propagate the loss multiplied by the current loss scale."""
        self.loss_scaler.scale(loss).backward(**kwargs)
