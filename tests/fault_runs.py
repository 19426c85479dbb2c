"""Helpers shared by the fault tests: a tiny demo-config run, checkpoint comparison, log reading.

The config is the demo config (configs/demo) with a narrow net, 48x96 crops, batch 2, 8
iterations, a checkpoint every 2 iterations and no validation: a run takes seconds on one core.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from run_configs import CROPPED_NARROW_DEMO

REPO = Path(__file__).resolve().parents[1]
MAX_ITERS = 8
INTERVAL = 2

TINY_CONFIG = CROPPED_NARROW_DEMO + """
train_dataloader = dict(batch_size=2, num_workers={workers}, persistent_workers={persistent},
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = None
val_cfg = None
val_evaluator = None
optim_wrapper = dict(constructor='InfoProOptimWrapperConstructor')
train_cfg = dict(max_iters={max_iters}, val_interval={max_iters})
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end={max_iters},
                        by_epoch=False)]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval={interval}, max_keep_ckpts={keep}))
randomness = dict(seed=0, diff_rank_seed={diff_rank_seed})
"""


def write_config(path, data_root, workers=1, keep=2, diff_rank_seed=False,
                 max_iters=MAX_ITERS, interval=INTERVAL):
    """Write the tiny config to ``path``; returns ``path``."""
    path = Path(path)
    path.write_text(TINY_CONFIG.format(
        repo=REPO, data_root=data_root, workers=workers, persistent=workers > 0, keep=keep,
        diff_rank_seed=diff_rank_seed, max_iters=max_iters, interval=interval))
    return path


def make_data(root):
    """The synthetic Cityscapes-layout set, 4 training images of 64x128."""
    from infopro_seg.datasets import generate_synthetic_cityscapes
    from infopro_seg.datasets.cityscapes_conversion import convert_cityscapes
    generate_synthetic_cityscapes(root, num_train=4, num_val=1, height=64, width=128)
    convert_cityscapes(root, nproc=1, progress=False)
    return root


def env():
    return dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1', PYTHONWARNINGS='ignore')


def train(*args, timeout=300):
    """tools/train.py in a subprocess; returns the CompletedProcess (output in stdout)."""
    return subprocess.run([sys.executable, 'tools/train.py', *map(str, args)], cwd=REPO,
                          env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)


def wait_for_line(proc, text, timeout=240):
    """Read ``proc``'s output until a line contains ``text``; returns everything read."""
    seen = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            return ''.join(seen)
        if time.monotonic() > deadline:
            break
    raise AssertionError(f'{text!r} never appeared:\n' + ''.join(seen)[-4000:])


def flatten(tree, prefix=''):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from flatten(value, f'{prefix}/{key}')
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from flatten(value, f'{prefix}/{i}')
    else:
        yield prefix, tree


def assert_bit_identical(first, second, keys=('state_dict', 'optimizer', 'param_schedulers',
                                               'exact_resume')):
    """Every parameter, buffer, optimizer and scheduler entry (and random state) equal."""
    from infopro_seg.fileio import load_checkpoint_safely
    ends = [load_checkpoint_safely(path, map_location='cpu') for path in (first, second)]
    for key in keys:
        a, b = dict(flatten(ends[0][key])), dict(flatten(ends[1][key]))
        assert a.keys() == b.keys(), key
        differ = [name for name in a if not (
            torch.equal(a[name], b[name]) if isinstance(a[name], torch.Tensor)
            else a[name] == b[name])]
        assert not differ, f'{key}: {len(differ)} of {len(a)} differ, e.g. {differ[:5]}'
    assert len(ends[0]['state_dict']) > 100
    assert ends[0]['meta']['iter'] == ends[1]['meta']['iter']
    return ends
