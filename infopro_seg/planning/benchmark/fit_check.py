"""The GPU check's last stage: plan with the fit, train through mmengine's Runner, measure the peak.

A config is fitted to a memory budget (:func:`infopro_seg.planning.fit.apply_fit`: split points,
checkpointing and AMP written into the config before anything is built), then trained for a few
iterations on a small generated Cityscapes-format set by the config's runner (mmengine's
``Runner``, or the one its ``runner_type`` names, as the tools build it), with one
validation pass at the end (its whole-image inference is part of what the budget must hold).

What is measured, per device:

- CUDA: ``torch.cuda.max_memory_allocated()`` and ``max_memory_reserved()`` of the whole run
  (model build, training, validation; the stage runs in a process of its own, so nothing else is
  in them), against the device's total memory and the fit's budget.
- CPU (no allocator peak): the saved-bytes meter of every training iteration (bytes saved for
  backward + gradients, plus parameters, buffers and optimizer state), counted as the planner
  counts; the growth of the process's max RSS over training is reported beside it.
"""
import os.path as osp
import resource
import statistics
import time
from typing import List, Optional, Union

import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from ...datasets import generate_synthetic_cityscapes
from ...datasets.cityscapes_conversion import convert_cityscapes
from ...engine.cli import build_runner
from ...utils.memory import MiB
from ..config import config_crop_size
from ..meter import SavedBytesMeter
from .methods import drop_pretrained

#: Generated images (height, width): the training pipeline rescales them to the config's scale
#: and the data preprocessor pads every batch to the crop, so their size does not change memory.
IMAGE_SIZE = (128, 256)
NUM_TRAIN, NUM_VAL = 4, 2
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def model_state_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Parameter, buffer and optimizer-state bytes (what stays allocated between iterations)."""
    tensors = list(model.parameters()) + list(model.buffers()) + [
        value for state in optimizer.state.values() for value in state.values()
        if isinstance(value, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in tensors)


def current_rss_bytes() -> Optional[int]:
    """This process's resident set size now (``None`` where /proc is not available)."""
    try:
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class IterationPeakHook(Hook):
    """Times every training iteration and, on the CPU, meters its memory.

    On the CPU each iteration runs inside a :class:`SavedBytesMeter` that also counts the
    gradients as backward creates them; the iteration's peak is the meter's plus the model state
    (parameters, buffers, optimizer state). On CUDA the allocator's own peaks are read instead.
    """

    priority = 'LOWEST'  # starts last before the step and stops first after it

    def __init__(self, device: str):
        self.device = device
        self.times: List[float] = []
        self.peak_bytes = 0
        self._meter: Optional[SavedBytesMeter] = None
        self._start = 0.0

    def _sync(self) -> None:
        if self.device == 'cuda':
            torch.cuda.synchronize()

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.device != 'cuda':
            self._meter = SavedBytesMeter()
            self._meter.__enter__()
            self._meter.track_grads(runner.model.parameters())
        self._sync()
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._sync()
        self.times.append(time.perf_counter() - self._start)
        if self._meter is not None:
            self._meter.__exit__(None, None, None)
            state = model_state_bytes(runner.model, runner.optim_wrapper.optimizer)
            self.peak_bytes = max(self.peak_bytes, self._meter.peak_bytes + state)
            self._meter = None


def make_fit_data(data_root: str) -> str:
    """A small generated Cityscapes-format set with converted labels in ``data_root``."""
    generate_synthetic_cityscapes(data_root, num_train=NUM_TRAIN, num_val=NUM_VAL,
                                  height=IMAGE_SIZE[0], width=IMAGE_SIZE[1])
    convert_cityscapes(data_root, nproc=1, progress=False)
    return data_root


