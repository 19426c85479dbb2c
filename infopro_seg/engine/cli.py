"""What the tools share: running a main() with one-line errors, config loading, early checks.

A user's mistake (an :class:`~infopro_seg.errors.InfoProError`, e.g. a
:class:`~infopro_seg.errors.ConfigError`, or an unusable checkpoint) ends a tool with one line,
``error: <message>``, on stderr and the error's exit code; any other exception is a bug and keeps
its traceback. ``--debug`` (or ``INFOPRO_DEBUG=1``) shows the traceback of every error.
"""
import argparse
import logging
import os
import os.path as osp
import sys
import traceback
from typing import Callable, Iterator, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

from ..datasets.cityscapes_conversion import LABEL_SUFFIX, check_labels_converted
from ..errors import ConfigError, InfoProError
from ..fileio import ATOMIC_BACKEND, CheckpointError

#: Bad input from the user: the project's :class:`~infopro_seg.errors.ConfigError` (exit 2).
UsageError = ConfigError

#: Environment variable that, set to a non-empty value other than ``0``, works like ``--debug``.
DEBUG_ENV = 'INFOPRO_DEBUG'


def add_debug_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--debug`` (read by :func:`run_cli`) to a tool's parser."""
    parser.add_argument('--debug', action='store_true',
                        help=f'show the full traceback of any error (or set {DEBUG_ENV}=1)')


def debug_requested(argv: Optional[Sequence[str]] = None) -> bool:
    """Whether the command line has ``--debug`` or the environment sets ``INFOPRO_DEBUG``."""
    argv = sys.argv[1:] if argv is None else argv
    return '--debug' in argv or os.environ.get(DEBUG_ENV, '') not in ('', '0')


def error_line(error: BaseException) -> str:
    """An error's message on one line (a message written over several lines is joined).

    mmengine 0.10's registry lets an error of a build through unchanged (type and message), so
    a ConfigError raised deep inside ``MODELS.build`` arrives here as it was raised.
    """
    return ' '.join(part.strip() for part in str(error).splitlines() if part.strip())


def run_cli(main: Callable[[], Optional[int]], argv: Optional[Sequence[str]] = None) -> None:
    """Run a tool's ``main()`` and exit with its return code (0 for ``None``).

    A user's mistake (:class:`~infopro_seg.errors.InfoProError`, an unusable checkpoint) is
    printed as ``error: <message>`` on stderr and exits with the error's ``exit_code`` (2 for a
    :class:`~infopro_seg.errors.ConfigError` or a checkpoint, 3 for a stopped training); with
    ``--debug`` or ``INFOPRO_DEBUG=1`` its traceback is printed instead. Any other exception
    propagates with its traceback: it is a bug.

    Args:
        main: The tool's main function; it parses its own arguments.
        argv: The command line to look for ``--debug`` in (default ``sys.argv[1:]``).
    """
    try:
        code = main()
    except (InfoProError, CheckpointError) as error:
        if debug_requested(argv):
            traceback.print_exc()
        else:
            print(f'error: {error_line(error)}', file=sys.stderr, flush=True)
        sys.exit(getattr(error, 'exit_code', 2))
    sys.exit(code or 0)


