"""Train a segmentor (InfoPro or plain mmseg) with mmengine's Runner.

Same arguments as mmseg's tools/train.py; ``--resume`` also takes a checkpoint path. Checkpoints
are written atomically and loaded weights-only, stock mmengine / mmseg ones included. Exit codes:
0 done, 2 bad input, 3 training stopped (e.g. a failed save), 4 preempted (a checkpoint of the
last iteration was saved: run again with ``--resume``); see docs/faults.md. A mistake
in the config or the data is reported in one line before training starts (exit status 2).
"""
import argparse

from mmengine.config import DictAction

import infopro_seg  # noqa: F401  (registers the models)
from infopro_seg.engine.cli import (add_debug_argument, build_runner, check_data_roots,
                                    enable_amp, load_config, run_cli, set_local_rank,
                                    use_atomic_checkpoint_writes)
from infopro_seg.engine.config_check import check_config
from infopro_seg.engine.resume import apply_resume
from infopro_seg.fileio import safe_checkpoint_loading
from infopro_seg.planning.fit import fit_budget_arg, request_fit, resolve_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CHECKPOINT',
                        help='resume from CHECKPOINT, or without a value (or "auto") from the '
                        'latest complete checkpoint in the work dir; under a torchrun restart '
                        'that is the default')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--fit', type=fit_budget_arg, metavar='GIB|auto',
                        help='plan K, the split points, which modules recompute and AMP so that '
                        'training fits this many GiB per GPU ("auto": the free memory of the '
                        'GPU), keeping a headroom; the choice is logged and kept in the work '
                        "dir's config (docs/fit.md)")
    parser.add_argument('--fit-headroom', type=float, metavar='GIB',
                        help='GiB of the --fit budget kept free of the planned peak (default: '
                        '1 GiB + 10%% of the budget)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (e.g. '
                        'train_cfg.max_iters=1000)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_debug_argument(parser)
    args = parser.parse_args()
    set_local_rank(args.local_rank)
    return args


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    if args.amp:
        enable_amp(cfg)
    apply_resume(cfg, args.resume)
    if args.fit is not None:
        request_fit(cfg, args.fit, args.fit_headroom)
    resolve_config(cfg)
    check_data_roots(cfg, ['train_dataloader', 'val_dataloader'])
    check_config(cfg, training=True)
    use_atomic_checkpoint_writes(cfg)
    with safe_checkpoint_loading():
        build_runner(cfg).train()


if __name__ == '__main__':
    run_cli(main)
