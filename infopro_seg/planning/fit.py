"""Decide, then build: the config transform that plans a run before its model is built.

:func:`resolve_config` reads what a config asks to be planned, plans it on the meta device and
writes the answer into the config, so the model, the optimizer wrapper and the work dir's dumped
config all hold explicit choices:

- ``infopro_fit = dict(budget_gib=10)`` (or ``tools/train.py --fit 10`` / ``--fit auto``): the
  fastest (K, split points, modules to recompute, AMP, stepping each module) whose planned peak
  plus a headroom fits the budget (:mod:`~infopro_seg.planning.budget`). Written into
  ``model.backbone.split_points``, ``model.checkpointing`` (one entry per module) and
  ``optim_wrapper`` (AMP, ``step_each_module``), and recorded as
  ``infopro_fit_decision`` (plain data) in the config and as ``infopro_fit.json`` in the work dir.
  A resumed run (``resume=True``) reuses the work dir's decision without planning, so its model
  matches its checkpoint.
- ``model.backbone.split_points='auto'`` with ``model.split_planner=dict(num_modules=K)`` or
  ``dict(budget_gb=X)``: the memory-balanced cuts for K modules, or for the smallest K that fits.

Planning is deterministic (the same config gives the same plan on every rank); only
``budget_gib='auto'`` reads the device, and every rank of a distributed run then agrees on the
smallest free memory among them (:func:`device_budget_bytes`). Nothing is kept between calls.
"""
import argparse
import copy
import json
import logging
import os
import os.path as osp
from dataclasses import asdict, dataclass
from typing import Callable, Optional, Tuple

import torch
from mmengine.dist import init_dist
from mmengine.logging import print_log

from ..errors import ConfigError
from ..fileio import atomic_write_bytes
from ..utils.memory import GiB
from .budget import CHOICES, budget_candidates, cheapest_fitting, format_candidates, \
    no_fit_message, overhead_model_text
from .config import config_batch_size, config_crop_size, config_optimizer, model_crop_size
from .profile import profile_model
from .report import budget_message
from .solver import fit_budget, plan_splits

#: The work-dir file that records a fit's decision.
DECISION_FILE = 'infopro_fit.json'
#: What a fit request takes.
FIT_KEYS = ('budget_gib', 'headroom_gib', 'max_k', 'checkpointing', 'amp', 'step_each_module')
#: Fixed part of the default headroom: CUDA/cuDNN workspaces and NCCL buffers, which
#: ``max_memory_allocated`` does not count but the device's free memory must hold.
HEADROOM_FIXED_GIB = 1.0
#: Proportional part of the default headroom: allocator slack (reserved above allocated) and the
#: validation pass, which the meta estimate of a training step does not count.
HEADROOM_FRACTION = 0.10


def default_headroom_gib(budget_gib: float) -> float:
    """The headroom kept free of the planned peak: 1 GiB + 10% of the budget."""
    return HEADROOM_FIXED_GIB + HEADROOM_FRACTION * budget_gib


@dataclass
class FitDecision:
    """What a fit chose, as plain data (the config and the work dir keep it)."""
    budget_gib: float
    headroom_gib: float
    num_modules: int
    split_points: list
    checkpointing: list  # per module: recomputes or not
    amp: bool
    step_each_module: bool
    peak_gib: float  # planned: largest module + model state
    overhead: float  # estimated, over E2E
    crop_size: list
    batch_size: int

    @property
    def peak_bytes(self) -> int:
        return int(self.peak_gib * GiB)

    @property
    def budget_bytes(self) -> int:
        return int(self.budget_gib * GiB)

    @property
    def headroom_bytes(self) -> int:
        return int(self.headroom_gib * GiB)

    def describe(self) -> str:
        """One line for logs."""
        modules = [k + 1 for k, on in enumerate(self.checkpointing) if on]
        cp = ('none' if not modules else 'all' if len(modules) == self.num_modules
              else f'modules {modules}')
        return (f'InfoPro fit for {self.budget_gib:g} GiB (crop {self.crop_size[0]}x'
                f'{self.crop_size[1]}, batch {self.batch_size}): K={self.num_modules}, '
                f'split_points={self.split_points}, checkpointing {cp}, '
                f'AMP {"on" if self.amp else "off"}'
                + ('; each module steps after its backward' if self.step_each_module else '')
                + f'; planned peak {self.peak_gib:.2f} GiB + '
                f'headroom {self.headroom_gib:.2f} GiB; estimated overhead {self.overhead:+.0%}')


