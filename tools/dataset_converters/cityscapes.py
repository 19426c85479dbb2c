"""Convert Cityscapes polygon annotations into the ``*_gtFine_labelTrainIds.png`` mmseg reads.

Runs the official ``cityscapesscripts`` conversion in parallel, atomically and resumably: up to
date labels are skipped, leftovers of an interrupted run are cleaned up. Exit codes: 0 success,
1 some files failed (each is named), 2 wrong folder layout or arguments (nothing is written)::

    python tools/dataset_converters/cityscapes.py data/cityscapes --nproc 8
"""
import argparse
import sys

from infopro_seg.datasets.cityscapes_conversion import (CityscapesLayoutError, convert_cityscapes,
                                                        default_nproc)


def parse_args() -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(
        description='Write *_gtFine_labelTrainIds.png for every *_gtFine_polygons.json under '
        'DATA_ROOT/gtFine (the labels mmseg\'s CityscapesDataset reads).')
    parser.add_argument('data_root', metavar='DATA_ROOT',
                        help='folder containing leftImg8bit/ and gtFine/')
    parser.add_argument('--nproc', type=int, default=default_nproc(),
                        help='worker processes (default: min(4, CPU count))')
    parser.add_argument('--force', action='store_true',
                        help='convert again even when a label is up to date')
    args = parser.parse_args()
    if args.nproc < 1:
        parser.error(f'--nproc must be at least 1, got {args.nproc}')
    return args


def main() -> int:
    """Runs the conversion and returns the exit code."""
    args = parse_args()
    try:
        summary = convert_cityscapes(args.data_root, nproc=args.nproc, force=args.force)
    except CityscapesLayoutError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    if summary['removed_temp']:
        print(f"removed {summary['removed_temp']} temporary file(s) of an interrupted run")
    for path, message in summary['failures']:
        print(f'failed: {path}: {message}', file=sys.stderr)
    print(f"converted {summary['converted']}, skipped {summary['skipped']}, "
          f"failed {summary['failed']}")
    return 1 if summary['failed'] else 0


if __name__ == '__main__':
    sys.exit(main())
