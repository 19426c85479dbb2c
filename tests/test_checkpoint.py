"""Checkpoints: weights-only loading of stock mmengine files, refusal of code, errors by cause,
publishing for mmseg, load_from."""
import copyreg
import importlib
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from infopro_seg.engine import InfoProOptimWrapper
from mmengine.runner.checkpoint import (CheckpointLoader, _load_checkpoint, load_checkpoint,
                                        save_checkpoint)

import infopro_seg.fileio.checkpoint as checkpoint_module
from conftest import build_model, make_batch, tiny_deeplab_cfg
from infopro_seg.engine import SafeCheckpointLoadingHook, publish_checkpoint
from infopro_seg.fileio import CheckpointError, load_checkpoint_safely, safe_checkpoint_loading


def runner_like_checkpoint(model):
    """What mmengine's Runner.save_checkpoint writes: weights, optimizer, message hub, meta."""
    hub = MessageHub.get_instance('checkpoint-test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_info('iter', 7)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train_step(make_batch(), InfoProOptimWrapper(optimizer))
    return dict(meta=dict(iter=7, seed=1, mmengine_version='0.10.7',
                          dataset_meta=dict(classes=('a', 'b'))),
                state_dict=model.state_dict(), optimizer=optimizer.state_dict(),
                message_hub=hub.state_dict(),
                param_schedulers=[dict(base_lrs=[0.01], last_epoch=7)])


STOCK_WRITER = textwrap.dedent('''
    import sys
    import numpy as np
    import torch
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import save_checkpoint
    hub = MessageHub.get_instance('stock')
    for value in (0.75, 0.5):
        hub.update_scalar('train/loss', value)
    hub.update_info('iter', 2)
    save_checkpoint(dict(meta=dict(iter=2, epoch=0, rng=np.random.get_state()),
                         state_dict=dict(weight=torch.arange(4.)),
                         message_hub=hub.state_dict()), sys.argv[1])
    assert not any(name.startswith('infopro_seg') for name in sys.modules)
''')


def test_stock_mmengine_checkpoint_loads_weights_only_and_leaves_no_trace(tmp_path):
    path = tmp_path / 'iter_2.pth'
    subprocess.run([sys.executable, '-c', STOCK_WRITER, str(path)], check=True)
    # torch's own default (weights-only) refuses it ...
    with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
        torch.load(path)
    HistoryBuffer()  # any HistoryBuffer registers the four defaults in the shared table
    methods = dict(HistoryBuffer._statistics_methods)
    allowed = set(torch.serialization.get_safe_globals())
    loaded = load_checkpoint_safely(path)  # ... ours loads it, weights-only
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert type(buffer) is HistoryBuffer  # a real one, as MessageHub.load_state_dict expects
    assert buffer.current() == 0.5 and buffer.mean() == 0.625
    assert buffer.statistics('max') == 0.75  # statistics still reachable by name
    assert loaded['meta']['rng'][1].dtype == np.uint32
    assert torch.equal(loaded['state_dict']['weight'], torch.arange(4.))
    assert HistoryBuffer._statistics_methods == methods  # no shared table was written
    assert set(torch.serialization.get_safe_globals()) == allowed  # allowance ends with the load


def test_checkpoints_of_earlier_infopro_seg_versions_still_load(tmp_path, monkeypatch):
    """They pickled each HistoryBuffer as a constructor call on its arrays."""
    monkeypatch.setitem(copyreg.dispatch_table, HistoryBuffer, lambda buffer: (
        HistoryBuffer, (buffer._log_history, buffer._count_history, buffer.max_length)))
    path = tmp_path / 'old.pth'
    torch.save(dict(log_scalars=dict(loss=HistoryBuffer([3.0, 1.0], [1, 1], 5))), path)
    monkeypatch.undo()
    buffer = load_checkpoint_safely(path)['log_scalars']['loss']
    assert type(buffer) is HistoryBuffer and buffer.mean() == 2.0 and buffer.max_length == 5


def test_mmengine_loads_through_us_only_inside_the_switch(tmp_path):
    model = build_model(tiny_deeplab_cfg())
    path = str(tmp_path / 'iter_7.pth')
    save_checkpoint(runner_like_checkpoint(model), path)
    stock_loader = CheckpointLoader._schemes['']
    # mmengine's own loader: refused by torch
    with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
        _load_checkpoint(path, map_location='cpu')
    with safe_checkpoint_loading():
        loaded = _load_checkpoint(path, map_location='cpu')
    assert CheckpointLoader._schemes[''] is stock_loader
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == 0.5
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded['state_dict'].items())

    hook = SafeCheckpointLoadingHook()  # the same switch for configs run by other tools
    hook.before_run(None)
    assert CheckpointLoader._schemes[''] is not stock_loader
    hook.after_run(None)
    assert CheckpointLoader._schemes[''] is stock_loader
    with pytest.raises(ZeroDivisionError), safe_checkpoint_loading():
        1 / 0
    assert CheckpointLoader._schemes[''] is stock_loader


