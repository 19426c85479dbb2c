"""The GPU check: every memory figure of the project measured against its estimate, in one run.

Three stages, one table (and a JSON file rewritten after each stage):

1. **Memory**, per crop and method: :func:`~.measure.measure_method` estimates the method on the
   meta device (the planner's accounting) and then trains it for real. On CUDA the peak is
   ``torch.cuda.max_memory_allocated()`` (cudnn.benchmark off, as mmseg's model zoo) beside
   ``max_memory_reserved()``; on the CPU it is the saved-bytes meter, counted as the estimate is.
   On CUDA every method runs in a fresh process: the caching allocator keeps the blocks of an
   earlier method reserved (``empty_cache`` returns only unused whole segments) and cuDNN and
   cuBLAS keep their workspaces, so a reset in one process would still mix methods in the
   reserved peak. The CPU meter starts from zero at every iteration, so there the rows share
   the process.
2. **Time**, per crop: every method built once, then round-robin over the methods (one warm-up
   round, then ``rounds`` timed rounds, CUDA synchronised around each step): a drift of the
   machine hits every method alike. Median and spread (min-max) per method, ratio to E2E.
3. **Fit** (:mod:`.fit_check`): the fit plans a config for a budget (``'auto'`` on CUDA: the
   device's free memory), mmengine's Runner trains it, and its real peak is set against the plan
   and the device's memory.
"""
import json
import multiprocessing
import os
import os.path as osp
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from ...fileio import atomic_write_bytes
from ...utils.batch import random_seg_batch
from ...utils.memory import MiB
from ..build import build_on_one_device
from .fit_check import fit_label, run_fit_check
from .measure import MEASURED, measure_method
from .methods import method_model_cfg, method_optim_wrapper_cfg, parse_method
from .runner import available_memory_bytes

#: The methods the check measures: E2E, mmseg's with_cp, AMP, InfoPro K=2 and K=4,
#: and K=4 with every local module checkpointed and AMP.
CHECK_METHODS = ('e2e', 'with_cp', 'amp', 'infopro-k2', 'infopro-k4', 'infopro-k4+cp+amp')
R101 = 'configs/deeplabv3_r101_infopro_cityscapes.py'
R101_K4 = 'configs/deeplabv3_r101_infopro-k4_cityscapes.py'
R101_FULL = 'configs/deeplabv3_r101_infopro-k4-cp_cityscapes-1024x2048.py'
DEMO = 'configs/demo/deeplabv3_r18_infopro_synthetic.py'
DEMO_K4 = 'configs/study/deeplabv3_r18_k4_synthetic.py'
#: The CPU mode's fit budget (GiB), with no headroom (the CPU meter counts what the plan counts):
#: below the demo net's E2E peak at 128x256, batch 2 (72 MiB), so the fit must cut the net; at
#: 51 MiB it chooses K=3 with only the first module recomputed, and AMP.
CPU_FIT_BUDGET_GIB = 0.05


@dataclass
class CheckSuite:
    """What one run of the check measures."""
    device: str  #: ``'cuda'`` or ``'cpu'``
    configs: Dict[str, str]  #: method -> config file
    crops: List[Tuple[int, int]]
    batch: int = 2
    iters: int = 3  #: training iterations per memory row (the first one warms up)
    rounds: int = 5  #: timed rounds after one warm-up round
    fit_config: Optional[str] = None  #: ``None``: no fit stage
    fit_budget: Union[str, float] = 'auto'
    fit_headroom_gib: Optional[float] = None
    fit_iters: int = 20
    isolate: bool = True  #: every memory row, the timing and the fit in a fresh process
    threads: Optional[int] = None  #: torch CPU threads
    num_workers: int = 0  #: data-loader workers of the fit's run
    cfg_options: Optional[dict] = None  #: config overrides for every stage

    @property
    def methods(self) -> List[str]:
        """The methods, in the order they run."""
        return list(self.configs)


def _configs(repo: str, k2_config: str, k4_config: str) -> Dict[str, str]:
    """Method -> config: K=4 methods train the K=4 config (its own cuts), the others the K=2
    config (E2E, with_cp and AMP as its K=1 twin)."""
    return {m: osp.join(repo, k4_config if parse_method(m).k == 4 else k2_config)
            for m in CHECK_METHODS}


def cuda_suite(repo: str = '.') -> CheckSuite:
    """R-101 DeepLab-V3 at 512x1024 and 1024x2048, batch 2; the fit at 1024x2048 on 'auto'."""
    configs = _configs(repo, R101, R101_K4)
    return CheckSuite('cuda', configs, [(512, 1024), (1024, 2048)],
                      fit_config=osp.join(repo, R101_FULL), num_workers=4)


