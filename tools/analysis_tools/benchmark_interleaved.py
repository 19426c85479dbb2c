"""Time every combination of E2E, checkpointing, AMP and InfoPro K in one interleaved run.

Example (the run in docs/memory.md)::

    python tools/analysis_tools/benchmark_interleaved.py \\
        configs/deeplabv3_r101_infopro-k4_cityscapes.py --crop 64 128 --batch 2 --rounds 5 \\
        --peaks docs/composition_peaks_512x1024.json --out work_dirs/interleaved

See :mod:`infopro_seg.planning.benchmark.interleaved`.
"""
import argparse
import json
import os
import os.path as osp
import warnings
from typing import Optional, Sequence

from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

import infopro_seg  # noqa: F401  (registers the models)
from infopro_seg.engine.cli import ConfigError, add_debug_argument, run_cli
from infopro_seg.planning.benchmark import method_name
from infopro_seg.planning.benchmark.interleaved import (ALL_COMBINATIONS, format_timing_table,
                                                        plot_memory_vs_time, summarize,
                                                        time_interleaved)

#: The planner's memory-balanced cuts at 512x1024, batch 2 (docs/memory.md) for R-101.
DEFAULT_CUTS = ['1:', '2:layer3.11', '3:layer3.5,layer3.18', '4:layer3.1,layer3.11,layer3.21']


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='an InfoPro config')
    parser.add_argument('--crop', nargs=2, type=int, default=(64, 128), metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=5, help='timed rounds after one warm-up')
    parser.add_argument('--methods', nargs='+', default=list(ALL_COMBINATIONS), type=method_name)
    parser.add_argument('--cuts', nargs='+', default=DEFAULT_CUTS, metavar='K:POINTS',
                        help='split points per K, e.g. 2:layer3.11 3:layer3.5,layer3.18')
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--peaks', help='JSON {method: peak / E2E} to show and plot beside')
    parser.add_argument('--out', default='work_dirs/interleaved')
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error('--rounds must be at least 1')
    if 'e2e' not in args.methods:
        parser.error('--methods must include e2e (the reference of the ratios)')
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    warnings.filterwarnings('ignore')
    MMLogger.get_instance('mmengine', log_level='WARNING')
    if not osp.isfile(args.config):
        raise ConfigError(f'config file {args.config} not found')
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    cuts = {}
    for item in args.cuts:
        k, _, points = item.partition(':')
        if not k.isdigit():
            raise ConfigError(f'--cuts {item}: write K:POINTS, e.g. 2:layer3.11')
        cuts[int(k)] = [p for p in points.split(',') if p]
    times = time_interleaved(cfg, args.methods, cuts, args.crop, args.batch, args.rounds,
                             args.threads)
    rows = summarize(times)
    peaks = None
    if args.peaks:
        with open(args.peaks) as f:
            peaks = json.load(f)
    table = format_timing_table(rows, peaks)
    print(table)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'timing.json'), 'w') as f:
        json.dump(dict(crop=list(args.crop), batch=args.batch, rounds=args.rounds, cuts=cuts,
                       times=times, rows=rows), f, indent=1)
    with open(osp.join(args.out, 'timing.md'), 'w') as f:
        f.write(table + '\n')
    if peaks:
        plot_memory_vs_time(rows, peaks, osp.join(args.out, 'memory_vs_time.png'),
                            f'R-101-D8: peak at 512x1024 (meta estimate) vs CPU time at '
                            f'{args.crop[0]}x{args.crop[1]} (interleaved, median of '
                            f'{args.rounds})')
    print(f'wrote {args.out}/timing.json, timing.md'
          + (', memory_vs_time.png' if peaks else ''))


if __name__ == '__main__':
    run_cli(main)
