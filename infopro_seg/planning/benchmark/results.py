"""The benchmark's rows as a table, CSV and JSON: ratios to E2E, columns, and what they count."""
import csv
import json
import os.path as osp
from typing import List, Optional, Tuple

import torch

from .measure import ESTIMATED

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
               'meta device (shapes only, nothing allocated); no time. AMP rows run it under '
               "EmulatedAutocast (autocast's casts; model state float32).")

#: Table columns: (title, row key).
COLUMNS = [('crop', 'crop'), ('batch', 'batch'), ('method', 'method'), ('K', 'num_modules'),
           ('split points', 'split_points'), ('figure', 'figure'),
           ('activations (MiB)', 'activations_mb'), ('peak (MiB)', 'peak_mb'),
           ('peak / E2E', 'peak_vs_e2e'), ('time/iter (s)', 'time_s'),
           ('time / E2E', 'time_vs_e2e'), ('CPU s/iter', 'cpu_time_s'),
           ('CPU / E2E', 'cpu_time_vs_e2e'), ('max RSS (MiB)', 'max_rss_mb')]
#: Further keys in results.csv.
EXTRA_CSV_KEYS = ['estimated_activations_mb', 'estimated_peak_mb', 'state_mb', 'param_mb',
                  'optimizer_state_mb', 'grad_mb', 'times_s', 'load_avg', 'iters', 'device',
                  'note', 'wall_s']


def row_key(row: dict) -> Tuple[str, int, str]:
    """What identifies a row: crop, batch, method."""
    return row['crop'], row['batch'], row['method']


def load_rows(path: str) -> List[dict]:
    """The rows of an earlier results.json (none if there is no such file)."""
    if not osp.isfile(path):
        return []
    with open(path) as f:
        return json.load(f)['rows']


def brief(row: dict) -> str:
    """One row in a few words, for progress messages."""
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


def write_tables(rows: List[dict], out: str, config: str, iters: int, device: str,
                 threads: Optional[int]) -> None:
    """Write ``out``/results.csv and ``out``/results.json.

    Args:
        rows: The rows.
        out: The output folder.
        config, iters, device, threads: The run's settings, recorded in results.json.
    """
    keys = [key for _, key in COLUMNS] + EXTRA_CSV_KEYS
    with open(osp.join(out, 'results.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction='ignore')
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (';'.join(map(str, row[k])) if isinstance(row.get(k), list)
                                 else row.get(k)) for k in keys})
    meta = dict(config=config, iters=iters, device=device, torch=torch.__version__,
                threads=threads or torch.get_num_threads(), footer=footer(rows, device))
    with open(osp.join(out, 'results.json'), 'w') as f:
        json.dump(dict(meta=meta, rows=rows), f, indent=2)
