"""The benchmark's loop: every (crop, method) measured in a fresh process, the outputs rewritten
after each, so an interrupted run keeps its rows."""
import json
import logging
import multiprocessing
import os
import os.path as osp
import sys
import tempfile
import time
import traceback
from typing import List, Optional, Sequence, Tuple

import torch

from ...utils.memory import GiB
from .measure import measure_method
from .plot import plot_memory_vs_crop
from .results import add_ratios, brief, load_rows, row_key, write_tables


def available_memory_bytes(device: str) -> int:
    """The memory a run could use: the GPU's, or the RAM now available (8 GiB if unknown)."""
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


def _measure_to_file(spec: dict) -> None:
    """Process entry: write the row (or the failure, as a row) to ``spec['result']``."""
    try:
        row = measure_method(spec)
    except Exception as error:  # report the failure as a row; the parent goes on
        logging.getLogger(__name__).debug('benchmark process failed', exc_info=True)
        traceback.print_exc()
        note = f'{type(error).__name__}: {error}'.splitlines()[0][:300]
        if 'more than 1 value per channel' in note:
            note += (' (BatchNorm over a 1x1 map, e.g. the ASPP image pooling, needs batch >= 2 '
                     'on one device)')
        row = dict(method=spec['method'], crop=f'{spec["crop"][0]}x{spec["crop"][1]}',
                   batch=spec['batch'], figure='failed', note=note)
    with open(spec['result'], 'w') as f:
        json.dump(row, f)


def write_outputs(rows: List[dict], out: str, config: str, iters: int, device: str,
                  threads: Optional[int]) -> None:
    """results.csv, results.json and memory_vs_crop.png in ``out``."""
    write_tables(rows, out, config, iters, device, threads)
    batches = '/'.join(str(b) for b in sorted({r['batch'] for r in rows}))
    plot_memory_vs_crop(rows, osp.join(out, 'memory_vs_crop.png'),
                        f'{osp.splitext(osp.basename(config))[0]}, batch {batches} ({device})')


def run_benchmark(config: str,
                  crops: Sequence[Tuple[int, int]],
                  methods: Sequence[str],
                  batch: int,
                  out: str,
                  iters: int = 3,
                  device: str = 'cpu',
                  meta: str = 'auto',
                  max_mem_bytes: Optional[int] = None,
                  threads: Optional[int] = None,
                  cfg_options: Optional[dict] = None,
                  append: bool = False) -> List[dict]:
    """Benchmark every method at every crop, each in a fresh process (so peaks never mix).

    Progress goes to stderr; the outputs in ``out`` are rewritten after every method.

    Args:
        config: The config file.
        crops: ``(H, W)`` crops.
        methods: Method names (see :func:`~.methods.parse_method`).
        batch: Images per iteration.
        out: Folder for results.csv, results.json and memory_vs_crop.png.
        iters: Training iterations per method (the first is a warm-up that is not timed).
        device: ``'cpu'`` or ``'cuda'``.
        meta: ``'auto'`` (estimate on the meta device first and run for real only if the
            estimate x1.25 fits ``max_mem_bytes``), ``'always'`` (estimates only) or ``'never'``.
        max_mem_bytes: Memory a real run may use (default: 80% of the available memory).
        threads: torch CPU threads in each process.
        cfg_options: Config overrides.
        append: Keep the rows already in ``out``/results.json (a row with the same crop, batch
            and method is replaced).

    Returns:
        list[dict]: All rows (earlier ones first when appending), with ratios to E2E.
    """
    max_mem = max_mem_bytes or int(0.8 * available_memory_bytes(device))
    os.makedirs(out, exist_ok=True)
    previous = load_rows(osp.join(out, 'results.json')) if append else []
    rows, all_rows = [], previous
    total = len(crops) * len(methods)
    processes = multiprocessing.get_context('spawn')
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        for crop in crops:
            for method in methods:
                index = len(rows) + 1
                print(f'[{index}/{total}] {method} at {crop[0]}x{crop[1]}, batch {batch} '
                      f'({device}) ...', file=sys.stderr, flush=True)
                spec = dict(config=osp.abspath(config), cfg_options=cfg_options, method=method,
                            crop=list(crop), batch=batch, iters=iters, device=device, meta=meta,
                            max_mem=max_mem, threads=threads,
                            result=osp.join(tmp, f'{index}.json'))
                started = time.time()
                process = processes.Process(target=_measure_to_file, args=(spec, ))
                process.start()
                process.join()
                if osp.isfile(spec['result']):
                    with open(spec['result']) as f:
                        row = json.load(f)
                else:
                    reason = ('killed: out of memory?' if process.exitcode in (-9, 137)
                              else f'exit status {process.exitcode}')
                    row = dict(method=method, crop=f'{crop[0]}x{crop[1]}', batch=batch,
                               figure='failed', note=reason)
                row['wall_s'] = round(time.time() - started, 1)
                print(f'[{index}/{total}] {method} at {crop[0]}x{crop[1]}: {brief(row)}',
                      file=sys.stderr, flush=True)
                rows.append(row)
                done = {row_key(r) for r in rows}
                all_rows = [r for r in previous if row_key(r) not in done] + rows
                add_ratios(all_rows)
                write_outputs(all_rows, out, config, iters, device, threads)
    return all_rows
