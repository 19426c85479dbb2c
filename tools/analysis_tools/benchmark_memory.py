"""Peak memory and time per iteration: E2E, gradient checkpointing, AMP and InfoPro with K modules.

Every method runs in a fresh process (so peaks never mix): the model is built from the config
(SyncBN -> BN, no pretrained weights), then N real training iterations run through the model's
own ``train_step`` and mmengine's optimizer wrapper (the config's optimizer, SGD in mmseg's
configs) on random data of the given crop and batch. Examples::

    python tools/analysis_tools/benchmark_memory.py configs/deeplabv3_r50_infopro_cityscapes.py \\
        --crop 512 1024 --batch 2 --iters 3 --out work_dirs/bench_r50
    python tools/analysis_tools/benchmark_memory.py CONFIG --crops 128x256 256x512 512x1024 \\
        --batch 1 --methods e2e with_cp infopro-k2 infopro-k4   # also plots memory vs crop

Methods: ``e2e`` (K=1), ``with_cp`` (E2E with the backbone's gradient checkpointing), ``amp``
(E2E under AmpOptimWrapper: float16 on CUDA, bfloat16 autocast on CPU), ``infopro-kN`` (the
config's own split points if it has N-1 of them, else the split planner's for this crop and
batch) and ``<method>+amp``.

Memory, as reported:

- CUDA: ``torch.cuda.max_memory_allocated()`` over all iterations, cudnn.benchmark off (how
  mmseg's model zoo reports memory).
- CPU (no allocator counter): ``max over time of (bytes saved for backward + gradient bytes) +
  parameter, buffer and optimizer-state bytes`` (see :class:`SavedBytesMeter`). Temporaries that
  no backward needs and allocator overheads are not in it; the process's max RSS is reported
  alongside.
- ``estimated (meta device)``: the CPU accounting of one iteration run on PyTorch's meta device
  (shapes only, nothing allocated), for configs that do not fit this machine's memory
  (``--meta auto``, the default, decides from the estimate; no time figure).

Writes ``results.csv``, ``results.json`` and ``memory_vs_crop.png`` to ``--out``.
"""
import argparse
import copy
import csv
import json
import logging
import os
import os.path as osp
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence, Tuple

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

import torch  # noqa: E402
from mmengine.config import Config, ConfigDict, DictAction  # noqa: E402

MiB = 1024**2
GiB = 1024**3
ESTIMATED = 'estimated (meta device)'
MEASURED = 'measured'
DEFAULT_METHODS = ('e2e', 'with_cp', 'amp', 'infopro-k2', 'infopro-k3', 'infopro-k4')
_METHOD = re.compile(r'^(?P<base>e2e|with_cp|amp|infopro-k(?P<k>\d+))(?P<amp>\+amp)?$')

FOOTER_CPU = (
    'CPU peak = max over time of (bytes saved for backward + gradient bytes) + parameters + '
    'buffers + optimizer state (float32 unless AMP). Saved tensors are counted once per storage, '
    'from when autograd saves them until it frees them; temporaries no backward needs (e.g. '
    'activation gradients during backward) and allocator overheads are not counted. '
    "'activations' = the saved-for-backward peak alone. Time = median wall-clock seconds per "
    "iteration after one warm-up iteration; 'CPU s/iter' = the same for the process CPU time "
    '(all threads), less sensitive to other load on a shared machine.')
FOOTER_CUDA = ('CUDA peak = torch.cuda.max_memory_allocated() over all iterations, '
               'cudnn.benchmark=False (as in the mmseg model zoo).')
FOOTER_META = (f"'{ESTIMATED}': the CPU accounting of one training iteration run on PyTorch's "
               'meta device (shapes only, nothing allocated); no time. AMP cannot run there.')


# ----------------------------------------------------------------------------- parent process

