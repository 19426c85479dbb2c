"""The embedded default job: data -> InfoPro training -> evaluation, on one command.

1. Data: ``--data-root`` if given; else real Cityscapes in ``data/cityscapes`` if it is there;
   else ``data/synthetic_cityscapes``. Where the folder has no images yet, a synthetic
   Cityscapes-format set is generated into it.
   Polygon labels are converted to ``*_labelTrainIds.png`` (idempotent).
2. Train the small InfoPro DeepLab-V3 of ``configs/demo/`` with tools/train.py.
3. Evaluate the final checkpoint with tools/test.py (mIoU, visualised predictions).
With ``--e2e`` the same network is also trained end to end (K=1) for comparison.
"""
import argparse
import glob
import json
import os.path as osp
import subprocess
import sys
import time

from infopro_seg.datasets.prepare import prepare_cityscapes_data
from infopro_seg.errors import ConfigError

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

DEFAULT_CONFIG = 'configs/demo/deeplabv3_r18_infopro_synthetic.py'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--data-root', help='Cityscapes-format data (default: data/cityscapes '
                        'if present, else data/synthetic_cityscapes); a folder without '
                        'leftImg8bit/ gets a generated synthetic set')
    parser.add_argument('--iters', type=int, default=None, help='training iterations '
                        '(default: the config\'s)')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--num-train', type=int, default=40, help='generated training images')
    parser.add_argument('--num-val', type=int, default=10, help='generated validation images')
    parser.add_argument('--e2e', action='store_true', help='also train end to end (K=1)')
    parser.add_argument('--min-miou', type=float, default=None,
                        help='exit with status 1 if the InfoPro mIoU is below this (CI check)')
    return parser.parse_args()


def prepare_data(args: argparse.Namespace) -> str:
    try:
        data = prepare_cityscapes_data(args.data_root, args.num_train, args.num_val,
                                       data_dir=osp.join(REPO, 'data'))
    except ConfigError as error:
        raise SystemExit(f'[demo] {error}')
    if data.generated:
        print(f'[demo] no Cityscapes data in {data.data_root}: generated a synthetic set there '
              f'({data.generated} images)')
    else:
        print(f'[demo] using the Cityscapes-format data in {data.data_root}')
    conversion = data.conversion
    print(f"[demo] labels: converted {conversion['converted']}, skipped "
          f"{conversion['skipped']}, failed {conversion['failed']}")
    return data.data_root


def run(command: list) -> None:
    print('[demo] $ ' + ' '.join(command), flush=True)
    subprocess.run(command, check=True, cwd=REPO)


def latest_metrics(work_dir: str) -> dict:
    """The metrics tools/test.py logged (mmengine writes <timestamp>/<timestamp>.json)."""
    files = sorted(glob.glob(osp.join(work_dir, '*', '*.json')))
    if not files:
        raise SystemExit(f'[demo] no metrics found in {work_dir}')
    with open(files[-1]) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    return next(line for line in reversed(lines) if 'mIoU' in line)


def train_and_test(name: str, args: argparse.Namespace, data_root: str,
                   extra_options: list) -> dict:
    work_dir = osp.join(args.work_dir, name)
    options = [f'{loader}.dataset.data_root={data_root}'
               for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    if args.iters is not None:
        options += [f'train_cfg.max_iters={args.iters}', f'train_cfg.val_interval={args.iters}',
                    f'param_scheduler.0.end={args.iters}',
                    f'default_hooks.checkpoint.interval={args.iters}']
    options += extra_options
    start = time.time()
    run([sys.executable, 'tools/train.py', args.config, '--work-dir', work_dir,
         '--cfg-options', *options])
    train_seconds = time.time() - start
    with open(osp.join(REPO, work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    show_dir = osp.join(work_dir, 'vis')
    run([sys.executable, 'tools/test.py', args.config, checkpoint, '--work-dir',
         osp.join(work_dir, 'test'), '--show-dir', show_dir, '--cfg-options', *options])
    metrics = latest_metrics(osp.join(REPO, work_dir, 'test'))
    return dict(name=name, miou=float(metrics['mIoU']), aacc=float(metrics['aAcc']),
                train_seconds=train_seconds, work_dir=work_dir, checkpoint=checkpoint,
                show_dir=osp.join(show_dir, 'vis_data', 'vis_image'))


def main() -> None:
    args = parse_args()
    data_root = prepare_data(args)
    results = [train_and_test('infopro', args, data_root, [])]
    if args.e2e:
        results.append(train_and_test('e2e', args, data_root,
                                      ['model.backbone.split_points=[]']))
    print('\n[demo] results (validation set)')
    for result in results:
        print(f"[demo]   {result['name']:8s} mIoU {result['miou']:6.2f}  aAcc "
              f"{result['aacc']:6.2f}  training {result['train_seconds']:.0f} s")
    infopro = results[0]
    print(f"[demo] logs:        {infopro['work_dir']}/<timestamp>/")
    print(f"[demo] checkpoint:  {infopro['checkpoint']}")
    print(f"[demo] predictions: {infopro['show_dir']}/")
    print(f"[demo] deployable:  python tools/misc/publish_model.py {infopro['checkpoint']} "
          f"{infopro['work_dir']}/infopro_demo.pth")
    if args.min_miou is not None and infopro['miou'] < args.min_miou:
        print(f"[demo] FAILED: InfoPro mIoU {infopro['miou']:.2f} < {args.min_miou}")
        sys.exit(1)


if __name__ == '__main__':
    main()
