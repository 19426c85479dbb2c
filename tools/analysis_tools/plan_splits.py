"""Choose memory-balanced InfoPro split points (InfoPro*) for a config, crop and batch.

Examples::

    # The K=2 cut for R-101-D8 at 512x1024, batch 2 (measured on the meta device: seconds, no
    # memory), with each module's activation memory:
    python tools/analysis_tools/plan_splits.py configs/deeplabv3_r101_infopro_cityscapes.py \\
        --crop 512 1024 --batch 2 -k 2

    # The fastest configuration (K, cuts, which modules recompute, AMP, stepping each module)
    # whose largest module plus the model state fits a 12 GiB GPU with its headroom, every
    # candidate in a table, written as a ready config:
    python tools/analysis_tools/plan_splits.py configs/deeplabv3_r101_infopro_cityscapes.py \\
        --budget-gib 12 --write-config configs/my_r101_12gib.py

'Fastest' is the smallest estimated time overhead over E2E, from FLOPs measured on the meta
device (w and psi, and one more forward of every checkpointed module); AMP and stepping each
module are estimated free, and chosen only where they are needed to fit
(:mod:`infopro_seg.planning.budget`). ``tools/train.py --fit GIB`` makes the same choice.
``-k`` plans the model as the config builds it (``model.checkpointing`` included); ``--amp``
plans it for mixed precision (autocast emulated on the meta device).

Exit status: 0, or 2 when nothing fits the budget (the message names the smallest peak that any
configuration reaches) or the arguments are wrong.
"""
import argparse
import os.path as osp
import warnings
from typing import Optional, Sequence

from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

import infopro_seg  # noqa: F401  (registers the models)
from infopro_seg.engine.cli import UsageError, add_debug_argument, read_config, run_cli
from infopro_seg.planning import (config_batch_size, config_crop_size, config_cuts,
                                  config_optimizer, evaluate_cuts, naive_cuts, plan_splits,
                                  profile_model, summarize_plan)
from infopro_seg.planning.fit import fit_request, plan_fit
from infopro_seg.planning.fit_config import write_fit_config
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
    parser.add_argument('--budget-gib', '--budget-gb', dest='budget_gib', type=float,
                        default=None, metavar='GIB',
                        help='the fastest (K, cuts, modules to recompute, AMP, stepping each '
                        'module) whose largest module + model state + headroom fits this many '
                        'GiB, as tools/train.py --fit chooses it')
    parser.add_argument('--headroom-gib', type=float, default=None, metavar='GIB',
                        help='GiB of the budget kept free of the planned peak (default: 1 GiB '
                        '+ 10%% of the budget: CUDA workspaces, allocator slack, validation)')
    parser.add_argument('--write-config', metavar='OUT.py',
                        help='with --budget-gib: write a config that inherits CONFIG and sets '
                        "the choice (the config's own crop and batch)")
    parser.add_argument('--max-k', type=int, default=8, help='largest K tried for --budget-gb')
    parser.add_argument('--amp', action='store_true',
                        help='-k: plan for mixed precision (autocast emulated on the meta device)')
    parser.add_argument('--device', default='meta',
                        help="where to measure: 'meta' (default; shapes only, no memory) or "
                        "'cpu'/'cuda' (needs E2E training memory)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if args.num_modules is None and args.budget_gib is None:
        parser.error('give -k K, --budget-gib X, or both')
    if args.budget_gib is not None and not args.budget_gib > 0:
        parser.error(f'--budget-gib must be a positive number of GiB, got {args.budget_gib:g}')
    if args.headroom_gib is not None and args.headroom_gib < 0:
        parser.error(f'--headroom-gib must be >= 0, got {args.headroom_gib:g}')
    if args.write_config and args.budget_gib is None:
        parser.error('--write-config writes the answer to --budget-gib: give both')
    if args.batch is not None and args.batch < 1:
        parser.error(f'--batch must be at least 1, got {args.batch}')
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Plan, print, and exit non-zero when a budget cannot be met."""
    args = parse_args(argv)
    # mmseg's deprecation notices (build_loss, avg_non_ignore) and the model's build log say
    # nothing about the plan.
    warnings.filterwarnings('ignore', category=UserWarning)
    MMLogger.get_instance('plan_splits', log_level='WARNING')
    cfg = read_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    crop = tuple(args.crop) if args.crop else config_crop_size(cfg)
    if crop is None:
        raise UsageError('the config names no crop size: pass --crop H W')
    batch = args.batch if args.batch is not None else config_batch_size(cfg)
    print(f'Measuring {osp.basename(args.config)} at crop {crop[0]}x{crop[1]}, batch {batch} on '
          f'{args.device} ...', flush=True)
    if args.amp and args.device != 'meta':
        raise UsageError('--amp is emulated on the meta device: drop --device or use --device meta')
    profile = profile_model(cfg.model, crop, batch, args.device, config_optimizer(cfg),
                            amp=args.amp)
    e2e = evaluate_cuts(profile, [])
    print(f'E2E (K=1): activations {e2e.peak_bytes / MiB:.1f} MiB; model state '
          f'{e2e.state_bytes / MiB:.1f} MiB; together {e2e.peak_with_state_bytes / GiB:.2f} GiB')
    print('(activations: bytes saved for backward; model state: parameters, gradients and '
          'optimizer state, all counted at once, so "together" bounds the peak from above; '
          'benchmark_memory.py measures the peak itself, where E2E holds no gradients yet)')

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

    if args.budget_gib is not None:
        if args.max_k < 1:
            raise UsageError('--max-k must be at least 1')
        if args.write_config and (crop != config_crop_size(cfg) or
                                  batch != config_batch_size(cfg)):
            raise UsageError("--write-config plans for the config's own crop and batch "
                             f'({config_crop_size(cfg)}, batch {config_batch_size(cfg)}): drop '
                             '--crop/--batch, or set them in the config')
        request = fit_request(Config(dict(infopro_fit=dict(
            budget_gib=args.budget_gib, headroom_gib=args.headroom_gib, max_k=args.max_k))))
        print()
        decision, table = plan_fit(cfg, request, crop=crop, batch=batch, report=print)
        print(decision.describe())
        if args.write_config:
            write_fit_config(args.config, args.write_config, decision, table)
            print(f'Wrote {args.write_config}: python tools/train.py {args.write_config}')


if __name__ == '__main__':
    run_cli(main)
