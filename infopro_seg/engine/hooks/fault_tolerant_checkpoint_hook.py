"""mmengine's CheckpointHook, made safe against failed saves and able to save on request."""
import os.path as osp
from collections import deque
from typing import Optional

import torch
from mmengine.dist import all_reduce, is_main_process
from mmengine.hooks import CheckpointHook
from mmseg.registry import HOOKS

from ...errors import ConfigError, TrainingStopped
from ...fileio import atomic_write_bytes
from ...fileio.write_errors import describe_write_error

#: What ``on_save_error`` may be.
SAVE_ERROR_POLICIES = ('stop', 'retry')


@HOOKS.register_module()
class FaultTolerantCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose saves never cost an earlier checkpoint, on any number of ranks.

    Differences from mmengine's hook (the arguments are the same, plus ``on_save_error``):

    - **Order**: mmengine removes the checkpoints beyond ``max_keep_ckpts`` *before* it writes the
      new one, and writes ``last_checkpoint`` with a plain ``open``; a save that fails (full disk)
      can leave no checkpoint at all and an empty ``last_checkpoint``. Here the new checkpoint is
      written first, then ``last_checkpoint`` (atomically), and only then are old ones removed.
    - **Failed saves** (any ``OSError``: full disk, quota, read-only or unwritable work dir): the
      earlier checkpoints and ``last_checkpoint`` stay as they were; one line names the path, the
      free space and the fix; then with ``on_save_error='stop'`` (default) every rank stops with
      :class:`~infopro_seg.errors.TrainingStopped` (exit code 3), with ``'retry'`` the run goes
      on and saves again at the next interval. All ranks learn the outcome from rank 0 (one
      all-reduce per save), so they stop or go on together.
    - **Per-rank data**: before each save it calls the hook point
      ``before_save_checkpoint_on_all_ranks(runner)`` on every rank (``before_save_checkpoint``
      runs on rank 0 only, which writes the file), where hooks gather what other ranks must add
      (the :class:`ExactResumeHook`'s random states).
    - **Saves on request**: :meth:`save_now` saves the current iteration off the interval (the
      :class:`PreemptionCheckpointHook` uses it).

    Args:
        on_save_error: ``'stop'`` or ``'retry'`` (see above).
        **kwargs: ``CheckpointHook``'s arguments.
    """

    def __init__(self, on_save_error: str = 'stop', **kwargs) -> None:
        if on_save_error not in SAVE_ERROR_POLICIES:
            raise ConfigError(f'FaultTolerantCheckpointHook: on_save_error must be one of '
                              f'{SAVE_ERROR_POLICIES}, got {on_save_error!r}')
        super().__init__(**kwargs)
        self.on_save_error = on_save_error
        self.saved_iter: Optional[int] = None  # the iteration saved last by this run

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Save every ``interval`` iterations and at the last one (as mmengine's hook)."""
        if self.by_epoch:
            return
        if self.every_n_train_iters(runner, self.interval, self.save_begin) or (
                self.save_last and self.is_last_train_iter(runner)):
            self.save_now(runner, stop_on_error=self.on_save_error == 'stop')

    def save_now(self, runner, stop_on_error: bool = True) -> Optional[str]:
        """Save the iteration just trained (call on every rank, after its ``after_train_iter``
        hooks of higher priority). A second call for the same iteration saves nothing.

        Args:
            runner: The runner.
            stop_on_error: Raise :class:`TrainingStopped` if the save fails; else log the error
                and return ``None``.

        Returns:
            str or None: The checkpoint's path, or ``None`` if the save failed.

        Raises:
            TrainingStopped: The save failed and ``stop_on_error`` (on every rank).
        """
        step = runner.iter + 1
        if self.saved_iter == step:
            return self.last_ckpt
        runner.logger.info(f'Saving checkpoint at {step} iterations')
        runner.call_hook('before_save_checkpoint_on_all_ranks')
        message = None
        try:
            self._save_checkpoint(runner)
        except OSError as error:
            message = self._failure(runner, error, self.filename_tmpl.format(step))
        failed = torch.tensor([0 if message is None else 1])
        all_reduce(failed, op='max')  # one rank failed: all act on it
        if not failed.item():
            self.saved_iter = step
            return self.last_ckpt
        message = message or 'rank 0 could not write the checkpoint (its log says why)'
        if stop_on_error:
            raise TrainingStopped(message)
        runner.logger.error(f'{message}; training goes on and saves again at the next interval')
        return None

    def _failure(self, runner, error: OSError, filename: str) -> str:
        """The one line that says what failed and that the previous checkpoint is intact."""
        path = self.file_backend.join_path(self.out_dir, filename)
        previous = self.last_ckpt or runner.message_hub.get_info('last_ckpt')
        kept = f'the previous checkpoint {previous} is intact' \
            if previous and self.file_backend.exists(previous) else 'no earlier checkpoint exists'
        return f'{describe_write_error(error, path)}; {kept} (resume from it with --resume)'

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        """Write the checkpoint, then ``last_checkpoint``, then remove outdated checkpoints."""
        filename = self.filename_tmpl.format(step)
        path = self.file_backend.join_path(self.out_dir, filename)
        hub = runner.message_hub
        before = (self.last_ckpt, hub.get_info('last_ckpt'),
                  list(getattr(self, 'keep_ckpt_ids', [])))
        outdated = []
        # The checkpoint records itself as the last one and among those kept (as mmengine's).
        self.last_ckpt = path
        hub.update_info('last_ckpt', path)
        if self.max_keep_ckpts > 0 and (not self.keep_ckpt_ids or self.keep_ckpt_ids[-1] != step):
            steps = list(self.keep_ckpt_ids) + [step]
            outdated = steps[:-self.max_keep_ckpts]
            self.keep_ckpt_ids = deque(steps[-self.max_keep_ckpts:], self.max_keep_ckpts)
            hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        try:
            runner.save_checkpoint(
                self.out_dir, filename, self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler, meta=meta,
                by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
            if is_main_process():
                atomic_write_bytes(path.encode(), osp.join(runner.work_dir, 'last_checkpoint'))
        except BaseException:
            self.last_ckpt = before[0]
            hub.update_info('last_ckpt', before[1])
            if self.max_keep_ckpts > 0:
                self.keep_ckpt_ids = deque(before[2], self.max_keep_ckpts)
                hub.update_info('keep_ckpt_ids', before[2])
            raise
        if is_main_process():
            for old in outdated:
                self._remove(runner, self.file_backend.join_path(
                    self.out_dir, self.filename_tmpl.format(old)))

    def _remove(self, runner, path: str) -> None:
        """Remove an outdated checkpoint; failing to is only worth a warning."""
        try:
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # checkpoints saved by deepspeed are folders
                self.file_backend.rmtree(path)
        except OSError as error:
            runner.logger.warning(f'could not remove the outdated checkpoint {path} ({error})')
