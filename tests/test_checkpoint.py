"""Checkpoints: safe (weights-only) loading, atomic writes, publishing for mmseg, load_from."""
import os
import pickle

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.logging import MessageHub
from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint, save_checkpoint

from conftest import build_model, make_batch, tiny_deeplab_cfg
from infopro_seg.engine import CheckpointError, publish_checkpoint


class _Exploit:
    """An object whose unpickling would run code (here: create a marker file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def runner_like_checkpoint(model):
    """What mmengine's Runner.save_checkpoint writes: weights, optimizer, message hub, meta."""
    hub = MessageHub.get_instance('checkpoint-test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_info('iter', 7)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train_step(make_batch(), __import__('mmengine').optim.OptimWrapper(optimizer))
    return dict(meta=dict(iter=7, seed=1, mmengine_version='0.10.7',
                          dataset_meta=dict(classes=('a', 'b'))),
                state_dict=model.state_dict(), optimizer=optimizer.state_dict(),
                message_hub=hub.state_dict(),
                param_schedulers=[dict(base_lrs=[0.01], last_epoch=7)])


def test_mmengine_checkpoint_round_trips_weights_only(tmp_path):
    model = build_model(tiny_deeplab_cfg())
    path = str(tmp_path / 'iter_7.pth')
    save_checkpoint(runner_like_checkpoint(model), path)
    with pytest.raises(pickle.UnpicklingError):  # torch's own default refuses it ...
        torch.load(path)
    loaded = _load_checkpoint(path, map_location='cpu')  # ... our loader does, weights-only
    assert loaded['meta']['iter'] == 7
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == 0.5
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded['state_dict'].items())


def test_checkpoint_with_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict={}, meta=_Exploit(str(marker))), path)
    with pytest.raises(CheckpointError, match='not weights'):
        _load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()


@pytest.mark.parametrize('damage', ['truncate', 'garbage'])
def test_corrupt_checkpoint_names_the_file(tmp_path, damage):
    path = tmp_path / 'iter_1.pth'
    torch.save(dict(state_dict={'w': torch.ones(1000)}), path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2] if damage == 'truncate' else b'not a checkpoint')
    with pytest.raises(CheckpointError, match=f'{path} is corrupt.* truncated'):
        _load_checkpoint(str(path), map_location='cpu')


def test_local_writes_are_atomic(tmp_path, monkeypatch):
    target = tmp_path / 'iter_2.pth'
    target.write_bytes(b'previous checkpoint')
    backend = get_file_backend(str(target))

    def failing_fsync(fd):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'fsync', failing_fsync)
    with pytest.raises(OSError):
        backend.put(b'new data that never fully lands', str(target))
    assert target.read_bytes() == b'previous checkpoint'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['iter_2.pth']  # no temp file left


def test_published_checkpoint_loads_strictly_into_mmseg_and_predicts_the_same(tmp_path):
    infopro = build_model(tiny_deeplab_cfg(split_points=['layer2.1']))
    path = str(tmp_path / 'iter_7.pth')
    save_checkpoint(runner_like_checkpoint(infopro), path)
    published = publish_checkpoint(path, str(tmp_path / 'model.pth'))
    assert os.path.basename(published).startswith('model-') and published.endswith('.pth')
    content = torch.load(published, weights_only=True)  # plain tensors: torch's default loads it
    assert set(content) == {'meta', 'state_dict'}
    assert not any(k.startswith('local_heads.') for k in content['state_dict'])

    plain = build_model(tiny_deeplab_cfg(type='EncoderDecoder'), seed=5)
    load_checkpoint(plain, published, strict=True)
    infopro.eval(), plain.eval()
    batch = make_batch(seed=3)
    ours, theirs = infopro.val_step(batch), plain.val_step(batch)
    for a, b in zip(ours, theirs):
        assert torch.equal(a.seg_logits.data, b.seg_logits.data)


def test_mmseg_e2e_checkpoint_initialises_an_infopro_model(tmp_path):
    plain = build_model(tiny_deeplab_cfg(type='EncoderDecoder'), seed=5)
    path = str(tmp_path / 'e2e.pth')
    torch.save(dict(meta=dict(), state_dict=plain.state_dict()), path)
    infopro = build_model(tiny_deeplab_cfg(split_points=['layer3.0']))
    heads_before = {k: v.clone() for k, v in infopro.state_dict().items()
                    if k.startswith('local_heads.')}
    load_checkpoint(infopro, path, strict=False)
    state = infopro.state_dict()
    assert all(torch.equal(state[k], v) for k, v in plain.state_dict().items())
    assert all(torch.equal(state[k], v) for k, v in heads_before.items())  # kept their init
