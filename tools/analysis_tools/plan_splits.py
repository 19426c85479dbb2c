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
import sys
import warnings
from typing import Optional, Sequence

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import infopro_seg  # noqa: E402,F401  (registers the models)
from infopro_seg.engine.cli import UsageError, run_cli  # noqa: E402
from infopro_seg.models.planner import (GiB, MiB, SplitPlan, budget_message,  # noqa: E402
                                        evaluate_cuts, fit_budget, naive_cuts, plan_splits,
                                        profile_model)
from infopro_seg.models.splits import SPLIT_PRESETS, resolve_split_points  # noqa: E402


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


def _crop_and_batch(cfg: Config, args: argparse.Namespace):
    crop = args.crop or cfg.get('crop_size') or cfg.model.get('data_preprocessor', {}).get('size')
    if crop is None:
        raise UsageError('the config names no crop size: pass --crop H W')
    batch = args.batch
    if batch is None:
        batch = (cfg.get('train_dataloader') or {}).get('batch_size') or 2
    return (int(crop[0]), int(crop[1])), int(batch)


def _config_cuts(cfg: Config, unit_names: Sequence[str]) -> Optional[list]:
    """The config's own cuts, if it names them explicitly (not 'auto')."""
    split_points = cfg.model.get('backbone', {}).get('split_points')
    if split_points is None or split_points == 'auto':
        return None
    if isinstance(split_points, str) and split_points not in SPLIT_PRESETS:
        return None
    return resolve_split_points(split_points, unit_names)


def _summary(name: str, plan: SplitPlan) -> str:
    modules = ', '.join(f'{m["total_bytes"] / MiB:.0f}' for m in plan.modules)
    return (f'{name:<28} {str(plan.split_points):<48} largest {plan.peak_bytes / MiB:9.1f} MiB  '
            f'(modules: {modules} MiB)')


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Plan, print, and exit non-zero when a budget cannot be met."""
    args = parse_args(argv)
    # mmseg's deprecation notices (build_loss, avg_non_ignore) say nothing about the plan.
    warnings.filterwarnings('ignore', category=UserWarning)
    if not osp.isfile(args.config):
        raise UsageError(f'config file {args.config} not found')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    crop, batch = _crop_and_batch(cfg, args)
    optimizer_cfg = (cfg.get('optim_wrapper') or {}).get('optimizer')
    print(f'Measuring {osp.basename(args.config)} at crop {crop[0]}x{crop[1]}, batch {batch} on '
          f'{args.device} ...', flush=True)
    profile = profile_model(cfg.model, crop, batch, args.device, optimizer_cfg)
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
        print(_summary('balanced (InfoPro*)', plan))
        if args.num_modules > 1:
            print(_summary('evenly spaced units',
                           evaluate_cuts(profile, naive_cuts(profile.num_units,
                                                             args.num_modules))))
        own = _config_cuts(cfg, profile.unit_names)
        if own is not None and len(own) == args.num_modules - 1:
            print(_summary("the config's split points", evaluate_cuts(profile, own)))

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