def cpu_suite(repo: str = '.') -> CheckSuite:
    """The demo net (R-18) at 128x256, batch 2, against the CPU meter; the fit on a GiB budget.

    K=4 rows train the accuracy study's K=4 cut of the same net.
    """
    return CheckSuite('cpu', _configs(repo, DEMO, DEMO_K4), [(128, 256)],
                      iters=2, rounds=2, fit_config=osp.join(repo, DEMO),
                      fit_budget=CPU_FIT_BUDGET_GIB, fit_headroom_gib=0.0, fit_iters=3,
                      isolate=False)


def _outcome(function: Callable, args: tuple) -> dict:
    """``{'value': function(*args)}``, or ``{'error': one line}`` (the traceback is printed)."""
    try:
        return dict(value=function(*args))
    except Exception as error:  # reported as the stage's failure; the check goes on
        traceback.print_exc()
        return dict(error=f'{type(error).__name__}: {error}'.splitlines()[0][:300])


def _child(function: Callable, args: tuple, result_path: str) -> None:
    """Process entry: :func:`_outcome` as JSON in ``result_path``."""
    with open(result_path, 'w') as f:
        json.dump(_outcome(function, args), f)


def call_stage(function: Callable, args: tuple, isolate: bool) -> Tuple[object, Optional[str]]:
    """``(function(*args), None)`` or ``(None, error)``, in a fresh process if ``isolate``.

    The value goes through JSON either way, so both ways return the same types.
    """
    if not isolate:
        result = json.loads(json.dumps(_outcome(function, args)))
        return result.get('value'), result.get('error')
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'result.json')
        process = multiprocessing.get_context('spawn').Process(target=_child,
                                                                args=(function, args, path))
        process.start()
        process.join()
        if not osp.isfile(path):
            return None, ('killed: out of memory?' if process.exitcode in (-9, 137)
                          else f'exit status {process.exitcode}')
        with open(path) as f:
            result = json.load(f)
    return result.get('value'), result.get('error')


def _load(config: str, cfg_options: Optional[dict]) -> Config:
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    return cfg


def memory_row(suite: CheckSuite, method: str, crop: Tuple[int, int]) -> dict:
    """One method at one crop: the meta estimate and the measured peak (see the module doc)."""
    if suite.device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    spec = dict(config=osp.abspath(suite.configs[method]), cfg_options=suite.cfg_options,
                method=method, crop=list(crop), batch=suite.batch, iters=suite.iters,
                device=suite.device, meta='auto', threads=suite.threads,
                max_mem=available_memory_bytes(suite.device) if suite.device == 'cuda'
                else int(0.8 * available_memory_bytes(suite.device)))
    row = measure_method(spec)
    if suite.device == 'cuda' and row.get('figure') == MEASURED:
        row['reserved_mb'] = round(torch.cuda.max_memory_reserved() / MiB, 1)
    if row.get('figure') == MEASURED and row.get('estimated_peak_mb'):
        row['peak_vs_estimate'] = round(row['peak_mb'] / row['estimated_peak_mb'], 3)
    return row


def _sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def time_methods(suite: CheckSuite, methods: Sequence[str],
                 crop: Tuple[int, int]) -> Dict[str, List[float]]:
    """Seconds per training step of every method, round-robin over ``suite.rounds`` rounds.

    Every method trains its own model (built as :func:`~.methods.method_model_cfg` says) with a
    tiny learning rate, so the weights stay in a normal range over all rounds (a step costs the
    same at any rate). The first round is a warm-up and is not returned.
    """
    import infopro_seg  # noqa: F401  (registers the models and the CPU AMP wrapper)
    if suite.threads:
        torch.set_num_threads(suite.threads)
    torch.backends.cudnn.benchmark = False
    steps = {}
    for method in methods:
        cfg = _load(suite.configs[method], suite.cfg_options)
        model_cfg, _ = method_model_cfg(cfg, method, crop, suite.batch)
        torch.manual_seed(0)
        model = build_on_one_device(model_cfg, suite.device)
        model.to(suite.device)  # also tells the data preprocessor where batches go
        model.train()
        optim_cfg = method_optim_wrapper_cfg(cfg, parse_method(method).amp, suite.device)
        optim_cfg['optimizer']['lr'] = 1e-6
        steps[method] = (model, build_optim_wrapper(model, optim_cfg))
    num_classes = steps[methods[0]][0].decode_head.num_classes
    data = random_seg_batch(suite.batch, tuple(crop), num_classes, 'cpu')
    times = {method: [] for method in methods}
    for round_index in range(suite.rounds + 1):
        for method, (model, optim_wrapper) in steps.items():
            _sync(suite.device)
            start = time.perf_counter()
            model.train_step(data, optim_wrapper)
            _sync(suite.device)
            seconds = time.perf_counter() - start
            label = 'warm-up' if round_index == 0 else f'round {round_index}/{suite.rounds}'
            _say(f'  time {crop[0]}x{crop[1]} [{label}] {method}: {seconds:.3f} s')
            if round_index > 0:
                times[method].append(seconds)
    return times


