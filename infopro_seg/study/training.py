"""Training one study run through mmengine's Runner: in this process or in a fresh one.

Both functions take the path of a dumped config and a work dir, so either can be handed to
:func:`~infopro_seg.study.study.run_study` as its ``train`` argument. The config is read and the
runner built as ``tools/train.py`` does it (:mod:`infopro_seg.engine.cli`): the config resolved
(a memory fit, ``'auto'`` split points), checked (data roots, keys), atomic checkpoint writes,
weights-only checkpoint loading.
"""
import logging
import multiprocessing
import os.path as osp
import uuid
from typing import Callable

from ..engine.cli import (build_runner, check_data_roots, load_config,
                          use_atomic_checkpoint_writes)
from ..engine.config_check import check_config
from ..fileio import safe_checkpoint_loading
from ..planning.fit import resolve_config

#: What :func:`run_study` calls to train a run: ``train(config_path, work_dir)``; it returns when
#: training (and its validation) finished and raises when it failed.
TrainFunction = Callable[[str, str], None]


def unique_experiment_name(config_path: str) -> str:
    """The config's name with a random suffix.

    mmengine keys its global MessageHub, logger, visualizer and default-scope instances by the
    experiment name (plus a timestamp to the second); two runs of one process under the same
    name within a second would share them, and with them logged scalars.
    """
    stem = osp.splitext(osp.basename(config_path))[0]
    return f'{stem}-{uuid.uuid4().hex[:12]}'


def close_log_files(logger: logging.Logger) -> None:
    """Close and detach the file handlers of a run's logger (its instance outlives the run)."""
    for handler in list(logger.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            logger.removeHandler(handler)


def train_in_process(config_path: str, work_dir: str) -> None:
    """Train and validate one run in this process, as ``tools/train.py`` would.

    Each call gets its own experiment name (:func:`unique_experiment_name`), so mmengine's
    global instances of one run are never those of another; the run's log file is closed when
    it ends. Process-wide settings that the Runner makes (random seeds, the OpenCV thread count)
    stay as the last run left them: use :func:`train_in_spawned_process` for full isolation.

    Args:
        config_path: The run's config file.
        work_dir: Where checkpoints and logs go.

    Raises:
        ConfigError: The config asks for something impossible or has a mistake (resolution
            and checks, before anything is built).
        Exception: Whatever else stopped training.
    """
    cfg = load_config(config_path, None, 'none', work_dir)
    cfg.experiment_name = unique_experiment_name(config_path)
    if isinstance(cfg.get('visualizer'), dict):
        # mmseg's configs name their visualizer 'visualizer': the instance of the first run, with
        # its vis backends writing into the first run's folder. Without a name the Runner names
        # it after the experiment.
        cfg.visualizer.pop('name', None)
    resolve_config(cfg)
    check_data_roots(cfg, ['train_dataloader', 'val_dataloader'])
    check_config(cfg, training=True)
    use_atomic_checkpoint_writes(cfg)
    with safe_checkpoint_loading():
        runner = build_runner(cfg)
        try:
            runner.train()
        finally:
            close_log_files(runner.logger)


def train_in_spawned_process(config_path: str, work_dir: str) -> None:
    """:func:`train_in_process` in a fresh process (multiprocessing's ``spawn``).

    Nothing of one run (global instances, seeds, allocator peaks) is left for the next; the
    process imports torch and the model code anew, a few seconds per run.

    Args:
        config_path: The run's config file.
        work_dir: Where checkpoints and logs go.

    Raises:
        ChildProcessError: The process did not exit cleanly (its traceback is on stderr and in
            the run's log).
    """
    process = multiprocessing.get_context('spawn').Process(
        target=train_in_process, args=(config_path, work_dir), name=f'train {work_dir}')
    process.start()
    process.join()
    if process.exitcode != 0:
        raise ChildProcessError(f'the training process of {work_dir} exited with code '
                                f'{process.exitcode}')
