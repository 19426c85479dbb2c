"""Write a synthetic street-scene data set in the exact Cityscapes layout.

Writes ``leftImg8bit/{train,val}/<city>/*_leftImg8bit.png`` and
``gtFine/{train,val}/<city>/*_gtFine_polygons.json``; convert the polygons to the label PNGs mmseg
reads with ``tools/dataset_converters/cityscapes.py``, exactly as for the real data set::

    python tools/generate_synthetic_cityscapes.py data/synthetic_cityscapes
    python tools/dataset_converters/cityscapes.py data/synthetic_cityscapes
"""
import argparse
import sys
import time

from infopro_seg.datasets import generate_synthetic_cityscapes


def parse_args() -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(
        description='Generate a synthetic data set in the Cityscapes layout (images and '
        'polygon JSONs).')
    parser.add_argument('out_dir', metavar='OUT_DIR', help='data root to write into')
    parser.add_argument('--num-train', type=int, default=40, help='training samples (40)')
    parser.add_argument('--num-val', type=int, default=10, help='validation samples (10)')
    parser.add_argument('--height', type=int, default=256, help='image height in pixels (256)')
    parser.add_argument('--width', type=int, default=512, help='image width in pixels (512)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (0)')
    parser.add_argument('--overwrite', action='store_true',
                        help='regenerate existing samples (and replace a set of other settings)')
    return parser.parse_args()


def main() -> int:
    """Runs the generator; returns the exit code (2 for invalid arguments or a used folder)."""
    args = parse_args()
    start = time.perf_counter()
    try:
        summary = generate_synthetic_cityscapes(
            args.out_dir, num_train=args.num_train, num_val=args.num_val, height=args.height,
            width=args.width, seed=args.seed, overwrite=args.overwrite)
    except ValueError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    print(f"wrote {summary['written']}, skipped {summary['skipped']} samples "
          f"(train {summary['num_train']}, val {summary['num_val']}, "
          f"{summary['height']}x{summary['width']}, seed {summary['seed']}) "
          f"into {summary['out_dir']} in {seconds:.1f} s")
    return 0


if __name__ == '__main__':
    sys.exit(main())