def add_timing(rows: List[dict], times: Dict[str, List[float]], crop: str) -> None:
    """Median, spread and ratio to E2E of the timed rounds, into the rows of ``crop``."""
    reference = statistics.median(times['e2e']) if times.get('e2e') else None
    for row in rows:
        seconds = times.get(row['method']) if row['crop'] == crop else None
        if not seconds:
            continue
        row.update(step_s=round(statistics.median(seconds), 4),
                   step_min=round(min(seconds), 4), step_max=round(max(seconds), 4),
                   step_rounds=[round(s, 4) for s in seconds])
        if reference:
            row['step_vs_e2e'] = round(statistics.median(seconds) / reference, 3)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _cell(value, spec: str = '') -> str:
    return '-' if value is None else format(value, spec)


def format_check_table(rows: List[dict], fit: Optional[dict], device: str) -> str:
    """The check's table (markdown), the lines on the fit, and what the columns count."""
    head = ('| crop | method | K | peak (MiB) | reserved (MiB) | estimate (MiB) | '
            'peak / estimate | time/iter (s) | spread (s) | time / E2E |')
    lines = [head, '|' + '---|' * (head.count('|') - 1)]
    table_rows = list(rows) + ([dict(fit, method=fit_label(fit),
                                     estimated_peak_mb=fit['planned_peak_mb'],
                                     peak_vs_estimate=fit['peak_vs_planned'],
                                     step_s=fit['time_s'], step_min=fit['time_min'],
                                     step_max=fit['time_max'])] if fit and 'peak_mb' in fit
                               else [])
    for row in table_rows:
        spread = (f"{row['step_min']:.3f}-{row['step_max']:.3f}" if row.get('step_s')
                  is not None else '-')
        if row.get('figure') == 'failed':
            row = dict(row, method=f"{row['method']} (failed: {row.get('note', '')[:60]})")
        elif row.get('figure', MEASURED) != MEASURED:  # estimated only: too large to run here
            row = dict(row, method=f"{row['method']} (not run: {row.get('note', '')[:60]})",
                       peak_mb=None)
        lines.append(
            f"| {row['crop']} | {row['method']} | {_cell(row.get('num_modules'))} | "
            f"{_cell(row.get('peak_mb'), '.1f')} | {_cell(row.get('reserved_mb'), '.1f')} | "
            f"{_cell(row.get('estimated_peak_mb'), '.1f')} | "
            f"{_cell(row.get('peak_vs_estimate'), '.2f')} | {_cell(row.get('step_s'), '.3f')} "
            f"| {spread} | {_cell(row.get('step_vs_e2e'), '.2f')} |")
    if fit and 'peak_mb' in fit:
        lines.append('')
        lines.append(fit_summary(fit))
    elif fit:
        lines.append(f"\nfit: failed ({fit.get('error')})")
    lines.append('')
    lines.append(FOOTER_CUDA if device == 'cuda' else FOOTER_CPU)
    return '\n'.join(lines)


def fit_summary(fit: dict) -> str:
    """Two lines: what the fit chose, and its real peak against the plan, the budget and (CUDA)
    the device's memory."""
    line = (f"fit ({fit['crop']}, batch {fit['batch']}, {fit['iters']} iterations + validation):"
            f" {fit.get('describe') or fit_label(fit)}\n"
            f"fit: real peak {fit['peak_mb']:.1f} MiB = {fit['peak_vs_planned']:.2f} x the "
            f"planned {fit['planned_peak_mb']:.1f} MiB; budget {fit['budget_mb']:.1f} MiB "
            f"(headroom {fit['headroom_mb']:.1f} MiB); ")
    if 'device_total_mb' in fit:
        used = fit['reserved_mb']
        return line + (f"reserved {used:.1f} MiB of the device's {fit['device_total_mb']:.1f} "
                       f"MiB ({'fits' if used < fit['device_total_mb'] else 'DOES NOT FIT'})")
    within = 'within' if fit['peak_mb'] <= fit['budget_mb'] else 'OVER'
    return line + (f'{within} the budget (CPU meter); the max RSS grew '
                   f"{_cell(fit.get('max_rss_growth_mb'), '.1f')} MiB over training")