def device_budget_bytes(cfg=None) -> int:
    """Free memory of this rank's CUDA device; the smallest over all ranks of a distributed run
    (so every rank plans the same run).

    Args:
        cfg: The config; with a launcher (``cfg.launcher`` not ``'none'``) the process group is
            initialised here as the Runner would (mmengine's ``init_dist``), and the Runner then
            uses it.

    Raises:
        ConfigError: No CUDA device.
    """
    if not torch.cuda.is_available():
        raise ConfigError("--fit auto reads the free memory of the training GPU, and no CUDA "
                          'device is available here: give a budget in GiB instead, e.g. '
                          '--fit 10')
    launcher = (cfg or {}).get('launcher', 'none')
    if launcher != 'none' and not torch.distributed.is_initialized():
        dist_cfg = (cfg.get('env_cfg') or {}).get('dist_cfg') or {}
        init_dist(launcher, **dist_cfg)
    free, _ = torch.cuda.mem_get_info()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        value = torch.tensor([free], device='cuda', dtype=torch.int64)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MIN)
        free = int(value.item())
    return int(free)


def fit_request(cfg) -> Optional[dict]:
    """The config's ``infopro_fit`` checked and completed, or ``None`` when it has none."""
    request = cfg.get('infopro_fit')
    if not request:
        return None
    request = dict(request)
    unknown = sorted(set(request) - set(FIT_KEYS))
    if unknown:
        raise ConfigError(f'infopro_fit: unknown key(s) {unknown}; it takes {list(FIT_KEYS)}')
    budget = request.get('budget_gib')
    if budget != 'auto' and (not isinstance(budget, (int, float)) or budget <= 0):
        raise ConfigError(f"infopro_fit.budget_gib must be a positive number of GiB or 'auto', "
                          f'got {budget!r} (e.g. --fit 10 or --fit auto)')
    # A config that trains with AMP keeps it unless the request says otherwise.
    request.setdefault('amp', 'always' if _trains_with_amp(cfg) else 'allow')
    for key in ('checkpointing', 'amp', 'step_each_module'):
        request.setdefault(key, 'allow')
        if request[key] not in CHOICES:
            raise ConfigError(f'infopro_fit.{key} must be one of {list(CHOICES)}, got '
                              f'{request[key]!r}')
    request.setdefault('max_k', 8)
    if not isinstance(request['max_k'], int) or request['max_k'] < 1:
        raise ConfigError(f'infopro_fit.max_k must be a positive integer, got '
                          f'{request["max_k"]!r}')
    headroom = request.get('headroom_gib')
    if headroom is not None and (not isinstance(headroom, (int, float)) or headroom < 0):
        raise ConfigError(f'infopro_fit.headroom_gib must be a number >= 0, got {headroom!r}')
    return request


def _log(text: str) -> None:
    print_log(text, logger='current')


def plan_fit(cfg, request: dict, crop=None, batch: Optional[int] = None,
             report: Callable[[str], None] = _log) -> Tuple[FitDecision, str]:
    """Plan a fit request for a config (nothing is written).

    Args:
        cfg: The config.
        request: From :func:`fit_request`.
        crop: ``(H, W)`` (default: the config's training crop).
        batch: Images per device (default: the config's).
        report: Called with the table of candidates (also when nothing fits).

    Returns:
        tuple: The decision, and the table of candidates with the overhead model (text).

    Raises:
        ConfigError: No crop size, or nothing fits the budget.
    """
    if cfg.model.get('type') != 'InfoProEncoderDecoder':
        raise ConfigError(f"the fit plans InfoPro models (model.type='InfoProEncoderDecoder'); "
                          f"this config's is {cfg.model.get('type')!r}: start from an InfoPro "
                          'config (configs/*infopro*.py) or drop --fit / infopro_fit')
    crop = crop or config_crop_size(cfg)
    if crop is None:
        raise ConfigError('the fit needs the training crop: set crop_size (or the data '
                          "preprocessor's size) in the config")
    batch = batch or config_batch_size(cfg)
    budget_gib = (device_budget_bytes(cfg) / GiB if request['budget_gib'] == 'auto'
                  else float(request['budget_gib']))
    headroom = request.get('headroom_gib')
    headroom = default_headroom_gib(budget_gib) if headroom is None else float(headroom)
    usable = budget_gib - headroom
    if usable <= 0:
        raise ConfigError(f'a budget of {budget_gib:.2f} GiB leaves nothing after the headroom '
                          f'of {headroom:.2f} GiB: give a larger budget or a smaller '
                          'infopro_fit.headroom_gib')
    if (cfg.get('optim_wrapper') or {}).get('accumulative_counts', 1) != 1:
        request = dict(request, step_each_module='never')  # not with accumulation
    candidates = budget_candidates(cfg.model, crop, batch, int(usable * GiB), request['max_k'],
                                   config_optimizer(cfg), amp=request['amp'],
                                   checkpointing=request['checkpointing'],
                                   step_each_module=request['step_each_module'])
    chosen = cheapest_fitting(candidates)
    table = (f'InfoPro fit: {budget_gib:.2f} GiB - headroom {headroom:.2f} GiB = {usable:.2f} '
             'GiB for the planned peak (largest module + model state, meta device), crop '
             f'{crop[0]}x{crop[1]}, batch {batch}; candidates:\n'
             f'{format_candidates(candidates, chosen)}\n{overhead_model_text()}')
    report(table)
    if chosen is None:
        raise ConfigError(no_fit_message(candidates, usable))
    return FitDecision(
        budget_gib=budget_gib, headroom_gib=headroom, num_modules=chosen.num_modules,
        split_points=list(chosen.plan.split_points), checkpointing=chosen.plan.checkpointed,
        amp=chosen.amp, step_each_module=chosen.step_each_module,
        peak_gib=chosen.peak_bytes / GiB, overhead=chosen.overhead,
        crop_size=list(crop), batch_size=batch), table


