"""Time every combination of E2E, checkpointing, AMP and InfoPro K in one interleaved run.

Machine noise (other jobs, frequency changes) drifts over minutes, so methods timed one after
another in separate processes see different machines. Here one model per K is built once and
every round runs each method once, in a fixed order (A B C ... A B C ...): a drift hits all
methods alike. The first round is a warm-up; the report gives, per method, the median of the
timed rounds, their spread (min-max) and the process CPU time beside the wall time.

A method is ``e2e``, ``with_cp`` (mmseg's ``with_cp`` on the backbone blocks), ``amp`` or
``infopro-kN``, optionally followed by ``+cp`` (``model.checkpointing=True``) and/or ``+amp``.
Checkpointing and AMP are switched per step on the same model (the segmentor reads
``checkpointing`` at every step; AMP is the optimizer wrapper), so the methods of one K share
weights and optimizer.
"""
import statistics
import sys
import time
from typing import Dict, List, Sequence, Tuple

import torch

from ...engine.amp import DeviceAmpOptimWrapper
from ...engine.optim import InfoProOptimWrapper
from ...models.utils.checkpointing import parse_checkpointing
from ...utils.batch import random_seg_batch
from ..build import build_on_one_device
from .methods import benchmark_model_cfg, parse_method

#: Every combination the issue asks for.
ALL_COMBINATIONS = ('e2e', 'with_cp', 'amp', 'e2e+cp+amp') + tuple(
    f'infopro-k{k}{suffix}' for k in (2, 3, 4) for suffix in ('', '+cp', '+amp', '+cp+amp'))


def _model_cfg(cfg, cuts: Sequence[str], crop: Sequence[int]) -> dict:
    model = benchmark_model_cfg(cfg, crop)
    model['backbone']['split_points'] = list(cuts)
    model.pop('split_planner', None)
    model['checkpointing'] = None
    return model


def time_interleaved(cfg, methods: Sequence[str], cuts: Dict[int, List[str]],
                     crop: Sequence[int], batch: int, rounds: int,
                     threads: int = 0) -> Dict[str, List[Tuple[float, float]]]:
    """Run ``rounds`` timed rounds (after one warm-up) of every method on the CPU.

    Args:
        cfg: The loaded InfoPro config (its model; SyncBN becomes BN).
        methods: Method names (:func:`parse_method`).
        cuts: Split points per K used by the methods (``{1: [], 2: [...], ...}``).
        crop: ``(H, W)`` of the random batch.
        batch: Images per iteration.
        rounds: Timed rounds (at least 1).
        threads: torch CPU threads (0: torch's default).

    Returns:
        dict: Per method, ``(wall seconds, process CPU seconds)`` of each timed round.
    """
    if threads:
        torch.set_num_threads(threads)
    parsed = {method: parse_method(method) for method in methods}
    models, wrappers = {}, {}
    for k in sorted({method.k for method in parsed.values()}):
        if k not in cuts:
            raise ValueError(f'no split points given for K={k}')
        torch.manual_seed(0)
        model = build_on_one_device(_model_cfg(cfg, cuts[k], crop), 'cpu')
        model.train()
        # A tiny learning rate: the weights stay in a normal range over all rounds.
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)
        models[k] = model
        wrappers[k] = (InfoProOptimWrapper(optimizer),
                       DeviceAmpOptimWrapper(device='cpu', dtype='bfloat16',
                                             optimizer=optimizer))
    data = random_seg_batch(batch, tuple(crop), models[min(models)].decode_head.num_classes,
                            'cpu')
    times = {method: [] for method in methods}
    for round_index in range(rounds + 1):
        for method in methods:
            base, k, cp, amp = parsed[method][:4]
            model = models[k]
            model.checkpointing = parse_checkpointing(True if cp else None)
            blocks = [m for m in model.backbone.modules()
                      if m is not model.backbone and hasattr(m, 'with_cp')]
            for block in blocks:
                block.with_cp = base == 'with_cp'
            start, cpu_start = time.perf_counter(), time.process_time()
            model.train_step(data, wrappers[k][1 if amp else 0])
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            for block in blocks:
                block.with_cp = False
            label = 'warm-up' if round_index == 0 else f'round {round_index}/{rounds}'
            print(f'  [{label}] {method}: {wall:.2f} s wall, {cpu:.2f} s CPU', file=sys.stderr,
                  flush=True)
            if round_index > 0:
                times[method].append((wall, cpu))
    return times


def summarize(times: Dict[str, List[Tuple[float, float]]], reference: str = 'e2e') -> List[dict]:
    """Median, spread and ratio to ``reference`` of wall and CPU time, per method."""
    ref_wall = statistics.median(w for w, _ in times[reference])
    ref_cpu = statistics.median(c for _, c in times[reference])
    rows = []
    for method, values in times.items():
        walls, cpus = [w for w, _ in values], [c for _, c in values]
        rows.append(dict(method=method, rounds=len(values),
                         wall_s=statistics.median(walls), wall_min=min(walls),
                         wall_max=max(walls), wall_ratio=statistics.median(walls) / ref_wall,
                         cpu_s=statistics.median(cpus), cpu_min=min(cpus), cpu_max=max(cpus),
                         cpu_ratio=statistics.median(cpus) / ref_cpu))
    return rows


def format_timing_table(rows: List[dict], peaks: Dict[str, float] = None) -> str:
    """A markdown table; ``peaks``: optional peak / E2E per method to show beside."""
    head = '| method | time/iter (s) | spread (s) | time / E2E | CPU s/iter | CPU spread | ' \
        'CPU / E2E |' + (' peak / E2E |' if peaks else '')
    lines = [head, '|' + '---|' * (head.count('|') - 1)]
    for row in rows:
        line = (f"| {row['method']} | {row['wall_s']:.2f} | {row['wall_min']:.2f}-"
                f"{row['wall_max']:.2f} | {row['wall_ratio']:.2f} | {row['cpu_s']:.2f} | "
                f"{row['cpu_min']:.2f}-{row['cpu_max']:.2f} | {row['cpu_ratio']:.2f} |")
        if peaks:
            peak = peaks.get(row['method'])
            line += f" {peak:.2f} |" if peak is not None else ' - |'
        lines.append(line)
    return '\n'.join(lines)


def draw_memory_vs_time(rows: List[dict], peaks: Dict[str, float], title: str):
    """The figure of :func:`plot_memory_vs_time` (not written anywhere).

    Args:
        rows: :func:`summarize`'s rows.
        peaks: Peak / E2E per method; methods without one are left out.
        title: The plot's title.

    Returns:
        matplotlib.figure.Figure: The figure, with numbered linear axes.
    """
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    for row in rows:
        if row['method'] not in peaks:
            continue
        x, y = row['cpu_ratio'], peaks[row['method']]
        marker = 'o' if row['method'].startswith('infopro') else 's'
        ax.scatter([x], [y], marker=marker)
        ax.annotate(row['method'], (x, y), fontsize=7, xytext=(3, 3), textcoords='offset points')
    ax.set_xlabel('CPU time per iteration / E2E (interleaved run)')
    ax.set_ylabel('peak memory / E2E')
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_memory_vs_time(rows: List[dict], peaks: Dict[str, float], path: str,
                        title: str) -> None:
    """One point per method: peak / E2E against CPU time / E2E, written to ``path``."""
    draw_memory_vs_time(rows, peaks, title).savefig(path, dpi=120)