def prepare_fit_config(cfg: Config, data_root: str, work_dir: str, iters: int, batch: int,
                       num_workers: int) -> None:
    """Point ``cfg`` (in place) at the generated data for a short run: ``iters`` iterations of
    ``batch`` images, one validation at the end, no checkpoints, no pretrained weights."""
    drop_pretrained(cfg.model)
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    cfg.log_level = 'WARNING'
    cfg.env_cfg = dict(cfg.get('env_cfg') or {}, cudnn_benchmark=False)
    for loader in LOADERS:
        if cfg.get(loader) is None:
            continue
        cfg[loader].num_workers = num_workers
        cfg[loader].persistent_workers = False
        cfg[loader].dataset.data_root = data_root
    cfg.train_dataloader.batch_size = batch
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
    cfg.default_hooks.checkpoint.update(interval=-1, save_last=False)  # its type stays
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=max(1, iters // 4))
    if cfg.get('visualizer'):
        cfg.visualizer.pop('name', None)  # a unique instance per run: the experiment's name


def clear_fit_choices(cfg: Config) -> None:
    """Drop the config's own checkpointing and AMP (in place), so the run holds what the fit
    chooses: the fit writes AMP only into a plain ``OptimWrapper`` and checkpointing only where
    it recomputes, so a config's ``AmpOptimWrapper`` or ``checkpointing=True`` would otherwise
    stay on beside a decision without them."""
    cfg.model.checkpointing = None
    wrapper = cfg.optim_wrapper
    if wrapper.get('type') in ('AmpOptimWrapper', 'InfoProAmpOptimWrapper',
                               'DeviceAmpOptimWrapper'):
        wrapper.type = 'OptimWrapper'
        for key in ('loss_scale', 'dtype', 'device', 'use_fsdp'):
            wrapper.pop(key, None)


def decision_dict(decision) -> dict:
    """The fit's decision as plain data (for the JSON)."""
    return dict(num_modules=decision.num_modules, split_points=list(decision.split_points),
                checkpointing=[bool(flag) for flag in decision.checkpointing],
                amp=decision.amp, step_each_module=decision.step_each_module,
                planned_peak_mb=round(decision.peak_bytes / MiB, 1),
                headroom_mb=round(decision.headroom_bytes / MiB, 1),
                budget_mb=round(decision.budget_bytes / MiB, 1), describe=decision.describe())


def fit_label(fit: dict) -> str:
    """A method-like name for the fit's choice, e.g. ``fit: K=4 +cp +amp`` (``+cp[2,3]``:
    modules 2 and 3 recomputed; ``+step``: each module steps after its backward)."""
    recomputed = [k + 1 for k, flag in enumerate(fit['checkpointing']) if flag]
    cp = ('' if not recomputed else ' +cp' if len(recomputed) == fit['num_modules']
          else f" +cp[{','.join(map(str, recomputed))}]")
    return (f"fit: K={fit['num_modules']}{cp}{' +amp' if fit['amp'] else ''}"
            f"{' +step' if fit.get('step_each_module') else ''}")


def run_fit_check(config: str, budget: Union[str, float], headroom_gib: Optional[float],
                  iters: int, batch: int, work_dir: str, device: str,
                  cfg_options: Optional[dict] = None, num_workers: int = 0) -> dict:
    """Fit ``config`` to ``budget``, train it ``iters`` iterations, and measure the real peak.

    Args:
        config: The config file.
        budget: GiB, or ``'auto'`` (the local CUDA device's free memory).
        headroom_gib: The fit's headroom (``None``: its default).
        iters: Training iterations (timed after the first).
        batch: Images per iteration.
        work_dir: Folder for the generated data and the run's logs.
        device: ``'cuda'`` or ``'cpu'`` (the device the Runner trains on).
        cfg_options: Config overrides, applied before the fit.
        num_workers: Data-loader workers.

    Returns:
        dict: The decision (:func:`decision_dict`), ``crop``, ``batch``, ``iters``, the measured
        ``peak_mb`` (and on CUDA ``reserved_mb`` and ``device_total_mb``; on the CPU
        ``max_rss_growth_mb``), ``peak_vs_planned`` and the iteration times.
    """
    from ..fit import apply_fit  # the fit transform; only this stage needs it
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    data_root = make_fit_data(osp.join(work_dir, 'data'))
    prepare_fit_config(cfg, data_root, osp.join(work_dir, 'run'), iters, batch, num_workers)
    clear_fit_choices(cfg)
    decision = apply_fit(cfg, budget, headroom_gib=headroom_gib)
    result = decision_dict(decision)
    result['optim_wrapper'] = cfg.optim_wrapper.get('type', 'OptimWrapper')
    crop = config_crop_size(cfg)
    result.update(crop=f'{crop[0]}x{crop[1]}' if crop else None, batch=batch, iters=iters,
                  device=device)
    hook = IterationPeakHook(device)
    runner = build_runner(cfg)  # the config's runner_type, as the tools build it
    runner.register_hook(hook)
    rss_before = current_rss_bytes()
    runner.train()
    if device == 'cuda':
        peak = torch.cuda.max_memory_allocated()
        result.update(reserved_mb=round(torch.cuda.max_memory_reserved() / MiB, 1),
                      device_total_mb=round(torch.cuda.mem_get_info()[1] / MiB, 1))
    else:
        peak = hook.peak_bytes
        max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if rss_before is not None:
            result['max_rss_growth_mb'] = round((max_rss - rss_before) / MiB, 1)
    timed = hook.times[1:] or hook.times
    result.update(peak_mb=round(peak / MiB, 1),
                  peak_vs_planned=round(peak / decision.peak_bytes, 3),
                  times_s=[round(t, 3) for t in hook.times],
                  time_s=round(statistics.median(timed), 3),
                  time_min=round(min(timed), 3), time_max=round(max(timed), 3))
    return result