def parse_method(name: str) -> Tuple[str, int, bool]:
    """``'infopro-k3+amp'`` -> ``('infopro', 3, True)``; ``'with_cp'`` -> ``('with_cp', 1, False)``.

    Raises:
        ValueError: An unknown method name.
    """
    match = _METHOD.match(name)
    if match is None:
        raise ValueError(f'unknown method {name!r}: use e2e, with_cp, amp, infopro-k<N> or '
                         'any of them with +amp')
    base = match.group('base')
    if base == 'amp':
        return 'e2e', 1, True
    if match.group('k'):
        k = int(match.group('k'))
        if k < 1:
            raise ValueError(f'{name}: K must be at least 1')
        return 'infopro', k, bool(match.group('amp'))
    return base, 1, bool(match.group('amp'))


def _parse_crop(text: str) -> Tuple[int, int]:
    match = re.match(r'^(\d+)[xX,](\d+)$', text)
    if match is None:
        raise argparse.ArgumentTypeError(f'crop {text!r}: write HxW, e.g. 512x1024')
    return int(match.group(1)), int(match.group(2))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Peak memory and time per iteration of E2E, with_cp, AMP and InfoPro K=N.',
        epilog='Columns and what the CPU figure counts: docs/memory.md.')
    parser.add_argument('config', help='config file (InfoPro or plain mmseg)')
    parser.add_argument('--crop', nargs=2, type=int, metavar=('H', 'W'), help='training crop')
    parser.add_argument('--crops', nargs='+', type=_parse_crop, metavar='HxW',
                        help='several crops (plotted against memory), e.g. 256x512 512x1024')
    parser.add_argument('--batch', type=int, default=2, help='images per iteration (default 2)')
    parser.add_argument('--methods', nargs='+', default=list(DEFAULT_METHODS),
                        help=f'default: {" ".join(DEFAULT_METHODS)}')
    parser.add_argument('--iters', type=int, default=3,
                        help='training iterations per method; the first is a warm-up that is '
                        'not timed (default 3)')
    parser.add_argument('--device', choices=['cpu', 'cuda'],
                        default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--meta', choices=['auto', 'always', 'never'], default='auto',
                        help="'auto': estimate on the meta device first and run for real only "
                        "if the estimate fits --max-mem-gb; 'always': estimates only; "
                        "'never': always run for real")
    parser.add_argument('--max-mem-gb', type=float, default=None,
                        help='memory a real run may use (default: 80%% of the available RAM, '
                        'or the GPU memory); a run whose estimate x1.25 exceeds it is estimated')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--out', default='work_dirs/benchmark_memory',
                        help='folder for results.csv, results.json and memory_vs_crop.png '
                        '(rewritten after every method, so an interrupted run keeps its rows)')
    parser.add_argument('--append', action='store_true',
                        help='keep the rows already in --out/results.json (a row with the same '
                        'crop, batch and method is replaced): build one table from several runs')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (e.g. model.decode_head.'
                        'num_classes=19)')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is None:
        for method in args.methods:
            try:
                parse_method(method)
            except ValueError as error:
                parser.error(str(error))
        if args.iters < 1:
            parser.error('--iters must be at least 1')
        if args.device == 'cuda' and not torch.cuda.is_available():
            parser.error('--device cuda: no CUDA device here')
    return args


def _available_memory_bytes(device: str) -> int:
    if device == 'cuda':
        return torch.cuda.get_device_properties(0).total_memory
    try:
        with open('/proc/meminfo') as meminfo:
            for line in meminfo:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * GiB


def config_crop(config: str, cfg_options: Optional[dict]) -> Optional[Tuple[int, int]]:
    """The config's training crop (``crop_size`` or the data preprocessor's ``size``)."""
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    crop = cfg.get('crop_size') or cfg.model.get('data_preprocessor', {}).get('size')
    return (int(crop[0]), int(crop[1])) if crop else None


