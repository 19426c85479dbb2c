"""Test (evaluate) a checkpoint with mmengine's Runner; mmseg's tools/test.py arguments.

The checkpoint is loaded weights-only; stock mmengine / mmseg training checkpoints load too.
"""
import argparse

from mmengine.config import DictAction

import infopro_seg  # noqa: F401  (registers the models)
from infopro_seg.engine.cli import (UsageError, add_debug_argument, build_runner,
                                    check_data_roots, load_config, run_cli, set_local_rank)
from infopro_seg.engine.config_check import check_config
from infopro_seg.fileio import safe_checkpoint_loading


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--out', help='save predictions (and, with CityscapesMetric, the '
                        'benchmark-server export) to this directory')
    parser.add_argument('--show', action='store_true', help='show predictions')
    parser.add_argument('--show-dir', help='save visualised predictions under this directory '
                        "(as mmseg's tools/test.py: relative to the current directory, not to "
                        'the work dir)')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds per shown image')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--tta', action='store_true', help='multi-scale + flip test-time '
                        "augmentation (the config's tta_pipeline)")
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_debug_argument(parser)
    args = parser.parse_args()
    set_local_rank(args.local_rank)
    return args


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    cfg.load_from = args.checkpoint
    check_data_roots(cfg, ['test_dataloader'])
    check_config(cfg, training=False)
    if args.show or args.show_dir:
        hook = cfg.default_hooks.get('visualization')
        if hook is None:
            raise UsageError('--show/--show-dir need default_hooks.visualization in the config')
        hook.update(draw=True, interval=1)
        if args.show:
            hook.update(show=True, wait_time=args.wait_time)
        if args.show_dir:
            cfg.visualizer['save_dir'] = args.show_dir
    if args.tta:
        if 'tta_pipeline' not in cfg or 'tta_model' not in cfg:
            raise UsageError('--tta needs tta_pipeline and tta_model in the config')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    with safe_checkpoint_loading():
        build_runner(cfg).test()


if __name__ == '__main__':
    run_cli(main)
