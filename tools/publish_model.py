"""Strip a training checkpoint down to the deployable network (no local heads, no optimizer).

    python tools/publish_model.py work_dirs/.../iter_40000.pth deeplabv3_r101_infopro.pth

The result loads with strict key matching into mmseg's own DeepLab-V3 config.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from infopro_seg.engine.checkpoint import (CheckpointError,  # noqa: E402
                                           TRAINING_ONLY_PREFIXES, publish_checkpoint)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('in_file', help='training checkpoint')
    parser.add_argument('out_file', help='output checkpoint (.pth)')
    parser.add_argument('--no-hash', action='store_true',
                        help='do not append the SHA-256 prefix to the file name')
    args = parser.parse_args()
    if not args.out_file.endswith('.pth'):
        parser.error('out_file must end with .pth')
    try:
        path = publish_checkpoint(args.in_file, args.out_file, add_hash=not args.no_hash)
    except (FileNotFoundError, CheckpointError) as error:
        print(f'error: {error}', file=sys.stderr)
        sys.exit(2)
    print(f'published {path} (dropped {", ".join(TRAINING_ONLY_PREFIXES)}, optimizer and '
          'runner state)')


if __name__ == '__main__':
    main()
