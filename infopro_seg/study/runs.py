"""One study run (a method and a seed): its config, its files, its results."""
import glob
import json
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

from mmengine.config import Config

from ..fileio.atomic import atomic_write_bytes
from .methods import apply_method, num_modules

METRIC_MODULE = 'infopro_seg.study.metrics'


def _log_interval(configured: int, iters: int) -> int:
    """The largest logging interval <= ``configured`` that divides ``iters`` (so the last
    iteration's losses are logged)."""
    return max(d for d in range(1, max(1, min(configured, iters)) + 1) if iters % d == 0)


def run_config(config: str, method: str, seed: int, iters: Optional[int],
               data_root: Optional[str], cfg_options: Optional[dict] = None) -> Config:
    """The full config of one run: the study's config, ``cfg_options``, the method, the study's
    schedule, data, seed and the per-class IoU metric."""
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    apply_method(cfg, method)
    if data_root is not None:
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            if loader in cfg:
                cfg[loader].dataset.data_root = data_root
    if iters is not None:
        cfg.train_cfg.max_iters = iters
        cfg.train_cfg.val_interval = iters
        for scheduler in cfg.get('param_scheduler', None) or []:
            if 'end' in scheduler and not scheduler.get('by_epoch', False):
                scheduler.end = iters
    iters = cfg.train_cfg.max_iters
    hooks = cfg.setdefault('default_hooks', {})
    if 'checkpoint' in hooks:
        hooks.checkpoint.interval = iters
    if 'logger' in hooks:
        hooks.logger.interval = _log_interval(hooks.logger.get('interval', 50), iters)
    cfg.randomness = dict(seed=seed)
    for evaluator in ('val_evaluator', 'test_evaluator'):
        if evaluator in cfg and cfg[evaluator].get('type') in ('IoUMetric', 'PerClassIoUMetric'):
            cfg[evaluator].type = 'PerClassIoUMetric'
    imports = cfg.get('custom_imports', dict(imports=[], allow_failed_imports=False))
    if METRIC_MODULE not in imports['imports']:
        imports['imports'] = list(imports['imports']) + [METRIC_MODULE]
    cfg.custom_imports = imports
    return cfg


def read_scalars(work_dir: str) -> List[dict]:
    """The records of the newest ``<timestamp>/vis_data/scalars.json`` under ``work_dir``."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(f'no scalars.json under {work_dir}: did training run?')
    with open(files[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


def summarise_scalars(records: List[dict], learnt_iou: float) -> dict:
    """Final validation metrics and final training losses of one run.

    Returns:
        dict: ``miou``, ``aacc``, ``class_iou`` ({class: IoU}), ``learnt_classes`` (IoU >=
        ``learnt_iou``), ``losses`` ({logged loss name: last logged value, a mean over the
        logger's window}) and ``module_losses`` (summed per module prefix: ``m1``, ...,
        ``decode``, ``aux``).
    """
    val = [r for r in records if 'mIoU' in r]
    train = [r for r in records if 'loss' in r and 'mIoU' not in r]
    if not val:
        raise ValueError('the run logged no validation metrics (mIoU)')
    final = val[-1]
    class_iou = {k[4:]: v for k, v in final.items() if k.startswith('IoU.')}
    losses = {k: v for k, v in (train[-1] if train else {}).items()
              if 'loss' in k and k != 'loss'}
    module_losses: Dict[str, float] = {}
    for name, value in losses.items():
        prefix = name.split('.')[0] if '.' in name else 'decode'
        module_losses[prefix] = module_losses.get(prefix, 0.0) + value
    learnt = sum(1 for v in class_iou.values() if not math.isnan(v) and v >= learnt_iou)
    return dict(miou=float(final['mIoU']), aacc=float(final.get('aAcc', float('nan'))),
                class_iou=class_iou, learnt_classes=learnt, losses=losses,
                module_losses=module_losses)


def write_run_config(cfg: Config, run_dir: str) -> str:
    """Dump a run's config to ``run_dir/config.py`` (atomically) and return the path: the run
    trains from this file, and it stays as the record of what was run."""
    os.makedirs(run_dir, exist_ok=True)
    config_path = osp.join(run_dir, 'config.py')
    atomic_write_bytes(cfg.pretty_text.encode(), config_path)
    return config_path


def run_log(run_dir: str) -> Optional[str]:
    """The newest log mmengine's Runner wrote under ``run_dir`` (``<timestamp>/<timestamp>.log``),
    or ``None``."""
    logs = sorted(glob.glob(osp.join(run_dir, '*', '*.log')))
    return logs[-1] if logs else None


def log_tail(path: str, lines: int = 15) -> str:
    """The last ``lines`` lines of a text file."""
    with open(path, errors='replace') as f:
        return ''.join(f.readlines()[-lines:])


def peak_training_bytes(cfg: Config, device: str = 'meta') -> int:
    """Peak bytes held for backward during one training step of the run's model, counted by
    the project's one meter (:func:`~infopro_seg.planning.meter.measure_step`), at the config's
    crop and per-device batch size.

    On the ``meta`` device (default) nothing is allocated, so any model fits; the planning
    package's estimate equals the CPU count (see :mod:`infopro_seg.planning.meta`). The figure is
    what local learning saves (activations); it does not depend on the seed.

    Args:
        cfg: The run's full config.
        device: ``'meta'`` or ``'cpu'``.

    Returns:
        int: Peak bytes.
    """
    import torch
    from mmseg.utils import register_all_modules

    from ..engine.optim import InfoProOptimWrapper
    from ..planning import config_batch_size, config_crop_size
    from ..planning.build import build_on_one_device
    from ..planning.meter import measure_step
    from ..utils import random_seg_batch
    register_all_modules(init_default_scope=True)
    crop = config_crop_size(cfg)
    if crop is None:
        raise ValueError('cannot tell the training crop size (no crop_size, no '
                         'data_preprocessor.size in the config); use --memory none')
    model = build_on_one_device(cfg.model.to_dict(), device)
    model.to(device)  # also tells the data preprocessor where to put batches
    model.train()
    wrapper = InfoProOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0))
    batch = random_seg_batch(config_batch_size(cfg), crop, model.decode_head.num_classes,
                             device=device, seed=0)
    return int(measure_step(model, wrapper, batch).peak_saved_bytes)


def peak_training_mb(cfg: Config, device: str) -> Tuple[float, str]:
    """:func:`peak_training_bytes` in MiB and where it was counted: on ``device``, or on the
    CPU where a loss cannot run on the meta device (data-dependent shapes, e.g. SupCon's
    per-class sampling)."""
    try:
        return peak_training_bytes(cfg, device) / 2**20, device
    except (NotImplementedError, RuntimeError) as error:
        if device != 'meta':
            raise
        print(f'[study] the meta device cannot run this model ({type(error).__name__}); '
              'measuring one step on the CPU', flush=True)
        return peak_training_bytes(cfg, 'cpu') / 2**20, 'cpu'


def run_row(method: str, seed: int, cfg: Config) -> dict:
    """The identifying part of a result row."""
    return dict(method=method, seed=seed, K=num_modules(cfg),
                iters=int(cfg.train_cfg.max_iters))
