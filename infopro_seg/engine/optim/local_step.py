"""InfoPro's training step as an optimizer-wrapper protocol: K local backward passes, one step.

mmengine's :class:`~mmengine.optim.OptimWrapper` is built around one ``backward`` per iteration:
it counts backward calls to decide when gradients are synchronised (``should_sync``), when the
accumulated gradients are applied (``should_update``) and how a loss is scaled for accumulation
(``scale_loss``). An InfoPro iteration back-propagates K losses, one per local module, each freeing
its module's graph before the next module runs. :class:`LocalStepMixin` adds the two calls that
iteration needs, and owns the counting:

- :meth:`~LocalStepMixin.local_backward` (once per local module): scale the loss for
  accumulation, back-propagate it (through AMP's loss scaler where there is one) without counting;
- :meth:`~LocalStepMixin.finish_iteration` (once per iteration): count the iteration, and step and
  zero the gradients when the wrapper says so.

Every module therefore sees the iteration's count: the same loss scale, the same ``no_sync``
decision in ``optim_context`` (per-module DDP), the same update decision.

``step_each_module=True`` steps each module as soon as its gradients are final, i.e. right after
its own local backward (its output went on detached, so nothing later adds to them), and frees its
gradients before the next module runs: gradients of only one module are alive at a time instead
of all K. With the optimizer's gradients set to ``None`` between iterations, ``optimizer.step()``
after module k's backward updates exactly module k's parameters (PyTorch's optimizers skip
parameters without a gradient), so SGD and AdamW give the same parameters as one step at the end
(tested). What the mode means elsewhere:

- gradient accumulation: not supported (``accumulative_counts`` must be 1): accumulated
  gradients of every module live across iterations anyway, so an early step saves nothing;
- per-module DDP: a module's DDP has all-reduced its gradients when its backward returns, so the
  early step sees the synchronised gradients;
- AMP: each module's step unscales and checks only that module's gradients; an overflow skips
  that module's step and lowers the scale before the next module (the scaler's ``update`` runs
  after every module's step, so its growth interval counts module steps);
- ``clip_grad``: each module's gradients are clipped on their own (a per-module norm).

Non-finite losses: with ``check_finite=True`` (default of the fp32 wrappers) a NaN or inf local
loss stops the run with :class:`~infopro_seg.errors.TrainingStopped`, naming the module, the loss
terms and the iteration, before anything of the iteration is applied. The losses are checked
together when the iteration finishes, one device synchronisation per iteration, so the modules
run without waiting on each other; with ``step_each_module`` each module's loss is checked before
its own step (modules before it have stepped). Under AMP the
loss scaler's skip-and-rescale handles overflows, so the AMP wrappers do not check.
"""
import math
from typing import Dict, List, Optional, Tuple

import torch

from ...errors import ConfigError, TrainingStopped


class LocalStepMixin:
    """The local-learning protocol for an mmengine OptimWrapper class (list it first).

    Args:
        step_each_module: Step (and free the gradients of) each local module right after its
            local backward instead of once at the end of the iteration.
        check_finite: Stop on a non-finite local loss (see the module docstring).
        **kwargs: The wrapped OptimWrapper class's arguments.
    """

    def __init__(self, *args, step_each_module: bool = False, check_finite: bool = True,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.init_local_step(step_each_module, check_finite)

    def init_local_step(self, step_each_module: bool, check_finite: bool) -> None:
        """Set the protocol's options (for subclasses whose ``__init__`` bypasses this one)."""
        self.step_each_module = bool(step_each_module)
        self.check_finite = bool(check_finite)
        #: ``(loss, module, log_vars)`` of this iteration's local losses, not checked yet.
        self._unchecked: List[Tuple[torch.Tensor, str, Dict[str, torch.Tensor]]] = []
        if self.step_each_module and self._accumulative_counts != 1:
            raise ConfigError(
                'optim_wrapper.step_each_module=True cannot be combined with gradient '
                f'accumulation (accumulative_counts={self._accumulative_counts}): accumulated '
                'gradients live across iterations, so stepping early saves nothing. Fix: drop '
                'step_each_module or set accumulative_counts=1')

    # mmengine's one-backward protocol, kept for models trained end to end -----------------------
    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Back-propagate one loss and count one iteration (mmengine's ``backward``)."""
        self.uncounted_backward(loss, **kwargs)
        self._inner_count += 1  # the counter mmengine asks subclasses to keep

    def uncounted_backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Back-propagate ``loss`` (already scaled for accumulation) without counting it."""
        loss.backward(**kwargs)

    # InfoPro's protocol ---------------------------------------------------------------------------
    def local_backward(self, loss: torch.Tensor, module: str = '',
                       log_vars: Optional[Dict[str, torch.Tensor]] = None) -> None:
        """Back-propagate one local module's loss; the iteration is not counted yet.

        Args:
            loss: The module's total loss (unscaled).
            module: The module's name, for messages (e.g. ``'module 2'``).
            log_vars: The module's loss terms, named in the message of a non-finite loss.
        """
        # A meta tensor (memory estimates) has no value to check.
        if self.check_finite and loss.device.type != 'meta':
            self._unchecked.append((loss.detach(), module, log_vars or {}))
        # should_sync(): the backward about to be made belongs to an iteration that updates.
        stepping = self.step_each_module and self.should_sync()
        if stepping:
            self._check_losses()
        self.uncounted_backward(self.scale_loss(loss))
        if stepping:
            self.step()
            self.optimizer.zero_grad(set_to_none=True)

    def finish_iteration(self) -> bool:
        """Count the iteration; step and zero the gradients if it is an update iteration.

        Returns:
            bool: Whether the parameters were updated in this iteration.
        """
        self._check_losses()
        self._inner_count += 1
        if not self.should_update():
            return False
        if not self.step_each_module:
            self.step()
        self.zero_grad()
        return True

    def _check_losses(self) -> None:
        """Raise :class:`TrainingStopped` for the first non-finite unchecked loss (one device
        synchronisation for all of them)."""
        unchecked, self._unchecked = self._unchecked, []
        if not unchecked:
            return
        finite = torch.stack([torch.isfinite(loss) for loss, _, _ in unchecked])
        if bool(finite.all()):
            return
        loss, module, log_vars = unchecked[int((~finite).nonzero()[0])]
        raise TrainingStopped(self._nonfinite_message(loss, module, log_vars))

    def _nonfinite_message(self, loss: torch.Tensor, module: str,
                           log_vars: Dict[str, torch.Tensor]) -> str:
        bad = [f'{name}={float(value):g}' for name, value in log_vars.items()
               if name != 'loss' and isinstance(value, torch.Tensor)
               and not math.isfinite(float(value))]
        terms = ', '.join(bad) if bad else f'loss={float(loss):g}'
        return (f'non-finite loss in local {module or "module"} at iteration '
                f'{self._inner_count + 1}: {terms}; training stopped before this iteration '
                'changed any parameter (step_each_module: earlier modules have stepped). Fix: '
                'lower the learning rate or the loss weights, or resume from the last checkpoint')