def run_all(args: argparse.Namespace) -> List[dict]:
    """Run every (crop, method) in its own process, one after another; return the rows."""
    crops = list(args.crops or []) + ([tuple(args.crop)] if args.crop else [])
    if not crops:
        crop = config_crop(args.config, args.cfg_options)
        if crop is None:
            raise SystemExit('error: the config names no crop size; pass --crop H W')
        crops = [crop]
    max_mem = int(args.max_mem_gb * GiB) if args.max_mem_gb else int(
        0.8 * _available_memory_bytes(args.device))
    os.makedirs(args.out, exist_ok=True)
    previous = load_rows(osp.join(args.out, 'results.json')) if args.append else []
    rows = []
    total = len(crops) * len(args.methods)
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        for crop in crops:
            for method in args.methods:
                index = len(rows) + 1
                print(f'[{index}/{total}] {method} at {crop[0]}x{crop[1]}, batch {args.batch} '
                      f'({args.device}) ...', file=sys.stderr, flush=True)
                spec = dict(config=osp.abspath(args.config), cfg_options=args.cfg_options,
                            method=method, crop=list(crop), batch=args.batch, iters=args.iters,
                            device=args.device, meta=args.meta, max_mem=max_mem,
                            threads=args.threads, result=osp.join(tmp, f'{index}.json'))
                started = time.time()
                proc = subprocess.run([sys.executable, osp.abspath(__file__), args.config,
                                       '--worker', json.dumps(spec)], cwd=REPO)
                if osp.isfile(spec['result']):
                    with open(spec['result']) as f:
                        row = json.load(f)
                else:
                    reason = ('killed: out of memory?' if proc.returncode in (-9, 137)
                              else f'exit status {proc.returncode}')
                    row = dict(method=method, crop=f'{crop[0]}x{crop[1]}', batch=args.batch,
                               figure='failed', note=reason)
                row['wall_s'] = round(time.time() - started, 1)
                print(f'[{index}/{total}] {method} at {crop[0]}x{crop[1]}: {_brief(row)}',
                      file=sys.stderr, flush=True)
                rows.append(row)
                done = {_row_key(r) for r in rows}
                all_rows = [r for r in previous if _row_key(r) not in done] + rows
                add_ratios(all_rows)
                write_outputs(all_rows, args)
    return all_rows


def _row_key(row: dict) -> Tuple[str, int, str]:
    return row['crop'], row['batch'], row['method']


def load_rows(path: str) -> List[dict]:
    """The rows of an earlier results.json (none if there is no such file)."""
    if not osp.isfile(path):
        return []
    with open(path) as f:
        return json.load(f)['rows']


def _brief(row: dict) -> str:
    if row.get('peak_mb') is None:
        return f'{row.get("figure")}: {row.get("note", "")}'
    time_s = f', {row["time_s"]:.2f} s/iter' if row.get('time_s') is not None else ''
    return f'peak {row["peak_mb"]:.0f} MiB ({row["figure"]}){time_s}'


def add_ratios(rows: List[dict]) -> None:
    """Peak and time relative to the E2E row of the same crop and batch (when there is one)."""
    e2e = {(r['crop'], r['batch']): r for r in rows if r['method'] == 'e2e'}
    for row in rows:
        ref = e2e.get((row['crop'], row['batch']))
        row['peak_vs_e2e'] = (round(row['peak_mb'] / ref['peak_mb'], 3)
                              if ref and row.get('peak_mb') and ref.get('peak_mb') else None)
        row['time_vs_e2e'] = (round(row['time_s'] / ref['time_s'], 3)
                              if ref and row.get('time_s') and ref.get('time_s') else None)
        row['cpu_time_vs_e2e'] = (round(row['cpu_time_s'] / ref['cpu_time_s'], 3) if ref
                                  and row.get('cpu_time_s') and ref.get('cpu_time_s') else None)


COLUMNS = [('crop', 'crop'), ('batch', 'batch'), ('method', 'method'), ('K', 'num_modules'),
           ('split points', 'split_points'), ('figure', 'figure'),
           ('activations (MiB)', 'activations_mb'), ('peak (MiB)', 'peak_mb'),
           ('peak / E2E', 'peak_vs_e2e'), ('time/iter (s)', 'time_s'),
           ('time / E2E', 'time_vs_e2e'), ('CPU s/iter', 'cpu_time_s'),
           ('CPU / E2E', 'cpu_time_vs_e2e'), ('max RSS (MiB)', 'max_rss_mb')]


def _cell(value) -> str:
    if value is None:
        return '-'
    if isinstance(value, float):
        return f'{value:.2f}' if value < 10 else f'{value:.0f}'
    if isinstance(value, list):
        return ','.join(value) if value else '-'
    return str(value)


