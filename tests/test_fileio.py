"""Atomic writes (permissions, durability, interrupted and concurrent writers) and an import of
the package that changes nothing in mmengine or torch."""
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest
from mmengine.fileio import get_file_backend

import infopro_seg.fileio.atomic as atomic
from infopro_seg.fileio import (ATOMIC_BACKEND, atomic_path, atomic_write_bytes, is_temp_file,
                                remove_temp_files)


@pytest.fixture
def umask():
    """Set a umask for the test; restore the old one after."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize('mask', [0o022, 0o027, 0o077])
def test_new_files_get_the_mode_the_umask_gives(tmp_path, umask, mask):
    umask(mask)
    target = tmp_path / 'sub' / 'iter_1.pth'
    atomic_write_bytes(b'data', target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    plain = tmp_path / 'plain'
    plain.write_bytes(b'x')  # what open(path, 'w') gives, for comparison
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_replaced_files_keep_their_mode(tmp_path, umask):
    umask(0o022)
    target = tmp_path / 'last_checkpoint'
    target.write_text('old')
    target.chmod(0o640)
    atomic_write_bytes(b'new', target)
    assert target.read_bytes() == b'new'
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_the_rename_is_made_durable(tmp_path, monkeypatch):
    """The file is fsynced before the rename, its folder after it."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append('fsync folder' if stat.S_ISDIR(os.fstat(fd).st_mode) else 'fsync file')
        real_fsync(fd)

    def replace(src, dst):
        events.append('rename')
        real_replace(src, dst)

    monkeypatch.setattr(os, 'fsync', fsync)
    monkeypatch.setattr(os, 'replace', replace)
    atomic_write_bytes(b'data', tmp_path / 'a.json')
    assert events == ['fsync file', 'rename', 'fsync folder']


def test_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / 'iter_2.pth'
    target.write_bytes(b'previous checkpoint')
    backend = get_file_backend(str(target), backend_args=dict(backend=ATOMIC_BACKEND))

    def failing_fsync(fd):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'fsync', failing_fsync)
    with pytest.raises(OSError):
        backend.put(b'new data that never fully lands', str(target))
    assert target.read_bytes() == b'previous checkpoint'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['iter_2.pth']


WRITER = textwrap.dedent('''
    import sys, time
    from infopro_seg.fileio import atomic_path
    target, hold = sys.argv[1], float(sys.argv[2])
    with atomic_path(target) as tmp:
        with open(tmp, 'wb') as f:
            f.write(b'half of a new file')
            f.flush()
            print(tmp, flush=True)
            time.sleep(hold)  # still writing
            f.write(b', and the rest')
''')


def _start_writer(target, hold):
    process = subprocess.Popen([sys.executable, '-c', WRITER, str(target), str(hold)],
                               stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().strip()


def test_interrupted_writer_leaves_the_old_file_and_a_stale_temp_file(tmp_path):
    target = tmp_path / 'leftImg8bit' / 'a.png'
    target.parent.mkdir()
    target.write_bytes(b'old')
    writer, tmp = _start_writer(target, hold=60)
    writer.send_signal(signal.SIGKILL)  # killed mid-write: no clean-up code runs
    writer.wait()
    assert target.read_bytes() == b'old'
    assert os.path.exists(tmp) and is_temp_file(tmp)
    assert remove_temp_files(tmp_path) == 1  # its writer is gone: provably stale
    assert sorted(p.name for p in target.parent.iterdir()) == ['a.png']


def test_clean_up_spares_writers_that_are_still_running(tmp_path):
    folder = tmp_path / 'gtFine'
    folder.mkdir()
    target = folder / 'b.png'
    writer, live_tmp = _start_writer(target, hold=3)
    other_host = folder / f'.c.png.otherhost-{os.getpid()}-0123abcd.tmp.png'
    other_host.write_bytes(b'another machine is writing this')
    old_other_host = folder / '.d.png.otherhost-1-89abcdef.tmp.png'
    old_other_host.write_bytes(b'left a day ago')
    day_ago = time.time() - 2 * atomic.DEFAULT_MAX_AGE
    os.utime(old_other_host, (day_ago, day_ago))
    hidden = folder / '.not_ours.tmp.png'  # a user's file that merely looks similar
    hidden.write_bytes(b'keep')

    assert remove_temp_files(tmp_path) == 1  # only the one untouched for two days
    assert os.path.exists(live_tmp) and other_host.exists() and hidden.exists()
    assert not old_other_host.exists()
    assert writer.wait(timeout=60) == 0
    assert target.read_bytes() == b'half of a new file, and the rest'
    assert not os.path.exists(live_tmp)


def test_concurrent_writers_of_one_file_never_mix(tmp_path):
    target = tmp_path / 'last_checkpoint'
    first, first_tmp = _start_writer(target, hold=1)
    second, second_tmp = _start_writer(target, hold=1)
    assert first_tmp != second_tmp
    assert first.wait(timeout=60) == 0 and second.wait(timeout=60) == 0
    assert target.read_bytes() == b'half of a new file, and the rest'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['last_checkpoint']


def test_atomic_path_removes_its_temp_file_when_the_block_raises(tmp_path):
    target = tmp_path / 'x.png'
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            open(tmp, 'wb').write(b'partial')
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


SNAPSHOT = textwrap.dedent('''
    import copy, copyreg, pickle, sys
    import torch
    from mmengine.fileio.backends import registry_utils
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import CheckpointLoader

    def snapshot():
        buffer = HistoryBuffer([1.0, 2.0], [1, 1])
        copied = copy.deepcopy(buffer)
        return dict(
            backends=dict(registry_utils.backends),
            prefixes=dict(registry_utils.prefix_to_backends),
            instances=dict(__import__('mmengine.fileio.io').fileio.io.backend_instances),
            loaders=dict(CheckpointLoader._schemes),
            reducers={key: value for key, value in copyreg.dispatch_table.items()},
            buffer_pickle=pickle.dumps(buffer, protocol=2),
            buffer_state=sorted(buffer.__getstate__()),
            deepcopy=(type(copied), sorted(copied.__dict__)),
            statistics=dict(HistoryBuffer._statistics_methods),
            safe_globals=set(torch.serialization.get_safe_globals()),
            torch_load=torch.load, default_load=torch.serialization.load)

    import mmseg.datasets, mmseg.engine, mmseg.evaluation, mmseg.models  # noqa  (their own effects)
    before = snapshot()
    import infopro_seg  # noqa
    import infopro_seg.fileio, infopro_seg.engine, infopro_seg.models  # noqa
    after = snapshot()
    added = set(after['backends']) - set(before['backends'])
    after['backends'] = {k: v for k, v in after['backends'].items() if k not in added}
    changed = [key for key in before if before[key] != after[key]]
    assert not changed, changed
    assert added == {'atomic_local'}, added  # a new name in the registry; nothing replaced
    print('unchanged')
''')


def test_importing_the_package_changes_nothing_in_mmengine_or_torch():
    result = subprocess.run([sys.executable, '-c', SNAPSHOT], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and 'unchanged' in result.stdout, result.stderr[-3000:]