FOOTER_CUDA = (
    'peak = torch.cuda.max_memory_allocated() over the training iterations, reserved = '
    'torch.cuda.max_memory_reserved() (what the caching allocator held), cudnn.benchmark off, '
    'each method in a fresh process. estimate = the same method on the meta device (parameters, '
    'buffers, optimizer state, and the peak of bytes saved for backward + gradients); the fit '
    "row's estimate is the fit's planned peak and its peak covers the whole run (build, "
    'training, validation). time = median seconds per training step (synchronised), methods '
    'interleaved round-robin after a warm-up round; spread = min-max of the rounds.')
FOOTER_CPU = (
    'CPU mode: peak = the saved-bytes meter (max over each step of bytes saved for backward + '
    'gradients) + parameters, buffers and optimizer state; no allocator, so no reserved figure. '
    'estimate = the same method counted the same way on the meta device. time = median seconds '
    'per training step, methods interleaved round-robin after a warm-up round; spread = min-max.')


def device_info(device: str) -> dict:
    """The machine: device name and memory, torch and CUDA versions."""
    info = dict(device=device, torch=torch.__version__, cuda=torch.version.cuda,
                cudnn_benchmark=False)
    if device == 'cuda':
        properties = torch.cuda.get_device_properties(0)
        info.update(name=properties.name, total_mb=round(properties.total_memory / MiB, 1))
    else:
        info.update(name='cpu', total_mb=round(available_memory_bytes('cpu') / MiB, 1),
                    cpu_count=os.cpu_count())
    return info


def run_gpu_check(suite: CheckSuite, out: str) -> dict:
    """Run the check's three stages; print progress; write ``out``/gpu_check.json and .md.

    Args:
        suite: What to measure (:func:`cuda_suite`, :func:`cpu_suite`).
        out: Output folder; the JSON is rewritten (atomically) after every stage.

    Returns:
        dict: ``machine``, ``suite``, ``rows``, ``fit``, ``seconds`` (per stage) and ``table``.
    """
    start = time.perf_counter()
    report = dict(suite=asdict(suite), rows=[], fit=None, seconds={})

    def save() -> None:
        report['table'] = format_check_table(report['rows'], report['fit'], suite.device)
        atomic_write_bytes(json.dumps(report, indent=1).encode(), osp.join(out, 'gpu_check.json'))

    def lap(stage: str) -> None:
        report['seconds'][stage] = round(time.perf_counter() - start - sum(
            report['seconds'].values()), 1)
        save()

    for crop in suite.crops:
        for method in suite.methods:
            _say(f'[gpu_check] memory: {method} at {crop[0]}x{crop[1]}, batch {suite.batch}')
            row, error = call_stage(memory_row, (suite, method, crop), suite.isolate)
            report['rows'].append(row or dict(method=method, crop=f'{crop[0]}x{crop[1]}',
                                              batch=suite.batch, figure='failed', note=error))
    lap('memory')
    for crop in suite.crops:
        name = f'{crop[0]}x{crop[1]}'
        methods = [r['method'] for r in report['rows']
                   if r['crop'] == name and r.get('figure') == MEASURED]
        if methods:
            _say(f'[gpu_check] time: {len(methods)} methods at {name}, interleaved')
            times, error = call_stage(time_methods, (suite, methods, crop), suite.isolate)
            if error:
                report.setdefault('errors', []).append(f'time at {name}: {error}')
            add_timing(report['rows'], times or {}, name)
    lap('time')
    if suite.fit_config:
        _say(f'[gpu_check] fit: {suite.fit_config} for budget {suite.fit_budget}')
        fit, error = call_stage(run_fit_check, (
            suite.fit_config, suite.fit_budget, suite.fit_headroom_gib, suite.fit_iters,
            suite.batch, osp.abspath(osp.join(out, 'fit')), suite.device, suite.cfg_options,
            suite.num_workers), suite.isolate)
        report['fit'] = fit or dict(error=error)
        lap('fit')
    # Read only now: on CUDA, the parent's own context would have lowered the free memory the
    # isolated stages saw (the fit's 'auto' budget among them).
    report['machine'] = device_info(suite.device)
    report['seconds']['total'] = round(time.perf_counter() - start, 1)
    save()
    atomic_write_bytes((report['table'] + '\n').encode(), osp.join(out, 'gpu_check.md'))
    return report