class _Call:
    """Pickles as ``func(*args)``: how a crafted file asks the unpickler to call something."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args

    def __call__(self):  # pickle wants the callable of a reduction to be callable
        raise NotImplementedError


class _SetStatePayload:
    """An object whose unpickling runs code in ``__setstate__`` (here: creates a marker)."""

    def __init__(self, marker):
        self.marker = marker

    def __setstate__(self, state):
        open(state['marker'], 'w').close()


def _payloads(marker):
    """kind: (object, names the refusal must give, whether full unpickling creates marker)."""
    touch = f'touch {marker}'
    return {
        'eval': (_Call(eval, f'open({str(marker)!r}, "w").close()'), ['builtins.eval'], True),
        'getattr_os_system': (_Call(_Call(getattr, _Call(importlib.import_module, 'os'),
                                          'system'), touch), ['importlib.import_module'], True),
        'os_system': (_Call(os.system, touch), ['posix.system'], True),
        'setstate': (_SetStatePayload(str(marker)), ['test_checkpoint._SetStatePayload'], True),
        # getattr is admitted only as a lookup of a HistoryBuffer statistic: not this one
        'getattr_allowed_global': (_Call(_Call(getattr, np.ndarray, 'tofile'), str(marker)),
                                   ["getattr(ndarray, 'tofile')"], False),
    }


@pytest.mark.parametrize('payload', ['eval', 'getattr_os_system', 'os_system', 'setstate',
                                     'getattr_allowed_global'])
def test_checkpoint_asking_for_code_is_refused_and_nothing_runs(tmp_path, payload):
    marker = tmp_path / 'pwned'
    obj, named, runs_code = _payloads(marker)[payload]
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict={'w': torch.ones(2)}, meta=obj), path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint_safely(path)
    assert error.value.reason == 'foreign_code'
    assert all(name in str(error.value) for name in named), str(error.value)
    assert 'nothing from it was run' in str(error.value)
    assert not marker.exists()
    if runs_code:  # the payload is real: full unpickling runs it
        torch.load(path, weights_only=False)
        assert marker.exists()


@pytest.mark.parametrize('forged', ['register_statistics', 'swapped'])
def test_history_buffer_state_cannot_change_the_shared_statistics_table(
        tmp_path, monkeypatch, forged):
    """mmengine's HistoryBuffer.__setstate__ would copy a file's methods into a class table."""
    buffer = HistoryBuffer([1.0, 2.0], [1, 1])
    table = HistoryBuffer._statistics_methods
    with monkeypatch.context() as patch:  # the writer's table, as a forger would set it
        if forged == 'register_statistics':
            patch.setitem(table, 'evil', HistoryBuffer.register_statistics)
        else:
            patch.setitem(table, 'mean', HistoryBuffer.max)
        path = tmp_path / 'forged.pth'
        torch.save(dict(message_hub=dict(log_scalars=dict(loss=buffer))), path)
    before = dict(table)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint_safely(path)
    assert error.value.reason == 'foreign_code'
    assert HistoryBuffer._statistics_methods == before
    assert HistoryBuffer([1.0, 3.0], [1, 1]).statistics('mean') == 2.0


def _zip_of(members):
    def write(path):
        with zipfile.ZipFile(path, 'w') as archive:
            for name, data in members.items():
                archive.writestr(name, data)
    return write


def _torchscript(path):
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))


def _good(path):
    torch.save(dict(state_dict={'w': torch.ones(1000)}), path)


def _truncated(path):
    _good(path)
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def _truncated_legacy(path):
    torch.save(dict(w=torch.ones(1000)), path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def _damaged_pickle(path):
    _good(path)
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    name = next(name for name in members if name.endswith('/data.pkl'))
    members[name] = members[name][:-8] + b'\xff' * 8  # valid zip, CRC updated, bad pickle
    _zip_of(members)(path)


BAD_FILES = {
    # kind: (how to make it, reason, words in the message)
    'missing': (None, 'not_found', ['not found']),
    'folder': (lambda p: p.mkdir(), 'not_a_checkpoint', ['is a folder']),
    'empty': (lambda p: p.write_bytes(b''), 'not_a_checkpoint', ['is empty']),
    'html': (lambda p: p.write_bytes(b'<!DOCTYPE html><title>404 Not Found</title>'),
             'not_a_checkpoint', ['not a PyTorch checkpoint', 'failed download']),
    'random': (lambda p: p.write_bytes(bytes(range(7, 250))), 'not_a_checkpoint',
               ['not a PyTorch checkpoint']),
    'pickle': (lambda p: p.write_bytes(__import__('pickle').dumps({'a': 1})),
               'not_a_checkpoint', ['Python pickle']),
    'npz': (lambda p: np.savez(open(p, 'wb'), a=np.ones(3)), 'not_a_checkpoint',
            ['zip archive but not a PyTorch checkpoint']),
    'torchscript': (_torchscript, 'not_a_checkpoint', ['TorchScript', 'torch.jit.load']),
    'truncated_zip': (_truncated, 'truncated', ['is truncated']),
    'truncated_header': (lambda p: p.write_bytes(b'PK\x03\x04 truncated'), 'truncated',
                         ['is truncated']),
    'truncated_legacy': (_truncated_legacy, 'corrupt', ['is truncated or corrupt']),
    'damaged_pickle': (_damaged_pickle, 'corrupt', ['is corrupt']),
}


@pytest.mark.parametrize('kind', sorted(BAD_FILES))
def test_bad_file_names_its_true_cause(tmp_path, kind):
    make, reason, words = BAD_FILES[kind]
    path = tmp_path / 'iter_1.pth'
    if make is not None:
        make(path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint_safely(path)
    assert error.value.reason == reason, str(error.value)
    assert str(error.value).startswith(f'checkpoint {path} ')
    assert all(word in str(error.value) for word in words), str(error.value)


def test_unreadable_file_is_a_permission_error(tmp_path, monkeypatch):
    path = tmp_path / 'iter_1.pth'
    _good(path)
    path.chmod(0)
    if os.geteuid() == 0:  # root reads it anyway: let open() fail as it does for a user

        def denied(*args, **kwargs):
            raise PermissionError(13, 'Permission denied', str(path))

        monkeypatch.setattr(checkpoint_module, 'open', denied, raising=False)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint_safely(path)
    assert error.value.reason == 'permission' and 'permission denied' in str(error.value)


def test_tensors_of_a_missing_device_suggest_map_location(tmp_path, monkeypatch):
    path = tmp_path / 'gpu.pth'
    with monkeypatch.context() as patch:  # a file as torch writes it for tensors on GPU 99
        patch.setattr(torch.serialization, 'location_tag', lambda storage: 'cuda:99')
        torch.save(dict(state_dict={'w': torch.ones(3)}), path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint_safely(path)  # torch's real failure, classified by the devices
    assert error.value.reason == 'device'
    assert 'cuda:99' in str(error.value) and "map_location='cpu'" in str(error.value)
    loaded = load_checkpoint_safely(path, map_location='cpu')  # the fix works
    assert torch.equal(loaded['state_dict']['w'], torch.ones(3))


def test_out_of_memory_is_reported_as_such(tmp_path, monkeypatch):
    path = tmp_path / 'iter_1.pth'
    _good(path)

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 MiB')

    monkeypatch.setattr(torch, 'load', out_of_memory)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint_safely(path, map_location='cuda:0')
    assert error.value.reason == 'out_of_memory'
    assert 'does not fit in the memory' in str(error.value) and 'free memory' in \
        str(error.value)
    assert 'corrupt' not in str(error.value)


def test_published_checkpoint_loads_strictly_into_mmseg_and_predicts_the_same(tmp_path):
    infopro = build_model(tiny_deeplab_cfg(split_points=['layer2.1']))
    path = str(tmp_path / 'iter_7.pth')
    save_checkpoint(runner_like_checkpoint(infopro), path)
    published = publish_checkpoint(path, str(tmp_path / 'model.pth'))
    assert os.path.basename(published).startswith('model-') and published.endswith('.pth')
    assert os.listdir(tmp_path) and not (tmp_path / 'model.pth').exists()
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