def read_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """A config file with ``--cfg-options`` merged in; a missing file is a :class:`ConfigError`."""
    if not osp.isfile(path):
        raise ConfigError(f'config file {path} not found (configs live in configs/, e.g. '
                          'configs/deeplabv3_r101_infopro_cityscapes.py)')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def load_config(path: str, cfg_options: Optional[dict], launcher: str,
                work_dir: Optional[str]) -> Config:
    """Load a config with mmseg's command-line conventions (work_dir: CLI > file > name)."""
    cfg = read_config(path, cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def _datasets(dataset_cfg) -> Iterator[dict]:
    """Leaf dataset configs, looking through wrappers (RepeatDataset, ConcatDataset)."""
    if isinstance(dataset_cfg, (list, tuple)):
        for item in dataset_cfg:
            yield from _datasets(item)
    elif isinstance(dataset_cfg, dict):
        if 'dataset' in dataset_cfg:
            yield from _datasets(dataset_cfg['dataset'])
        elif 'datasets' in dataset_cfg:
            yield from _datasets(dataset_cfg['datasets'])
        else:
            yield dataset_cfg


def _reads_cityscapes_labels(dataset: dict) -> bool:
    """Whether a dataset config reads Cityscapes' ``labelTrainIds`` PNGs."""
    kind = dataset.get('type')
    name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
    return (name.split('.')[-1] == 'CityscapesDataset'
            and dataset.get('seg_map_suffix', LABEL_SUFFIX) == LABEL_SUFFIX)


def check_data_roots(cfg: Config, loaders: List[str]) -> None:
    """Fail early, naming the folder and the fix, when a dataset folder is missing or a
    Cityscapes folder has not been converted.

    mmseg would otherwise fail deep inside dataset construction, at the first iteration (a
    missing label image), or (for an empty folder) train on nothing.

    Raises:
        ConfigError: A missing folder, or Cityscapes polygons without their label images.
    """
    for loader in loaders:
        if cfg.get(loader) is None:
            continue
        for dataset in _datasets(cfg[loader].get('dataset')):
            data_root = dataset.get('data_root') or ''
            prefixes = dataset.get('data_prefix') or {}
            folders = [osp.join(data_root, prefix) for prefix in prefixes.values() if prefix]
            for folder in folders or [data_root]:
                if folder and not osp.isdir(folder):
                    raise ConfigError(
                        f'{loader}: dataset folder {folder} not found (data_root={data_root!r}). '
                        'Put Cityscapes there and run tools/dataset_converters/cityscapes.py on '
                        'it, generate the synthetic set with tools/generate_synthetic_cityscapes.py'
                        ', or set '
                        f"--cfg-options {loader}.dataset.data_root=PATH")
            if _reads_cityscapes_labels(dataset):
                check_labels_converted(data_root, prefixes.get('seg_map_path') or '')


def use_atomic_checkpoint_writes(cfg: Config) -> None:
    """Write checkpoints atomically (the ``atomic_local`` backend) unless the config's
    CheckpointHook names a file backend itself."""
    hook = cfg.get('default_hooks', {}).get('checkpoint')
    if hook is not None and hook.get('backend_args') is None and \
            hook.get('file_client_args') is None:
        hook['backend_args'] = dict(backend=ATOMIC_BACKEND)


def build_runner(cfg: Config) -> Runner:
    """The config's runner (``runner_type`` if it names one), as mmseg's tools build it."""
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def set_local_rank(local_rank: int) -> None:
    """torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK itself."""
    os.environ.setdefault('LOCAL_RANK', str(local_rank))


def enable_amp(cfg: Config) -> None:
    """Switch the config's optimizer wrapper to mmengine's AmpOptimWrapper (dynamic scaling).

    Raises:
        ConfigError: No CUDA device (mmengine's AmpOptimWrapper needs one), or the config's
            optimizer wrapper is not a plain ``OptimWrapper``.
    """
    if not torch.cuda.is_available():
        raise ConfigError(
            '--amp needs a CUDA GPU (mmengine\'s AmpOptimWrapper) and none is visible. Fix: drop '
            '--amp, or for bfloat16 autocast on the CPU use --cfg-options '
            'optim_wrapper.type=DeviceAmpOptimWrapper')
    if cfg.optim_wrapper.type == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.', logger='current',
                  level=logging.WARNING)
        return
    if cfg.optim_wrapper.type != 'OptimWrapper':
        raise ConfigError(f'--amp needs optim_wrapper.type OptimWrapper, got '
                          f'{cfg.optim_wrapper.type}; drop --amp or set the type in the config')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'
