"""Exact resume: random states, the resumable sampler, the hook, and kill + --resume end to end."""
import pickle
import random
import shutil
import subprocess
import sys
from itertools import islice
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from infopro_seg.datasets import generate_synthetic_cityscapes
from infopro_seg.datasets.cityscapes_conversion import convert_cityscapes
from infopro_seg.datasets.samplers import ResumableInfiniteSampler, SampleIndex
from infopro_seg.engine.hooks import ExactResumeHook
from infopro_seg.engine.loops import ResumableIterBasedTrainLoop
from infopro_seg.fileio import load_checkpoint_safely
from run_configs import CROPPED_NARROW_DEMO
from infopro_seg.utils.random_state import (capture_random_states, restore_random_states,
                                            seeded_random_state)

REPO = Path(__file__).resolve().parents[1]


def draw_all():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_random_states_round_trip_weights_only(tmp_path):
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    states = capture_random_states()
    path = tmp_path / 'states.pth'
    torch.save(states, path)
    expected = draw_all(), float(np.random.randn())
    draw_all(), np.random.randn()
    restore_random_states(torch.load(path, weights_only=True))  # no allow-list needed
    assert (draw_all(), float(np.random.randn())) == expected


def test_seeded_section_is_independent_of_and_invisible_to_the_process():
    with seeded_random_state(7):
        first = draw_all()
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    before = capture_random_states()
    with seeded_random_state(7):
        second = draw_all()
    assert first == second
    after = capture_random_states()
    assert torch.equal(before['torch'], after['torch'])
    assert torch.equal(before['numpy']['keys'], after['numpy']['keys'])
    assert before['python']['state'].tolist() == after['python']['state'].tolist()


class RandomDataset:
    """A dataset whose 'augmentation' draws from all three RNGs; counts the samples it loads."""

    def __init__(self, size=5):
        self.size = size
        self.loaded = []
        self.pipeline = lambda results: dict(results, aug=draw_all())

    def __len__(self):
        return self.size

    def __getitem__(self, idx):
        self.loaded.append(int(idx))
        return self.pipeline(dict(sample_idx=idx))


def stream(sampler, n):
    return [(int(i), i.seed) for i in islice(iter(sampler), n)]


@pytest.mark.parametrize('world_size', [1, 2])
def test_sampler_starts_anywhere_in_the_same_stream(world_size):
    streams = []
    for rank in range(world_size):
        sampler = ResumableInfiniteSampler(RandomDataset(5), seed=11)
        sampler.rank, sampler.world_size = rank, world_size
        full = stream(sampler, 13)
        for start in (0, 3, 5, 7):  # inside the first epoch, at and past epoch boundaries
            sampler.set_start(start)
            assert stream(sampler, 13 - start) == full[start:]
        streams.append(full)
    # Every epoch is a permutation of the dataset, split between the ranks.
    merged = [index for step in zip(*streams) for index, _ in step][:10]
    assert sorted(merged[:5]) == sorted(merged[5:]) == list(range(5))
    seeds = [seed for full in streams for _, seed in full]
    assert len(set(seeds)) == len(seeds)  # every draw has its own augmentation seed


def test_sample_index_is_an_int_that_keeps_its_seed_across_processes():
    index = SampleIndex(4, 123)
    assert index == 4 and [10, 11, 12, 13, 14][index] == 14
    copy = pickle.loads(pickle.dumps(index))
    assert isinstance(copy, SampleIndex) and copy == 4 and copy.seed == 123


def test_augmentation_depends_on_the_draw_not_on_the_process():
    dataset = RandomDataset(5)
    sampler = ResumableInfiniteSampler(dataset, seed=0)
    draws = list(islice(iter(sampler), 4))
    first = [dataset[i]['aug'] for i in draws]
    draw_all()  # the process's own random states move on
    before = capture_random_states()
    assert [dataset[i]['aug'] for i in reversed(draws)] == first[::-1]
    assert torch.equal(before['torch'], torch.get_rng_state())  # and are left alone
    assert dataset[int(draws[0])]['aug'] != dataset[int(draws[0])]['aug']  # plain ints: unseeded


class RecordingModel:
    """Stands in for the model in a train loop: records the samples of each batch it trains."""

    def __init__(self):
        self.batches = []

    def train(self):
        pass

    def train_step(self, batch, optim_wrapper):
        self.batches.append([item['sample_idx'] for item in batch])
        return {}