def apply_decision(cfg, decision: FitDecision) -> None:
    """Write a decision into a config: split points, per-module checkpointing, AMP, and
    whether each module steps after its backward."""
    cfg.model.backbone.split_points = list(decision.split_points)
    cfg.model.pop('split_planner', None)
    setting = cfg.model.get('checkpointing')
    on = setting if setting and not isinstance(setting, (list, tuple)) else True
    cfg.model.checkpointing = ([on if flag else None for flag in decision.checkpointing]
                               if any(decision.checkpointing) else None)
    wrapper = cfg.optim_wrapper
    wrapper.setdefault('constructor', 'InfoProOptimWrapperConstructor')
    if decision.amp and not _trains_with_amp(cfg):
        if torch.cuda.is_available():
            wrapper.update(type='AmpOptimWrapper', loss_scale='dynamic')
        else:  # a CPU run: bfloat16 autocast, the same activation sizes as float16
            wrapper.update(type='DeviceAmpOptimWrapper', device='cpu', dtype='bfloat16')
    elif not decision.amp and _trains_with_amp(cfg):
        wrapper.type = 'OptimWrapper'
        for key in ('loss_scale', 'dtype', 'device'):
            wrapper.pop(key, None)
    if decision.step_each_module:
        wrapper['step_each_module'] = True
    cfg.infopro_fit = None
    cfg.infopro_fit_decision = asdict(decision)


#: Optimizer wrappers that train with mixed precision.
AMP_WRAPPERS = ('AmpOptimWrapper', 'InfoProAmpOptimWrapper', 'DeviceAmpOptimWrapper')


def _trains_with_amp(cfg) -> bool:
    return (cfg.get('optim_wrapper') or {}).get('type') in AMP_WRAPPERS


def use_infopro_optim_wrappers(cfg) -> None:
    """Let an InfoPro model's optimizer wrapper be built by InfoPro's constructor (it maps
    mmengine's ``OptimWrapper`` / ``AmpOptimWrapper`` to their InfoPro versions), unless the
    config names a constructor of its own."""
    if cfg.get('model', {}).get('type') == 'InfoProEncoderDecoder' and cfg.get('optim_wrapper'):
        cfg.optim_wrapper.setdefault('constructor', 'InfoProOptimWrapperConstructor')


def _read_decision(work_dir: str) -> Optional[FitDecision]:
    path = osp.join(work_dir, DECISION_FILE)
    if not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as file:
            return FitDecision(**json.load(file))
    except (ValueError, TypeError) as error:
        raise ConfigError(f'{path} is not a fit decision this version wrote ({error}); delete '
                          'it to plan again') from None


def resolve_config(cfg) -> Optional[FitDecision]:
    """Plan what the config asks to be planned and write the answer into it (in place).

    Args:
        cfg: A full mmengine ``Config`` (model, optim_wrapper, data, work_dir).

    Returns:
        FitDecision or None: The fit's decision, or ``None`` when no fit was asked for.

    Raises:
        ConfigError: A bad request, a budget nothing fits, or ``'auto'`` without a GPU.
    """
    _resolve_auto_split_points(cfg)
    use_infopro_optim_wrappers(cfg)
    request = fit_request(cfg)
    if request is None:
        return None
    work_dir = cfg.get('work_dir')
    decision = _read_decision(work_dir) if cfg.get('resume') and work_dir else None
    if decision is not None:
        print_log(f'InfoPro fit: resuming with the decision in {work_dir}/{DECISION_FILE} (not '
                  'planned again)', logger='current')
    else:
        decision, _ = plan_fit(cfg, request)
        if work_dir:
            os.makedirs(work_dir, exist_ok=True)
            atomic_write_bytes(json.dumps(asdict(decision), indent=1).encode(),
                               osp.join(work_dir, DECISION_FILE))
    apply_decision(cfg, decision)
    print_log(decision.describe(), logger='current')
    return decision


