"""The "which config for my GPU" table: what ``tools/train.py --fit <GPU size>`` chooses.

Example (the README's table)::

    python tools/analysis_tools/fit_table.py configs/deeplabv3_r101_infopro_cityscapes.py \\
        configs/deeplabv3plus_r101_infopro_cityscapes.py --crops 512x1024 1024x2048 --batch 2

Every figure is a meta-device estimate (seconds, no GPU needed); the headroom is the fit's default
(1 GiB + 10% of the GPU). Prints a Markdown table; ``--out`` also writes it to a file.
"""
import argparse
import os.path as osp
import warnings
from typing import Optional, Sequence

from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

import infopro_seg  # noqa: F401  (registers the models)
from infopro_seg.engine.cli import add_debug_argument, read_config, run_cli
from infopro_seg.fileio import atomic_write_bytes
from infopro_seg.planning.fit_table import GPU_SIZES, fit_rows, format_fit_table


def crop_arg(value: str):
    """``'512x1024'`` -> ``(512, 1024)``."""
    try:
        height, width = (int(v) for v in value.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'a crop is HxW, e.g. 512x1024; got {value!r}') from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f'a crop is HxW with positive sizes; got {value!r}')
    return height, width


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description='What the fit chooses for common GPU sizes.')
    parser.add_argument('configs', nargs='+', help='configs (one model each)')
    parser.add_argument('--crops', nargs='+', type=crop_arg, default=[(512, 1024), (1024, 2048)])
    parser.add_argument('--batch', type=int, default=2, help='images per GPU')
    parser.add_argument('--gpus', nargs='+', type=float, default=list(GPU_SIZES),
                        help='GPU memory sizes, GB')
    parser.add_argument('--out', help='also write the table to this file')
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    warnings.filterwarnings('ignore', category=UserWarning)
    MMLogger.get_instance('fit_table', log_level='WARNING')
    rows = []
    for path in args.configs:
        cfg = read_config(path)
        init_default_scope(cfg.get('default_scope', 'mmseg'))
        name = osp.splitext(osp.basename(path))[0]
        print(f'planning {name} ...', flush=True)
        rows += fit_rows(name, cfg, args.crops, args.batch, args.gpus)
    table = format_fit_table(rows, args.batch)
    print(table)
    if args.out:
        atomic_write_bytes((table + '\n').encode(), args.out)


if __name__ == '__main__':
    run_cli(main)
