"""Choose memory-balanced InfoPro split points (InfoPro*) for a config, crop and batch.

Examples::

    # The K=2 cut for R-101-D8 at 512x1024, batch 2 (measured on the meta device: seconds, no
    # memory), with each module's activation memory:
    python tools/analysis_tools/plan_splits.py configs/deeplabv3_r101_infopro_cityscapes.py \\
        --crop 512 1024 --batch 2 -k 2

    # The smallest K whose largest module plus the model state fits 8 GiB:
    python tools/analysis_tools/plan_splits.py configs/deeplabv3_r101_infopro_cityscapes.py \\
        --crop 1024 2048 --batch 2 --budget-gb 8

Exit status: 0, or 2 when no K fits the budget (the message names the smallest peak that any K
reaches) or the arguments are wrong.
"""
import argparse
import os.path as osp
import warnings
from typing import Optional, Sequence

from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

import infopro_seg  # noqa: F401  (registers the models)
from infopro_seg.engine.cli import UsageError, run_cli
from infopro_seg.planning import (budget_message, config_batch_size, config_crop_size,
                                  config_cuts, config_optimizer, evaluate_cuts, fit_budget,
                                  naive_cuts, plan_splits, profile_model, summarize_plan)
from infopro_seg.utils.memory import GiB, MiB


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Memory-balanced InfoPro split points for a config, crop and batch.')
    parser.add_argument('config', help='model config (InfoPro or plain mmseg ResNet DeepLab)')
    parser.add_argument('--crop', nargs=2, type=int, metavar=('H', 'W'),
                        help="training crop (default: the config's crop_size or data "
                        'preprocessor size)')
    parser.add_argument('--batch', type=int, default=None,
                        help="images per device (default: the config's train batch size, else 2)")
    parser.add_argument('-k', '--num-modules', type=int, default=None,
                        help='K, the number of local modules to plan for')
    parser.add_argument('--budget-gb', type=float, default=None,
                        help='report the smallest K whose largest module + model state fits '
                        'this many GiB')
    parser.add_argument('--max-k', type=int, default=16, help='largest K tried for --budget-gb')
    parser.add_argument('--device', default='meta',
                        help="where to measure: 'meta' (default; shapes only, no memory) or "
                        "'cpu'/'cuda' (needs E2E training memory)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    args = parser.parse_args(argv)
    if args.num_modules is None and args.budget_gb is None:
        parser.error('give -k K, --budget-gb X, or both')
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Plan, print, and exit non-zero when a budget cannot be met."""
    args = parse_args(argv)
    # mmseg's deprecation notices (build_loss, avg_non_ignore) and the model's build log say
    # nothing about the plan.
    warnings.filterwarnings('ignore', category=UserWarning)
    MMLogger.get_instance('plan_splits', log_level='WARNING')
    if not osp.isfile(args.config):
        raise UsageError(f'config file {args.config} not found')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    crop = tuple(args.crop) if args.crop else config_crop_size(cfg)
    if crop is None:
        raise UsageError('the config names no crop size: pass --crop H W')
    batch = args.batch if args.batch is not None else config_batch_size(cfg)
    print(f'Measuring {osp.basename(args.config)} at crop {crop[0]}x{crop[1]}, batch {batch} on '
          f'{args.device} ...', flush=True)
    profile = profile_model(cfg.model, crop, batch, args.device, config_optimizer(cfg))
    e2e = evaluate_cuts(profile, [])
    print(f'E2E (K=1): activations {e2e.peak_bytes / MiB:.1f} MiB; model state '
          f'{e2e.state_bytes / MiB:.1f} MiB; together {e2e.peak_with_state_bytes / GiB:.2f} GiB')

    if args.num_modules is not None:
        if not 1 <= args.num_modules <= profile.num_units:
            raise UsageError(f'-k must be between 1 and {profile.num_units} (the backbone units)')
        plan = plan_splits(profile, args.num_modules)
        print()
        print(plan.describe())
        print(f'largest module = {plan.peak_bytes / e2e.peak_bytes:.2f}x E2E activations')
        print(f'split_points={plan.split_points}')
        print()
        print('For comparison (largest module):')
        print(summarize_plan('balanced (InfoPro*)', plan))
        if args.num_modules > 1:
            naive = naive_cuts(profile.num_units, args.num_modules)
            print(summarize_plan('evenly spaced units', evaluate_cuts(profile, naive)))
        own = config_cuts(cfg, profile.unit_names)
        if own is not None and len(own) == args.num_modules - 1:
            print(summarize_plan("the config's split points", evaluate_cuts(profile, own)))

    if args.budget_gb is not None:
        print()
        plan, best = fit_budget(profile, int(args.budget_gb * GiB), args.max_k)
        if plan is None:
            raise UsageError(budget_message(best, args.budget_gb))
        print(f'Budget {args.budget_gb:g} GiB: the smallest K that fits is K={plan.num_modules} '
              f'(largest module + model state {plan.peak_with_state_bytes / GiB:.2f} GiB)')
        print(plan.describe())
        print(f'split_points={plan.split_points}')


if __name__ == '__main__':
    run_cli(main)
