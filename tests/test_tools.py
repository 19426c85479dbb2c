"""tools/train.py, tools/test.py and tools/misc/publish_model.py as a user runs them
(subprocesses), with this project's checkpoints and with stock mmseg ones."""
import glob
import pickle
import subprocess
import sys
from pathlib import Path

import mmseg
import pytest
import torch
from mmengine.config import Config

from infopro_seg.datasets import generate_synthetic_cityscapes
from infopro_seg.datasets.cityscapes_conversion import convert_cityscapes
from infopro_seg.fileio import load_checkpoint_safely
from run_configs import NARROW_DEMO

REPO = Path(__file__).resolve().parents[1]

TINY_CONFIG = NARROW_DEMO + """
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=4,
                        by_epoch=False)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
"""


def run_tool(*args, cwd=REPO):
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope='module')
def tiny_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('tools')
    data_root = root / 'cityscapes'
    generate_synthetic_cityscapes(data_root, num_train=4, num_val=2, height=64, width=128)
    convert_cityscapes(data_root, nproc=1, progress=False)
    config = root / 'tiny_infopro.py'
    config.write_text(TINY_CONFIG.format(repo=REPO, data_root=data_root))
    return root, config


@pytest.mark.timeout(600)
def test_train_resume_test_round_trip(tiny_setup):
    root, config = tiny_setup
    work_dir = root / 'work'
    first = run_tool('tools/train.py', config, '--work-dir', work_dir)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (work_dir / 'iter_2.pth').exists()
    # tools/train.py chose the atomic backend for the CheckpointHook (the config names none)
    assert "backend='atomic_local'" in (work_dir / 'tiny_infopro.py').read_text()
    assert 'm1.loss_recon' in first.stdout + first.stderr  # every module's losses are logged

    resumed = run_tool('tools/train.py', config, '--work-dir', work_dir, '--resume',
                       '--cfg-options', 'train_cfg.max_iters=4')
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-3000:]
    assert 'resumed epoch: 0, iter: 2' in log
    assert 'Iter(train) [3/4]' in log and 'Iter(train) [1/4]' not in log
    state = load_checkpoint_safely(work_dir / 'iter_4.pth', map_location='cpu')
    assert state['meta']['iter'] == 4 and 'optimizer' in state

    show_dir = root / 'vis'
    tested = run_tool('tools/test.py', config, work_dir / 'iter_4.pth', '--work-dir',
                      root / 'test', '--show-dir', show_dir)
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert 'mIoU' in tested.stdout + tested.stderr
    assert len(glob.glob(str(show_dir / '**' / '*.png'), recursive=True)) == 2

    out_dir = root / 'cityscapes_results'
    official = run_tool('tools/test.py', config, work_dir / 'iter_4.pth', '--work-dir',
                        root / 'test_official', '--out', out_dir, '--cfg-options',
                        'test_evaluator.type=CityscapesMetric',
                        f'test_evaluator.output_dir={out_dir}')
    assert official.returncode == 0, official.stderr[-3000:]
    assert 'averageScoreCategories' in official.stdout + official.stderr
    assert len(list(out_dir.glob('*_leftImg8bit.png'))) == 2  # benchmark-server export

    published = run_tool('tools/misc/publish_model.py', work_dir / 'iter_4.pth',
                         root / 'model.pth')
    assert published.returncode == 0, published.stderr
    path = glob.glob(str(root / 'model-*.pth'))[0]
    state = torch.load(path, weights_only=True)['state_dict']
    assert state and not any(key.startswith('local_heads.') for key in state)


def test_missing_data_root_is_a_clear_error(tiny_setup, tmp_path):
    _, config = tiny_setup
    missing = tmp_path / 'nowhere'
    result = run_tool('tools/train.py', config, '--work-dir', tmp_path / 'w', '--cfg-options',
                      f'train_dataloader.dataset.data_root={missing}')
    assert result.returncode == 2
    assert f'{missing}/leftImg8bit/train not found' in result.stderr
    assert 'tools/dataset_converters/cityscapes.py' in result.stderr
    assert 'Traceback' not in result.stderr


def test_missing_config_and_corrupt_checkpoint_are_clear_errors(tiny_setup, tmp_path):
    _, config = tiny_setup
    result = run_tool('tools/train.py', tmp_path / 'nope.py')
    assert result.returncode == 2 and 'config file' in result.stderr and 'not found' in \
        result.stderr
    broken = tmp_path / 'iter_9.pth'
    broken.write_bytes(b'PK\x03\x04 truncated')
    result = run_tool('tools/test.py', config, broken, '--work-dir', tmp_path / 't')
    assert result.returncode == 2, result.stderr[-2000:]
    assert f'checkpoint {broken} is truncated' in result.stderr
    assert 'Traceback' not in result.stderr


