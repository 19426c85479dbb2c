"""Which checkpoint a training run resumes from: ``--resume`` and torchrun restarts."""
import logging
import os
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.logging import print_log

from ..fileio import find_latest_checkpoint, remove_temp_files

#: The value of ``--resume`` that picks the latest complete checkpoint in the work dir.
AUTO = 'auto'


def torchrun_restart_count() -> int:
    """How often torchrun (``--max-restarts``) has restarted this worker group (0: first run)."""
    try:
        return int(os.environ.get('TORCHELASTIC_RESTART_COUNT') or 0)
    except ValueError:
        return 0


def apply_resume(cfg: Config, resume: Optional[str]) -> None:
    """Set ``cfg.resume`` and ``cfg.load_from`` from the value of ``--resume``.

    ``--resume PATH`` resumes from PATH. ``--resume`` alone or ``--resume auto`` resumes from
    the latest complete checkpoint in the work dir (:func:`~infopro_seg.fileio.
    find_latest_checkpoint`: a checkpoint whose write did not finish is never picked), after
    removing the temporary files that interrupted writers left there; with none, training
    starts at iteration 0 (from ``load_from`` if the config sets one). A run that torchrun
    restarted (``TORCHELASTIC_RESTART_COUNT`` > 0) resumes that way without ``--resume``.

    Args:
        cfg: The loaded config, ``work_dir`` set.
        resume: ``None``, ``'auto'`` or a checkpoint path.
    """
    if resume is None and torchrun_restart_count() > 0:
        resume = AUTO
    if resume is None:
        return
    if resume != AUTO:
        cfg.resume, cfg.load_from = True, resume
        return
    if osp.isdir(cfg.work_dir):
        remove_temp_files(cfg.work_dir)
    latest = find_latest_checkpoint(cfg.work_dir)
    if latest is None:
        print_log(f'resume: no complete checkpoint in {cfg.work_dir}; training starts at '
                  'iteration 0', logger='current', level=logging.WARNING)
        cfg.resume = False
        return
    print_log(f'resume: the latest complete checkpoint is {latest}', logger='current')
    cfg.resume, cfg.load_from = True, latest
