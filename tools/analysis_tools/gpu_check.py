"""Measure every memory estimate on this machine's GPU, beside the estimate, in one run.

On CUDA: R-101 DeepLab-V3 at 512x1024 and 1024x2048, batch 2, for E2E, with_cp, AMP, InfoPro
K=2, K=4 and K=4 + checkpointing + AMP (max_memory_allocated/reserved against the meta-device
estimate, interleaved time per iteration), then the fit on the device's free memory, trained
20 iterations through mmengine's Runner. Without CUDA the same stages run the demo net at 128x256
against the CPU meter. Example::

    python tools/analysis_tools/gpu_check.py --out work_dirs/gpu_check

Prints one table; writes gpu_check.json and gpu_check.md to --out. What each column counts:
docs/gpu_check.md and :mod:`infopro_seg.planning.benchmark.gpu_check`.
"""
import argparse
import os.path as osp
from typing import Optional, Sequence

import torch

from infopro_seg.engine.cli import add_debug_argument, run_cli
from infopro_seg.errors import ConfigError
from infopro_seg.planning.benchmark.gpu_check import cpu_suite, cuda_suite, run_gpu_check
from infopro_seg.planning.fit import fit_budget_arg

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='work_dirs/gpu_check',
                        help='folder for gpu_check.json and gpu_check.md')
    parser.add_argument('--device', choices=['cuda', 'cpu'],
                        default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='cuda: the R-101 check; cpu: the demo net against the CPU meter '
                        '(default: cuda where available)')
    parser.add_argument('--rounds', type=int, default=None,
                        help='timed rounds per method (default: 5 on CUDA, 2 on the CPU)')
    parser.add_argument('--fit-budget', default=None, type=fit_budget_arg, metavar='GIB|auto',
                        help="the fit's budget (default: auto on CUDA, 0.05 GiB on the CPU)")
    parser.add_argument('--fit-iters', type=int, default=None,
                        help='training iterations of the fitted run (default: 20 on CUDA, 3 on '
                        'the CPU)')
    parser.add_argument('--no-fit', action='store_true', help='skip the fit stage')
    add_debug_argument(parser)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Run the check and print its table."""
    args = parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise ConfigError('--device cuda: no CUDA device here; run with --device cpu to check '
                          'the script against the CPU meter')
    suite = cuda_suite(REPO) if args.device == 'cuda' else cpu_suite(REPO)
    if args.rounds is not None:
        if args.rounds < 1:
            raise ConfigError(f'--rounds must be at least 1, got {args.rounds}')
        suite.rounds = args.rounds
    if args.fit_iters is not None:
        if args.fit_iters < 1:
            raise ConfigError(f'--fit-iters must be at least 1, got {args.fit_iters}')
        suite.fit_iters = args.fit_iters
    if args.fit_budget is not None:
        if args.fit_budget == 'auto' and not torch.cuda.is_available():
            raise ConfigError("--fit-budget auto reads the free memory of a CUDA device, and "
                              'there is none here: give a number of GiB, e.g. --fit-budget 0.05')
        suite.fit_budget = args.fit_budget
    if args.no_fit:
        suite.fit_config = None
    report = run_gpu_check(suite, args.out)
    print(report['table'])
    print(f"\nwrote {osp.join(args.out, 'gpu_check.json')} and gpu_check.md "
          f"({report['seconds']['total']:.0f} s)")


if __name__ == '__main__':
    run_cli(main)