def footer(rows: List[dict], device: str) -> List[str]:
    """The notes that say what the figures count."""
    lines = [FOOTER_CUDA if device == 'cuda' else FOOTER_CPU]
    if any(r.get('figure') == ESTIMATED for r in rows):
        lines.append(FOOTER_META)
    for row in rows:
        if row.get('note'):
            lines.append(f'{row["method"]} {row["crop"]}: {row["note"]}')
    return lines


def format_table(rows: List[dict], device: str) -> str:
    """One text table (prettytable when installed) plus the footer."""
    header = [title for title, _ in COLUMNS]
    body = [[_cell(row.get(key)) for _, key in COLUMNS] for row in rows]
    try:
        from prettytable import PrettyTable
        table = PrettyTable(header)
        table.align = 'r'
        for line in body:
            table.add_row(line)
        text = table.get_string()
    except ImportError:
        widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(header)]
        text = '\n'.join('  '.join(c.rjust(w) for c, w in zip(line, widths))
                         for line in [header] + body)
    return text + '\n' + '\n'.join(f'* {line}' for line in footer(rows, device))


def write_outputs(rows: List[dict], args: argparse.Namespace) -> None:
    """results.csv, results.json and, with the peaks, memory_vs_crop.png."""
    keys = [key for _, key in COLUMNS] + [
        'estimated_activations_mb', 'estimated_peak_mb', 'state_mb', 'param_mb',
        'optimizer_state_mb', 'grad_mb', 'times_s', 'load_avg', 'iters', 'device', 'note',
        'wall_s']
    with open(osp.join(args.out, 'results.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction='ignore')
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (';'.join(map(str, row[k])) if isinstance(row.get(k), list)
                                 else row.get(k)) for k in keys})
    meta = dict(config=args.config, iters=args.iters, device=args.device,
                torch=torch.__version__, threads=args.threads or torch.get_num_threads(),
                footer=footer(rows, args.device))
    with open(osp.join(args.out, 'results.json'), 'w') as f:
        json.dump(dict(meta=meta, rows=rows), f, indent=2)
    batches = '/'.join(str(b) for b in sorted({r['batch'] for r in rows}))
    plot(rows, osp.join(args.out, 'memory_vs_crop.png'),
         f'{osp.splitext(osp.basename(args.config))[0]}, batch {batches} ({args.device})')


def plot(rows: List[dict], path: str, title: str) -> None:
    """Peak memory against crop size, one line per method (hollow markers: meta estimates)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    several_batches = len({r['batch'] for r in rows}) > 1
    lines = list(dict.fromkeys((r['method'], r['batch']) for r in rows))
    for i, (method, batch) in enumerate(lines):
        points = sorted(((_pixels(r['crop']), r['peak_mb'], r['figure'] == ESTIMATED, r['crop'])
                         for r in rows
                         if (r['method'], r['batch']) == (method, batch) and r.get('peak_mb')),
                        key=lambda p: p[0])
        if not points:
            continue
        color = f'C{i % 10}'
        ax.plot([p[0] for p in points], [p[1] / 1024 for p in points], '-', color=color,
                label=f'{method}, batch {batch}' if several_batches else method)
        for pixels, peak, estimated, _ in points:
            ax.plot(pixels, peak / 1024, 'o', color=color,
                    markerfacecolor='none' if estimated else color)
    crops = sorted({(_pixels(r['crop']), r['crop']) for r in rows})
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xticks([p for p, _ in crops])
    ax.set_xticklabels([c for _, c in crops], rotation=30)
    ax.minorticks_off()
    ax.set_xlabel('crop (H x W)')
    ax.set_ylabel('peak memory (GiB)')
    ax.set_title(title + '\n(hollow markers: estimated on the meta device)', fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _pixels(crop: str) -> int:
    height, width = crop.split('x')
    return int(height) * int(width)


# ----------------------------------------------------------------------------- worker process

def _say(spec: dict, message: str) -> None:
    print(f'  [{spec["method"]} {spec["crop"][0]}x{spec["crop"][1]}] {message}',
          file=sys.stderr, flush=True)


def _drop_pretrained(cfg):
    """No downloads: pretrained=None and no 'Pretrained' init_cfg anywhere in the model."""
    if isinstance(cfg, dict):
        for key, value in list(cfg.items()):
            if key == 'pretrained':
                cfg[key] = None
            elif key == 'init_cfg' and isinstance(value, dict) and 'Pretrained' in str(
                    value.get('type', '')):
                cfg[key] = None
            else:
                _drop_pretrained(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            _drop_pretrained(value)


def _own_num_cuts(model_cfg: dict) -> Optional[int]:
    """How many cuts the config's own split points make (None: 'auto' without K, or unknown)."""
    from infopro_seg.models.splits import SPLIT_PRESETS
    split_points = model_cfg['backbone'].get('split_points', ())
    if split_points == 'auto':
        planner = model_cfg.get('split_planner') or {}
        return planner['num_modules'] - 1 if 'num_modules' in planner else None
    if isinstance(split_points, str):
        return len(SPLIT_PRESETS.get(split_points, ())) if split_points in SPLIT_PRESETS else None
    return len(split_points)