#: mmseg's own tools/train.py, run in a process that never imports infopro_seg.
STOCK_TRAIN = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
finally:
    print('infopro_seg imported:', any(m.startswith('infopro_seg') for m in sys.modules))
"""


def plain_mmseg_config(infopro_config: Path, path: Path) -> Path:
    """The same network as a plain mmseg config: EncoderDecoder, ResNetV1c, no infopro_seg."""
    cfg = Config.fromfile(str(infopro_config), import_custom_modules=False)
    for key in ('custom_imports', 'model_wrapper_cfg'):
        cfg.pop(key, None)
    model = cfg.model
    model.type = 'EncoderDecoder'
    model.pop('local_heads'), model.pop('local_loss_weights')
    model.backbone.type = model.backbone.pop('variant')
    model.backbone.pop('split_points')
    # This project's runner, hooks, sampler and checkpoint backend are registered by infopro_seg.
    cfg.pop('runner_type', None)
    cfg.optim_wrapper.pop('constructor', None)
    cfg.pop('custom_hooks', None)
    cfg.default_hooks.pop('exact_resume', None)
    cfg.default_hooks.pop('preemption', None)
    cfg.default_hooks.checkpoint.type = 'CheckpointHook'
    cfg.default_hooks.checkpoint.pop('on_save_error', None)
    cfg.train_cfg.type = 'IterBasedTrainLoop'
    cfg.default_hooks.checkpoint.pop('backend_args', None)
    cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
    cfg.dump(str(path))
    return path


@pytest.mark.timeout(600)
def test_stock_mmseg_checkpoint_through_every_tool(tiny_setup):
    """An E2E checkpoint written by mmseg's own tools/train.py (message hub included) is
    evaluated, resumed and published by ours, weights-only."""
    root, config = tiny_setup
    plain = plain_mmseg_config(config, root / 'plain_deeplabv3.py')
    stock_dir = root / 'stock'
    mmseg_train = Path(mmseg.__file__).parent / '.mim' / 'tools' / 'train.py'
    stock = subprocess.run([sys.executable, '-c', STOCK_TRAIN, str(mmseg_train), str(plain),
                            '--work-dir', str(stock_dir)], cwd=root, capture_output=True,
                           text=True, timeout=600)
    assert stock.returncode == 0, stock.stderr[-3000:]
    assert 'infopro_seg imported: False' in stock.stdout
    checkpoint = stock_dir / 'iter_2.pth'
    # torch's weights-only default refuses the message hub
    with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
        torch.load(checkpoint)

    tested = run_tool('tools/test.py', config, checkpoint, '--work-dir', root / 'stock_test')
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert 'mIoU' in tested.stdout + tested.stderr

    resumed = run_tool('tools/train.py', plain, '--work-dir', root / 'stock_resumed',
                       '--resume', checkpoint, '--cfg-options', 'train_cfg.max_iters=3',
                       'default_hooks.checkpoint.interval=3')
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-3000:]
    assert 'resumed epoch: 0, iter: 2' in log and 'Iter(train) [3/3]' in log
    assert load_checkpoint_safely(root / 'stock_resumed' / 'iter_3.pth')['meta']['iter'] == 3

    published = run_tool('tools/misc/publish_model.py', checkpoint, root / 'stock.pth',
                         '--no-hash')
    assert published.returncode == 0, published.stderr
    assert set(torch.load(root / 'stock.pth', weights_only=True)) == {'meta', 'state_dict'}


class _Eval:
    """Unpickles as ``eval(code)``."""

    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return eval, (self.code, )


def test_checkpoint_with_code_is_refused_by_a_tool(tiny_setup, tmp_path):
    """End to end through one tool; the refusal itself is tested in test_checkpoint.py."""
    _, config = tiny_setup
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'iter_1.pth'
    torch.save(dict(state_dict={}, meta=_Eval(f'open({str(marker)!r}, "w")')), evil)
    result = run_tool('tools/test.py', config, evil, '--work-dir', tmp_path / 't')
    assert result.returncode == 2, result.stderr[-2000:]
    assert f'checkpoint {evil} asks to run or build builtins.eval' in result.stderr
    assert 'Traceback' not in result.stderr
    assert not marker.exists()
