"""What tools/train.py and tools/test.py share: config loading, checks with clear errors."""
import logging
import os
import os.path as osp
import sys
from typing import Callable, Iterator, List, Optional

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

from ..fileio import ATOMIC_BACKEND, CheckpointError


class UsageError(Exception):
    """Bad input from the user: printed as one clear message, exit code 2."""


def load_config(path: str, cfg_options: Optional[dict], launcher: str,
                work_dir: Optional[str]) -> Config:
    """Load a config with mmseg's command-line conventions (work_dir: CLI > file > name)."""
    if not osp.isfile(path):
        raise UsageError(f'config file {path} not found (configs live in configs/, e.g. '
                         'configs/deeplabv3_r101_infopro_cityscapes.py)')
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
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


def check_data_roots(cfg: Config, loaders: List[str]) -> None:
    """Fail early, naming the folder and the fix, when a dataset folder is missing.

    mmseg would otherwise fail deep inside dataset construction, or (for an empty folder)
    train on nothing.
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
                    raise UsageError(
                        f'{loader}: dataset folder {folder} not found (data_root={data_root!r}). '
                        'Put Cityscapes there and run tools/dataset_converters/cityscapes.py on '
                        'it, generate the synthetic set with tools/generate_synthetic_cityscapes.py'
                        ', or set '
                        f"--cfg-options {loader}.dataset.data_root=PATH")


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


def run_cli(main: Callable[[], None]) -> None:
    """Run a tool's main(), turning bad input (:class:`UsageError`, an unusable checkpoint) into
    a one-line message and exit code 2."""
    try:
        main()
    except (UsageError, CheckpointError) as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(2)


def set_local_rank(local_rank: int) -> None:
    """torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK itself."""
    os.environ.setdefault('LOCAL_RANK', str(local_rank))


def enable_amp(cfg: Config) -> None:
    """Switch the config's optimizer wrapper to mmengine's AmpOptimWrapper (dynamic scaling)."""
    if cfg.optim_wrapper.type == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.', logger='current',
                  level=logging.WARNING)
        return
    if cfg.optim_wrapper.type != 'OptimWrapper':
        raise UsageError(f'--amp needs optim_wrapper.type OptimWrapper, got '
                         f'{cfg.optim_wrapper.type}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'
