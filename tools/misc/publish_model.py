"""Strip a training checkpoint down to the deployable network (no local heads, no optimizer).

    python tools/misc/publish_model.py work_dirs/.../iter_40000.pth deeplabv3_r101_infopro.pth

The result loads with strict key matching into mmseg's own DeepLab-V3 config. The input is
loaded weights-only (stock mmengine / mmseg training checkpoints included).
"""
import argparse

from infopro_seg.engine.cli import add_debug_argument, run_cli
from infopro_seg.engine.publish import TRAINING_ONLY_PREFIXES, publish_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('in_file', help='training checkpoint')
    parser.add_argument('out_file', help='output checkpoint (.pth)')
    parser.add_argument('--no-hash', action='store_true',
                        help='do not append the SHA-256 prefix to the file name')
    add_debug_argument(parser)
    args = parser.parse_args()
    if not args.out_file.endswith('.pth'):
        parser.error('out_file must end with .pth')
    path = publish_checkpoint(args.in_file, args.out_file, add_hash=not args.no_hash)
    print(f'published {path} (dropped {", ".join(TRAINING_ONLY_PREFIXES)}, optimizer and '
          'runner state)')


if __name__ == '__main__':
    run_cli(main)