def _resolve_auto_split_points(cfg) -> None:
    """``split_points='auto'`` planned from ``model.split_planner`` (K, or a budget)."""
    backbone = cfg.model.get('backbone', {})
    if backbone.get('split_points') != 'auto':
        return
    planner = dict(cfg.model.get('split_planner') or {})
    unknown = sorted(set(planner) - {'num_modules', 'budget_gb', 'crop_size', 'batch_size',
                                     'max_modules', 'state_factor', 'amp'})
    if unknown:
        raise ConfigError(f'model.split_planner: unknown key(s) {unknown}; it takes num_modules '
                          'or budget_gb, crop_size, batch_size, max_modules, state_factor, amp')
    if ('num_modules' in planner) == ('budget_gb' in planner):
        raise ConfigError("split_points='auto' needs model.split_planner with exactly one of "
                          'num_modules=K or budget_gb=X, e.g. split_planner=dict(num_modules=2)')
    crop = planner.get('crop_size') or model_crop_size(cfg.model) or config_crop_size(cfg)
    if crop is None:
        raise ConfigError('model.split_planner needs crop_size=(H, W) (the config names none)')
    profile = profile_model(cfg.model, crop, int(planner.get('batch_size', 2)), 'meta',
                            config_optimizer(cfg), amp=bool(planner.get('amp', False)))
    if planner.get('state_factor') is not None:
        profile.state_factor = int(planner['state_factor'])
    if 'num_modules' in planner:
        plan = plan_splits(profile, int(planner['num_modules']))
    else:
        plan, best = fit_budget(profile, int(float(planner['budget_gb']) * GiB),
                                int(planner.get('max_modules', 16)))
        if plan is None:
            raise ConfigError(budget_message(best, float(planner['budget_gb'])))
    cfg.model.backbone.split_points = list(plan.split_points)
    cfg.model.pop('split_planner', None)
    print_log(f'InfoPro split planner chose:\n{plan.describe()}', logger='current',
              level=logging.INFO)


def fit_budget_arg(value: str):
    """``--fit``'s value: ``'auto'`` or a positive number of GiB (an argparse ``type``)."""
    if value == 'auto':
        return value
    try:
        budget = float(value)
    except ValueError:
        budget = None
    if budget is None or not budget > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of GiB or 'auto', got "
                                         f'{value!r}')
    return budget


def request_fit(cfg, budget, headroom_gib: Optional[float] = None) -> None:
    """Ask for a fit to ``budget`` GiB (or ``'auto'``): the config's ``infopro_fit`` with this
    budget (and headroom, if given); :func:`resolve_config` plans it."""
    request = dict(cfg.get('infopro_fit') or {}, budget_gib=budget)
    if headroom_gib is not None:
        request['headroom_gib'] = headroom_gib
    cfg.infopro_fit = request


def apply_fit(cfg, budget, headroom_gib: Optional[float] = None) -> FitDecision:
    """Fit ``cfg`` (in place) to ``budget`` GiB (or ``'auto'``): ``--fit`` of tools/train.py.

    Args:
        cfg: A full mmengine ``Config``; its ``infopro_fit`` keys other than the budget (and the
            headroom, if given) are kept.
        budget: GiB, or ``'auto'`` for the device's free memory.
        headroom_gib: Overrides the default headroom (:func:`default_headroom_gib`).

    Returns:
        FitDecision: What was chosen.
    """
    request_fit(cfg, budget, headroom_gib)
    return resolve_config(cfg)


def resolved_copy(cfg):
    """A resolved deep copy of ``cfg`` (the original is left as it is)."""
    cfg = copy.deepcopy(cfg)
    resolve_config(cfg)
    return cfg


__all__ = ['FitDecision', 'apply_fit', 'fit_budget_arg', 'request_fit', 'resolve_config',
           'resolved_copy', 'plan_fit', 'apply_decision',
           'fit_request', 'device_budget_bytes', 'default_headroom_gib', 'DECISION_FILE']
