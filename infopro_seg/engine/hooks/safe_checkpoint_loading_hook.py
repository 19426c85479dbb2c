"""A hook that turns on weights-only loading of mmengine checkpoints for one run."""
from contextlib import ExitStack
from typing import Optional

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ...fileio import safe_checkpoint_loading


@HOOKS.register_module()
class SafeCheckpointLoadingHook(Hook):
    """Load local checkpoints with ``load_from_local_safely`` while the run lasts.

    For configs run by tools other than this project's (``tools/train.py`` and ``tools/test.py``
    switch it on themselves): with ``custom_hooks = [dict(type='SafeCheckpointLoadingHook')]``,
    ``load_from`` and ``resume`` accept stock mmengine / mmseg training checkpoints weights-only
    (see :mod:`infopro_seg.fileio.checkpoint`). mmengine's Runner calls ``before_run`` before it
    loads or resumes; mmengine's own loader is restored in ``after_run``.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._scope: Optional[ExitStack] = None

    def before_run(self, runner) -> None:
        self._scope = ExitStack()
        self._scope.enter_context(safe_checkpoint_loading())

    def after_run(self, runner) -> None:
        if self._scope is not None:
            self._scope.close()
            self._scope = None
