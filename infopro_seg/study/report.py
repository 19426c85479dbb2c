"""The study's outputs: per-method summary, printed table, CSV, JSON and the mIoU-memory plot."""
import csv
import io
import json
import math
import statistics
from typing import Dict, List, Optional

from ..fileio.atomic import atomic_path, atomic_write_bytes


def _mean(values: List[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.fmean(values) if values else float('nan')


def _spread(values: List[float]) -> float:
    """Sample standard deviation over seeds (0 for a single seed)."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(rows: List[dict], methods: List[str]) -> List[dict]:
    """One summary per method (in the order given) over its successful runs."""
    summaries = []
    for method in methods:
        done = [r for r in rows if r['method'] == method and r.get('status') == 'ok']
        if not done:
            failed = [r for r in rows if r['method'] == method]
            if failed:
                summaries.append(dict(method=method, runs=0, failed=len(failed),
                                      K=failed[0].get('K')))
            continue
        prefixes = sorted({p for r in done for p in r['module_losses']}, key=_module_order)
        summaries.append(dict(
            method=method, K=done[0]['K'], iters=done[0]['iters'], runs=len(done),
            failed=len([r for r in rows if r['method'] == method]) - len(done),
            seeds=[r['seed'] for r in done],
            miou_mean=_mean([r['miou'] for r in done]),
            miou_std=_spread([r['miou'] for r in done]),
            aacc_mean=_mean([r['aacc'] for r in done]),
            learnt_classes_mean=_mean([r['learnt_classes'] for r in done]),
            peak_mb=done[0].get('peak_mb'),
            train_seconds_mean=_mean([r['train_seconds'] for r in done]),
            module_losses={p: _mean([r['module_losses'].get(p, float('nan')) for r in done])
                           for p in prefixes}))
    return summaries


def _module_order(prefix: str) -> tuple:
    if prefix.startswith('m') and prefix[1:].isdigit():
        return (0, int(prefix[1:]), '')
    return (1, 0, prefix)


def _fmt(value: Optional[float], digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    return f'{value:.{digits}f}'


def format_table(summaries: List[dict], learnt_iou: float) -> str:
    """The study table as text: one line per method."""
    prefixes = sorted({p for s in summaries for p in s.get('module_losses', {})},
                      key=_module_order)
    header = ['method', 'K', 'runs', 'mIoU', f'learnt(IoU>={learnt_iou:g})', 'aAcc',
              'peak MiB'] + [f'loss {p}' for p in prefixes] + ['train s']
    lines = []
    for s in summaries:
        if not s.get('runs'):
            lines.append([s['method'], str(s.get('K', '-')), f"0 ({s['failed']} failed)"] +
                         ['-'] * (len(header) - 3))
            continue
        runs = str(s['runs']) + (f" ({s['failed']} failed)" if s['failed'] else '')
        lines.append([s['method'], str(s['K']), runs,
                      f"{_fmt(s['miou_mean'])} +- {_fmt(s['miou_std'])}",
                      _fmt(s['learnt_classes_mean'], 1), _fmt(s['aacc_mean']),
                      _fmt(s['peak_mb'], 1)] +
                     [_fmt(s['module_losses'].get(p), 3) for p in prefixes] +
                     [_fmt(s['train_seconds_mean'], 0)])
    widths = [max(len(row[i]) for row in [header] + lines) for i in range(len(header))]
    out = ['  '.join(c.ljust(w) for c, w in zip(header, widths))]
    out.append('  '.join('-' * w for w in widths))
    out += ['  '.join(c.ljust(w) for c, w in zip(row, widths)) for row in lines]
    return '\n'.join(out)


def write_csv(rows: List[dict], path: str) -> None:
    """Rows as CSV (nested dicts flattened to ``name.key`` columns), written atomically."""
    flat_rows = []
    for row in rows:
        flat = {}
        for key, value in row.items():
            if isinstance(value, dict):
                flat.update({f'{key}.{k}': v for k, v in value.items()})
            elif isinstance(value, list):
                flat[key] = ' '.join(str(v) for v in value)
            else:
                flat[key] = value
        flat_rows.append(flat)
    fields: List[str] = []
    for flat in flat_rows:
        fields += [k for k in flat if k not in fields]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(flat_rows)
    atomic_write_bytes(buffer.getvalue().encode(), path)


def write_json(data: Dict, path: str) -> None:
    atomic_write_bytes((json.dumps(data, indent=2) + '\n').encode(), path)


def draw_miou_vs_memory(summaries: List[dict], title: str):
    """The figure of :func:`plot_miou_vs_memory`, or ``None`` if no method has both figures.

    Args:
        summaries: :func:`summarise`'s summaries.
        title: The plot's title.

    Returns:
        matplotlib.figure.Figure or None: The figure, with numbered linear axes.
    """
    points = [s for s in summaries if s.get('runs') and s.get('peak_mb') is not None
              and not math.isnan(s['miou_mean'])]
    if not points:
        return None
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for s in points:
        ax.errorbar(s['peak_mb'], s['miou_mean'], yerr=s['miou_std'], fmt='o', capsize=3)
        ax.annotate(f"{s['method']} (K={s['K']})", (s['peak_mb'], s['miou_mean']),
                    textcoords='offset points', xytext=(5, 5), fontsize=8)
    ax.set_xlabel('peak memory held for backward, MiB (one training step)')
    ax.set_ylabel('mIoU (%)')
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_miou_vs_memory(summaries: List[dict], path: str, title: str) -> bool:
    """Scatter of mIoU (mean, spread as error bar) against peak memory; False if no method has
    both figures (nothing written)."""
    fig = draw_miou_vs_memory(summaries, title)
    if fig is None:
        return False
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=120)
    return True
