"""Save the iteration in progress and stop when the job is preempted (SIGTERM, SIGUSR1)."""
import signal
import threading
from typing import Dict, List, Sequence

import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ...errors import ConfigError, TrainingPreempted
from .fault_tolerant_checkpoint_hook import FaultTolerantCheckpointHook

#: Signals that cannot be caught, so cannot ask for a checkpoint.
_UNCATCHABLE = ('SIGKILL', 'SIGSTOP')


def _signal(name: str) -> signal.Signals:
    if name in _UNCATCHABLE or not hasattr(signal.Signals, name):
        raise ConfigError(f'PreemptionCheckpointHook: {name!r} is not a signal this process can '
                          "catch; give names such as 'SIGTERM', 'SIGUSR1', 'SIGUSR2'")
    return signal.Signals[name]


@HOOKS.register_module()
class PreemptionCheckpointHook(Hook):
    """On a preemption signal, finish the iteration, save it, and exit with code 4.

    Schedulers preempt with a signal and a grace period (Slurm: SIGTERM, or the signal of
    ``--signal``; spot instances: SIGTERM). While training, this hook catches ``signals``
    (a caught signal only sets a flag, so a second one, e.g. torchrun forwarding the same
    SIGTERM, interrupts nothing). After every iteration the ranks all-reduce the flag (one int),
    so they all act at the same iteration: the :class:`FaultTolerantCheckpointHook` saves it
    (atomically; it is not saved twice if the interval saved it already), one line is logged,
    and every rank raises :class:`~infopro_seg.errors.TrainingPreempted` (exit code 4 from
    ``tools/train.py``). ``--resume`` (or a torchrun restart) continues as if never interrupted.
    An iteration is never cut short: the grace period must cover one iteration, a validation
    scheduled right before the signal, and one save.

    Before ``before_train`` and after ``after_train`` the signals keep their previous handlers
    (see :meth:`restore_handlers` for after a preemption).

    Args:
        signals: Names of the signals that preempt.
    """

    priority = 'LOWEST'  # after the parameter schedulers and the interval's checkpoint

    def __init__(self, signals: Sequence[str] = ('SIGTERM', 'SIGUSR1')) -> None:
        self.signals = [_signal(name) for name in signals]
        self.received: List[int] = []
        self._previous: Dict[signal.Signals, object] = {}
        self._checkpoint_hook = None

    def _handle(self, signum: int, frame) -> None:
        self.received.append(signum)

    def before_train(self, runner) -> None:
        """Find the checkpoint hook and catch the signals."""
        hooks = [hook for hook in runner.hooks if isinstance(hook, FaultTolerantCheckpointHook)]
        if not hooks:
            raise ConfigError('PreemptionCheckpointHook needs the FaultTolerantCheckpointHook: '
                              "set default_hooks.checkpoint.type='FaultTolerantCheckpointHook'")
        if hooks[0].by_epoch:
            raise ConfigError('PreemptionCheckpointHook saves the iteration in progress, so it '
                              'needs iteration-based checkpoints: set '
                              'default_hooks.checkpoint.by_epoch=False')
        self._checkpoint_hook = hooks[0]
        if threading.current_thread() is not threading.main_thread():
            runner.logger.warning('PreemptionCheckpointHook: not in the main thread, so signals '
                                  'cannot be caught; preemption saves nothing')
            return
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """If any rank was signalled: save this iteration on all ranks and stop."""
        flag = torch.tensor([1 if self.received else 0])
        all_reduce(flag, op='max')
        if not flag.item():
            return
        step = runner.iter + 1
        path = self._checkpoint_hook.save_now(runner)  # raises TrainingStopped if it fails
        received = ', '.join(signal.Signals(sig).name for sig in self.received) or \
            'a preemption signal on another rank'
        line = (f'preempted ({received}): iteration {step} saved to {path}; stopping with exit '
                f'code {TrainingPreempted.exit_code}, continue with --resume')
        runner.logger.warning(line)
        raise TrainingPreempted(line)

    def after_train(self, runner) -> None:
        self.restore_handlers()

    def restore_handlers(self) -> None:
        """Give the signals their previous handlers back.

        Called when training ends. After a preemption the handlers stay until the process
        exits, so that a late copy of the signal does not turn exit code 4 into a kill; a
        program that catches :class:`~infopro_seg.errors.TrainingPreempted` and goes on calls
        this itself.
        """
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