def test_loop_resumes_the_stream_without_loading_skipped_batches():
    """ResumableIterBasedTrainLoop resumed at iteration 3 (as mmengine's Runner.resume sets it),
    with the hook placing the sampler from the checkpoint: only the batch trained is loaded."""
    dataset = RandomDataset(5)
    sampler = ResumableInfiniteSampler(dataset, seed=0)
    loader = DataLoader(dataset, batch_size=2, sampler=sampler, collate_fn=lambda batch: batch)
    expected = [item['sample_idx'] for item in next(islice(iter(loader), 3, None))]
    dataset.loaded.clear()
    hook = ExactResumeHook()
    hook.after_load_checkpoint(None, dict(exact_resume=dict(
        ranks=[dict(random_states=capture_random_states(), samples=6)], sampler_seed=0)))
    runner = SimpleNamespace(model=RecordingModel(), optim_wrapper=None, val_loop=None,
                             call_hook=lambda name, **kwargs: getattr(hook, name, None) and
                             getattr(hook, name)(runner, **kwargs))
    loop = ResumableIterBasedTrainLoop(runner, loader, max_iters=4)
    runner.train_loop = loop
    loop._iter = 3  # what Runner.resume sets from the checkpoint's meta
    loop.run()
    assert runner.model.batches == [expected]
    assert dataset.loaded == expected  # only the batch that is trained was loaded


def test_hook_restores_random_states_before_the_first_resumed_iteration():
    hook = ExactResumeHook()
    states = capture_random_states()
    expected = draw_all()
    hook.after_load_checkpoint(None, dict(exact_resume=dict(
        random_states=states, samples=2, sampler_seed=0)))
    loader = SimpleNamespace(batch_size=2, sampler=None, batch_sampler=None)
    loop = SimpleNamespace(iter=1, dataloader=loader)
    hook.before_train(SimpleNamespace(train_loop=loop))  # other sampler: replay left to mmengine
    draw_all()  # what the resume itself consumed
    hook.before_train_iter(None, batch_idx=1)
    assert draw_all() == expected


TINY_CONFIG = CROPPED_NARROW_DEMO + """
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                 dict(type='PackSegInputs')]
train_dataloader = dict(batch_size=2, num_workers=1, persistent_workers=True,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=1, persistent_workers=True,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=4, val_interval=2)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=4, by_epoch=False)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
"""


def flatten(tree, prefix=''):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from flatten(value, f'{prefix}/{key}')
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from flatten(value, f'{prefix}/{i}')
    else:
        yield prefix, tree


def train(*args):
    return subprocess.run([sys.executable, 'tools/train.py', *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.timeout(600)
def test_killed_and_resumed_run_ends_bit_identical(tmp_path):
    """Demo config, one persistent data-loader worker, validation between the checkpoint and the
    next iteration. The straight run's iter_2.pth is exactly what a run killed right after that
    checkpoint leaves behind; the resumed run continues from it in another work dir."""
    data_root = tmp_path / 'cityscapes'
    generate_synthetic_cityscapes(data_root, num_train=4, num_val=2, height=64, width=128)
    convert_cityscapes(data_root, nproc=1, progress=False)
    config = tmp_path / 'tiny.py'
    config.write_text(TINY_CONFIG.format(repo=REPO, data_root=data_root))

    straight = train(config, '--work-dir', tmp_path / 'straight')
    assert straight.returncode == 0, straight.stderr[-3000:]
    killed = tmp_path / 'killed'
    killed.mkdir()
    shutil.copy(tmp_path / 'straight' / 'iter_2.pth', killed / 'iter_2.pth')
    resumed = train(config, '--work-dir', killed, '--resume', killed / 'iter_2.pth')
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-3000:]
    assert 'the data stream resumes at sample 4' in log
    assert 'Iter(train) [3/4]' in log and 'Iter(train) [1/4]' not in log

    ends = [load_checkpoint_safely(path / 'iter_4.pth', map_location='cpu')
            for path in (tmp_path / 'straight', killed)]
    for key in ('state_dict', 'optimizer', 'param_schedulers', 'exact_resume'):
        a, b = dict(flatten(ends[0][key])), dict(flatten(ends[1][key]))
        assert a.keys() == b.keys(), key
        differ = [name for name in a if not (
            torch.equal(a[name], b[name]) if isinstance(a[name], torch.Tensor)
            else a[name] == b[name])]
        assert not differ, f'{key}: {len(differ)} of {len(a)} differ, e.g. {differ[:5]}'
    assert len(ends[0]['state_dict']) > 100
    # The hook's entry is plain data: it loads weights-only with no allow-list at all.
    entry = tmp_path / 'entry.pth'
    torch.save(ends[1]['exact_resume'], entry)
    torch.load(entry, weights_only=True)