def method_model_cfg(cfg: Config, method: str, crop: Sequence[int], batch: int
                     ) -> Tuple[dict, List[str]]:
    """The model config for a method, and notes about what was changed.

    Raises:
        ValueError: An InfoPro method on a config that is not an InfoPro model.
    """
    from infopro_seg.models.planner import single_device_norm
    base, k, _ = parse_method(method)
    model = single_device_norm(copy.deepcopy(cfg.model.to_dict()))
    _drop_pretrained(model)
    if model.get('data_preprocessor') is not None:
        # Crops arrive at the benchmark size; mmseg would otherwise pad them to the config's.
        model['data_preprocessor']['size'] = tuple(crop)
    notes = []
    infopro = model.get('type') == 'InfoProEncoderDecoder'
    if base == 'infopro':
        if not infopro:
            raise ValueError(f'{method} needs an InfoPro config (model.type='
                             f"'InfoProEncoderDecoder'), this one is {model.get('type')!r}")
        if _own_num_cuts(model) == k - 1 and model['backbone'].get('split_points') != 'auto':
            notes.append("the config's split points")
        else:
            model['backbone']['split_points'] = 'auto'
            model['split_planner'] = dict(num_modules=k, crop_size=tuple(crop), batch_size=batch)
            weights = model.get('local_loss_weights')
            if isinstance(weights, (list, tuple)) and len(weights) not in (1, k - 1):
                # Written for another K: go linearly from the first pair to the last.
                model['local_loss_weights'] = dict(first=weights[0], last=weights[-1])
                notes.append('loss weights first->last schedule')
    elif infopro:
        model['backbone']['split_points'] = []
        model.pop('split_planner', None)
    if base == 'with_cp':
        model['backbone']['with_cp'] = True
    return model, notes


def _tensor_bytes(tensors) -> int:
    """Bytes of distinct storages among ``tensors``."""
    from infopro_seg.utils.memory import storage_key
    seen, total = set(), 0
    for tensor in tensors:
        if not isinstance(tensor, torch.Tensor):
            continue
        key = storage_key(tensor)
        if key not in seen:
            seen.add(key)
            total += tensor.untyped_storage().nbytes()
    return total


def _state_bytes(model: torch.nn.Module, optim_wrapper) -> Dict[str, int]:
    params = _tensor_bytes(list(model.parameters()) + list(model.buffers()))
    optimizer_state = _tensor_bytes(value for state in optim_wrapper.optimizer.state.values()
                                    for value in state.values())
    grads = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return dict(params=params, optimizer_state=optimizer_state, grads=grads)


