"""Accuracy study: train several local-learning methods on the same data and compare them.

Every method (and seed) is trained and validated through mmengine's Runner, one run after the
other in this process (``--isolate``: each in a fresh process); the tool then prints one table
(mIoU mean +- spread over seeds, classes learnt, peak memory, final training loss of every local
module) and writes results.json, runs.csv,
summary.csv, table.txt and miou_vs_memory.png into the work dir after every run.

Example (synthetic set, K=4):
    python tools/analysis_tools/compare_methods.py configs/study/deeplabv3_r18_k4_synthetic.py \\
        --methods e2e greedy infopro supcon --iters 600 --seeds 0 1 2 --work-dir work_dirs/study
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config, DictAction

from infopro_seg.engine.cli import add_debug_argument, run_cli
from infopro_seg.engine.method_check import check_study_config
from infopro_seg.study.methods import METHODS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog='methods:\n' + '\n'.join(f'  {name:16s} {m.description}'
                                        for name, m in METHODS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='an InfoPro config (the methods are overrides of it)')
    parser.add_argument('--methods', nargs='+', default=['e2e', 'greedy', 'infopro'],
                        help='methods to compare, in order (see below)')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0], help='one run per seed')
    parser.add_argument('--iters', type=int, help="training iterations (default: the config's)")
    parser.add_argument('--work-dir', default='work_dirs/compare_methods')
    parser.add_argument('--data-root', help='Cityscapes-format data for every run (default: '
                        'data/cityscapes if it holds Cityscapes, else data/synthetic_cityscapes);'
                        ' a folder without leftImg8bit/ gets a generated synthetic set')
    parser.add_argument('--num-train', type=int, default=200,
                        help='training images of a generated synthetic set')
    parser.add_argument('--num-val', type=int, default=50,
                        help='validation images of a generated synthetic set')
    parser.add_argument('--image-size', type=int, nargs=2, default=(256, 512),
                        metavar=('H', 'W'), help='size of generated synthetic images')
    parser.add_argument('--memory', choices=['meta', 'cpu', 'none'], default='meta',
                        help='peak memory held for backward per method, counted over one '
                        'training step by SavedTensorMeter on the meta device (nothing '
                        'allocated; the CPU where a loss cannot run on meta) or the CPU; '
                        'none: not measured')
    parser.add_argument('--learnt-iou', type=float, default=10.0,
                        help='a class counts as learnt at this IoU (percent) or more')
    parser.add_argument('--reuse', action='store_true',
                        help='keep runs whose result.json exists (continue a study)')
    parser.add_argument('--isolate', action='store_true',
                        help='train every run in a fresh process (nothing of one run, e.g. '
                        'global state or memory peaks, reaches the next; a few seconds more '
                        'per run)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='overrides for every run, key=value')
    add_debug_argument(parser)
    args = parser.parse_args()
    if args.iters is not None and args.iters < 1:
        parser.error('--iters must be at least 1')
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f'unknown method(s) {unknown}; known: {", ".join(METHODS)}')
    if not osp.isfile(args.config):
        parser.error(f'config {args.config} not found')
    return args


def main() -> int:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    check_study_config(cfg)
    from infopro_seg.datasets.prepare import prepare_cityscapes_data
    from infopro_seg.study.study import run_study
    from infopro_seg.study.training import train_in_process, train_in_spawned_process
    data = prepare_cityscapes_data(args.data_root, args.num_train, args.num_val,
                                   tuple(args.image_size), data_dir=osp.join(REPO, 'data'))
    if data.generated:
        print(f'[study] generated a synthetic Cityscapes set in {data.data_root} '
              f'({data.generated} images)', flush=True)
    result = run_study(args.config, args.methods, args.seeds, args.work_dir, iters=args.iters,
                       data_root=data.data_root, cfg_options=args.cfg_options,
                       memory=None if args.memory == 'none' else args.memory,
                       learnt_iou=args.learnt_iou, reuse=args.reuse,
                       train=train_in_spawned_process if args.isolate else train_in_process)
    print('\n' + result['table'])
    print(f'\n[study] results: {osp.join(args.work_dir, "results.json")}, runs.csv, '
          'summary.csv, table.txt, miou_vs_memory.png')
    if result['failed']:
        print(f"[study] {result['failed']} run(s) failed: see the log in their run folder",
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    run_cli(main)
