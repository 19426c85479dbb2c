"""Peak memory and time per iteration: E2E, gradient checkpointing, AMP and InfoPro with K modules.

Every method runs in a fresh process (so peaks never mix): the model is built from the config
(SyncBN -> BN, no pretrained weights), then N real training iterations run through the model's
own ``train_step`` and mmengine's optimizer wrapper (the config's optimizer, SGD in mmseg's
configs) on random data of the given crop and batch. Examples::

    python tools/analysis_tools/benchmark_memory.py configs/deeplabv3_r50_infopro_cityscapes.py \\
        --crop 512 1024 --batch 2 --iters 3 --out work_dirs/bench_r50
    python tools/analysis_tools/benchmark_memory.py CONFIG --crops 128x256 256x512 512x1024 \\
        --batch 1 --methods e2e with_cp infopro-k2 infopro-k4   # also plots memory vs crop

Methods: ``e2e`` (K=1), ``with_cp`` (E2E with mmseg's ``backbone.with_cp``), ``amp`` (E2E with
mixed precision: float16 on CUDA, bfloat16 autocast on CPU), ``infopro-kN`` (the config's own
split points if it has N-1 of them, else the split planner's for this crop and batch), each
optionally followed by ``+cp`` (``model.checkpointing=True``, InfoPro configs; not on
``with_cp``) and/or ``+amp``: ``e2e+cp``, ``infopro-k4+cp+amp``, ``with_cp+amp``. AMP rows
estimated on the meta device emulate autocast's casts there (note 'AMP emulated on meta'). What
each memory figure counts: docs/memory.md and :mod:`infopro_seg.planning.benchmark.measure`.

Writes ``results.csv``, ``results.json`` and ``memory_vs_crop.png`` to ``--out``.
"""
import argparse
import os.path as osp
import re
import sys
from typing import Optional, Sequence, Tuple

import torch
from mmengine.config import DictAction
from mmengine.registry import init_default_scope

import infopro_seg  # noqa: F401  (registers the models)
from infopro_seg.engine.cli import ConfigError, add_debug_argument, read_config, run_cli
from infopro_seg.engine.method_check import check_benchmark_methods
from infopro_seg.planning import config_crop_size
from infopro_seg.planning.benchmark import (DEFAULT_METHODS, format_table, method_name,
                                            run_benchmark)
from infopro_seg.utils.memory import GiB


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
    parser.add_argument('--methods', nargs='+', default=list(DEFAULT_METHODS), type=method_name,
                        help='e2e, with_cp, amp or infopro-kN, each optionally with +cp (every '
                        'module) or +cpM,N (modules M and N), +amp and +step (each module steps '
                        'after its backward), e.g. infopro-k4+cp3,4+amp+step; default: '
                        f'{" ".join(DEFAULT_METHODS)}')
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
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if args.iters < 1:
        parser.error('--iters must be at least 1')
    if args.batch < 1:
        parser.error('--batch must be at least 1')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device here')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Benchmark every method and crop, print the table, write CSV, JSON and the plot.

    Returns:
        int: 0, or 1 when any requested method failed (the others still ran).
    """
    args = parse_args(argv)
    cfg = read_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    crops = list(args.crops or []) + ([tuple(args.crop)] if args.crop else [])
    if not crops:
        crop = config_crop_size(cfg)
        if crop is None:
            raise ConfigError('the config names no crop size; pass --crop H W')
        crops = [crop]
    check_benchmark_methods(cfg, args.methods, crops[0], args.batch)
    rows = run_benchmark(
        args.config, crops, args.methods, args.batch, args.out, iters=args.iters,
        device=args.device, meta=args.meta,
        max_mem_bytes=int(args.max_mem_gb * GiB) if args.max_mem_gb else None,
        threads=args.threads, cfg_options=args.cfg_options, append=args.append)
    print(format_table(rows, args.device))
    print('\npeak: the highest point of a training step: tensors saved for backward and the '
          'gradients alive then, plus parameters, buffers and optimizer state (docs/memory.md)')
    print(f'\nwrote {osp.join(args.out, "results.csv")}, results.json, memory_vs_crop.png')
    requested = {(method, f'{h}x{w}', args.batch) for method in args.methods for h, w in crops}
    failed = [row for row in rows if row.get('figure') == 'failed'
              and (row['method'], row['crop'], row['batch']) in requested]
    if failed:
        print(f'error: {len(failed)} of {len(requested)} benchmark runs failed: '
              + '; '.join(f"{row['method']} at {row['crop']}: {row.get('note', '')}"
                          for row in failed), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    run_cli(main)