def _build(model_cfg: dict, cfg: Config, device: str, amp: bool):
    """Model and optimizer wrapper on ``device`` (``'meta'``: nothing allocated)."""
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS
    if device == 'meta':
        with torch.device('meta'):
            model = MODELS.build(ConfigDict(model_cfg))
    else:
        # Default initialisation suffices for memory and time (and init_weights would log every
        # parameter).
        model = MODELS.build(ConfigDict(model_cfg))
    model.to(device)  # also tells the data preprocessor where to put batches
    model.train()
    optim_cfg = copy.deepcopy(cfg.get('optim_wrapper') or dict(
        type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9,
                                            weight_decay=0.0005)))
    if amp:
        optim_cfg['type'] = 'AmpOptimWrapper'
        optim_cfg['dtype'] = 'float16' if device == 'cuda' else 'bfloat16'
        optim_cfg.setdefault('loss_scale', 'dynamic')
    if amp and device != 'cuda':
        # mmengine refuses AmpOptimWrapper without a GPU; on CPU its GradScaler is a
        # pass-through and autocast runs in bfloat16, which is what we want to measure.
        import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_module
        original = amp_module.is_cuda_available
        amp_module.is_cuda_available = lambda: True
        try:
            optim_wrapper = build_optim_wrapper(model, optim_cfg)
        finally:
            amp_module.is_cuda_available = original
    else:
        optim_wrapper = build_optim_wrapper(model, optim_cfg)
    return model, optim_wrapper


def _iterate(model, optim_wrapper, batch: dict, iters: int, device: str, spec: dict,
             label: str) -> dict:
    """Run ``iters`` training steps; return the saved/grad peaks and the times."""
    from infopro_seg.models.planner import SavedBytesMeter, meta_safe_accuracy
    times, cpu_times, peak, peak_saved = [], [], 0, 0
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for i in range(iters):
        meter = None
        if device != 'cuda':
            meter = SavedBytesMeter()
            meter.track_grads(model.parameters())
        start, cpu_start = time.perf_counter(), time.process_time()
        with meter or nullcontext(), meta_safe_accuracy() if device == 'meta' else nullcontext():
            model.train_step(batch, optim_wrapper)
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        if meter is not None:
            peak = max(peak, meter.peak_bytes)
            peak_saved = max(peak_saved, meter.peak_saved_bytes)
        _say(spec, f'{label} iteration {i + 1}/{iters}: {times[-1]:.2f} s '
             f'(process CPU time {cpu_times[-1]:.2f} s)')
    result = dict(times=times, cpu_times=cpu_times, peak=peak, peak_saved=peak_saved)
    if device == 'cuda':
        result['cuda_peak'] = torch.cuda.max_memory_allocated()
    return result


def worker(spec: dict) -> dict:
    """Benchmark one method at one crop in this process; return its row."""
    from infopro_seg.utils.batch import random_seg_batch
    warnings.filterwarnings('ignore')
    import infopro_seg  # noqa: F401  (registers the models)
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    if spec.get('threads'):
        torch.set_num_threads(spec['threads'])
    torch.backends.cudnn.benchmark = False
    MMLogger.get_instance('mmengine', log_level='INFO')
    cfg = Config.fromfile(spec['config'])
    if spec.get('cfg_options'):
        cfg.merge_from_dict(spec['cfg_options'])
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    crop, batch, method = spec['crop'], spec['batch'], spec['method']
    base, k, amp = parse_method(method)
    row = dict(method=method, crop=f'{crop[0]}x{crop[1]}', batch=batch, num_modules=k,
               device=spec['device'], iters=spec['iters'])
    model_cfg, notes = method_model_cfg(cfg, method, crop, batch)

    estimate = None
    if spec['meta'] != 'never':
        # AMP cannot run on meta: its rows use the float32 estimate (an upper bound) only to
        # decide whether a real run fits.
        _say(spec, 'estimating on the meta device ...')
        model, optim_wrapper = _build(model_cfg, cfg, 'meta', amp=False)
        num_classes = model.decode_head.num_classes
        run = _iterate(model, optim_wrapper, random_seg_batch(batch, crop, num_classes, 'meta'),
                       1, 'meta', spec, 'meta')
        state = _state_bytes(model, optim_wrapper)
        static = state['params'] + state['optimizer_state']
        estimate = dict(activations=run['peak_saved'], peak=run['peak'] + static, state=state)
        row['split_points'] = list(getattr(model.backbone, 'split_points', []))
        if not amp:
            row.update(estimated_activations_mb=round(run['peak_saved'] / MiB, 1),
                       estimated_peak_mb=round(estimate['peak'] / MiB, 1))
        del model, optim_wrapper

    real = spec['meta'] == 'never' or (spec['meta'] == 'auto' and (
        estimate is None or estimate['peak'] * 1.25 <= spec['max_mem']))
    if not real and amp:
        why = ('the float32 estimate x1.25 exceeds the '
               f'{spec["max_mem"] / GiB:.1f} GiB a real run may use; '
               if spec['meta'] == 'auto' else '')
        row.update(figure='skipped', note=f'{why}AMP cannot run on the meta device')
        return row
    if not real:
        if spec['meta'] == 'auto':
            notes.append(f'estimate x1.25 exceeds the {spec["max_mem"] / GiB:.1f} GiB a real '
                         'run may use')
        state = estimate['state']
        row.update(figure=ESTIMATED, activations_mb=row['estimated_activations_mb'],
                   peak_mb=row['estimated_peak_mb'])
    else:
        device = spec['device']
        _say(spec, f'building on {device} ...')
        model, optim_wrapper = _build(model_cfg, cfg, device, amp)
        data = random_seg_batch(batch, crop, model.decode_head.num_classes, 'cpu')
        run = _iterate(model, optim_wrapper, data, spec['iters'], device, spec, 'train')
        state = _state_bytes(model, optim_wrapper)
        static = state['params'] + state['optimizer_state']
        timed = run['times'][1:] or run['times']
        cpu_timed = run['cpu_times'][1:] or run['cpu_times']
        if len(run['times']) == 1:
            notes.append('one iteration: its time includes the warm-up')
        row.update(figure=MEASURED, split_points=list(getattr(model.backbone, 'split_points',
                                                               [])),
                   time_s=round(statistics.median(timed), 3),
                   times_s=[round(t, 3) for t in run['times']],
                   load_avg=[round(v, 2) for v in os.getloadavg()])
        if device != 'cuda':  # on CUDA the host CPU time says little about the work
            row['cpu_time_s'] = round(statistics.median(cpu_timed), 3)
        if device == 'cuda':
            row['peak_mb'] = round(run['cuda_peak'] / MiB, 1)
        else:
            row.update(activations_mb=round(run['peak_saved'] / MiB, 1),
                       peak_mb=round((run['peak'] + static) / MiB, 1))
        row['max_rss_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        if amp and device != 'cuda':
            notes.append('AMP on CPU: bfloat16 autocast')
    row.update(state_mb=round((state['params'] + state['optimizer_state'] + state['grads'])
                              / MiB, 1),
               param_mb=round(state['params'] / MiB, 1),
               optimizer_state_mb=round(state['optimizer_state'] / MiB, 1),
               grad_mb=round(state['grads'] / MiB, 1))
    if notes:
        row['note'] = '; '.join(notes)
    return row


def run_worker(args: argparse.Namespace) -> None:
    """Worker entry: write the row (or the failure) to the spec's result file."""
    spec = json.loads(args.worker)
    try:
        row = worker(spec)
    except Exception as error:  # report the failure as a row; the parent goes on
        logging.getLogger(__name__).debug('worker failed', exc_info=True)
        import traceback
        traceback.print_exc()
        note = f'{type(error).__name__}: {error}'.splitlines()[0][:300]
        if 'more than 1 value per channel' in note:
            note += (' (BatchNorm over a 1x1 map, e.g. the ASPP image pooling, needs batch >= 2 '
                     'on one device)')
        row = dict(method=spec['method'], crop=f'{spec["crop"][0]}x{spec["crop"][1]}',
                   batch=spec['batch'], figure='failed', note=note)
    with open(spec['result'], 'w') as f:
        json.dump(row, f)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Benchmark every method and crop, print the table, write CSV, JSON and the plot."""
    args = parse_args(argv)
    if args.worker is not None:
        run_worker(args)
        return
    rows = run_all(args)
    print(format_table(rows, args.device))
    write_outputs(rows, args)
    print(f'\nwrote {osp.join(args.out, "results.csv")}, results.json, memory_vs_crop.png')


if __name__ == '__main__':
    main()
