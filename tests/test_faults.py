"""Faults survived in one process: preemption, full disk, unwritable work dir, torn files.

The distributed cases (2 gloo ranks, killed ranks under torchrun) are in
test_faults_distributed.py. docs/faults.md maps every fault to the test that backs it.
"""
import errno
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader

from fault_runs import (MAX_ITERS, REPO, assert_bit_identical, env, make_data, train,
                        wait_for_line, write_config)
from infopro_seg.engine.cli import use_atomic_checkpoint_writes
from infopro_seg.engine.hooks import FaultTolerantCheckpointHook, PreemptionCheckpointHook
from infopro_seg.engine.resume import apply_resume
from infopro_seg.errors import ConfigError, TrainingPreempted, TrainingStopped
from infopro_seg.fileio import (find_latest_checkpoint, is_complete_checkpoint,
                                load_checkpoint_safely, safe_checkpoint_loading)
from infopro_seg.fileio import atomic_path, runner_io


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp('faults') / 'cityscapes')


@pytest.fixture(scope='module')
def straight(tmp_path_factory, data_root):
    """An uninterrupted 8-iteration run (one data-loader worker) by tools/train.py."""
    root = tmp_path_factory.mktemp('straight')
    config = write_config(root / 'tiny.py', data_root)
    done = train(config, '--work-dir', root / 'work')
    assert done.returncode == 0, done.stdout[-3000:]
    return root / 'work' / f'iter_{MAX_ITERS}.pth'


# ------------------------------------------------------------------------------------------
# Preemption: SIGTERM (twice) at a random iteration, then --resume
# ------------------------------------------------------------------------------------------
@pytest.mark.timeout(600)
def test_sigterm_saves_the_iteration_and_resume_ends_bit_identical(tmp_path, data_root,
                                                                   straight):
    config = write_config(tmp_path / 'tiny.py', data_root)
    work = tmp_path / 'work'
    at = random.Random().randint(1, 5)
    proc = subprocess.Popen([sys.executable, 'tools/train.py', str(config), '--work-dir',
                             str(work)], cwd=REPO, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        log = wait_for_line(proc, f'Iter(train) [{at}/{MAX_ITERS}]')
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)  # a second one (e.g. torchrun forwarding it)
        rest, _ = proc.communicate(timeout=240)
    finally:
        proc.kill()
    log += rest
    assert proc.returncode == TrainingPreempted.exit_code == 4, log[-3000:]
    last = log.strip().splitlines()[-1]
    assert last.startswith('error: preempted (SIGTERM'), last
    saved = int(last.split('iteration ')[1].split(' ')[0])
    assert at <= saved < MAX_ITERS, (at, last)
    assert (work / f'iter_{saved}.pth').is_file()
    assert find_latest_checkpoint(work) == str(work / f'iter_{saved}.pth')

    resumed = train(config, '--work-dir', work, '--resume')
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert f'Iter(train) [{saved + 1}/{MAX_ITERS}]' in resumed.stdout
    assert f'Iter(train) [{saved}/{MAX_ITERS}]' not in resumed.stdout
    assert_bit_identical(straight, work / f'iter_{MAX_ITERS}.pth')


def test_preemption_hook_refuses_signals_it_cannot_catch():
    with pytest.raises(ConfigError, match="'SIGKILL' is not a signal this process can catch"):
        PreemptionCheckpointHook(signals=('SIGTERM', 'SIGKILL'))
    with pytest.raises(ConfigError, match="'SIGNOPE'"):
        PreemptionCheckpointHook(signals=('SIGNOPE', ))


def test_preemption_hook_needs_iteration_checkpoints_of_the_fault_tolerant_hook():
    hook = PreemptionCheckpointHook()
    with pytest.raises(ConfigError, match="default_hooks.checkpoint.type='FaultTolerant"):
        hook.before_train(SimpleNamespace(hooks=[]))
    by_epoch = FaultTolerantCheckpointHook(interval=1, by_epoch=True)
    with pytest.raises(ConfigError, match='by_epoch=False'):
        hook.before_train(SimpleNamespace(hooks=[by_epoch]))


def test_checkpoint_hook_refuses_an_unknown_policy():
    with pytest.raises(ConfigError, match="on_save_error must be one of"):
        FaultTolerantCheckpointHook(interval=2, on_save_error='ignore')


# ------------------------------------------------------------------------------------------
# Failed saves: full disk, read-only or unwritable work dir (in-process, errors injected)
# ------------------------------------------------------------------------------------------
def failing_write(code, fail_at):
    """An atomic write that dies half-way with OSError(code) when it writes ``fail_at``."""
    real = runner_io.atomic_write_bytes

    def write(data, path):
        if Path(path).name != fail_at:
            return real(data, path)
        with atomic_path(path) as tmp:
            with open(tmp, 'wb') as f:
                f.write(data[:len(data) // 2])
            raise OSError(code, os.strerror(code))

    return write


def run_in_process(config, work, **hook):
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work)
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_cfg.max_iters = 6
    cfg.param_scheduler[0].end = 6
    cfg.default_hooks.checkpoint.update(hook)
    cfg.experiment_name = work.name
    use_atomic_checkpoint_writes(cfg)
    with safe_checkpoint_loading():
        Runner.from_cfg(cfg).train()


@pytest.mark.timeout(300)
@pytest.mark.parametrize('code, words', [(errno.ENOSPC, 'no space left on device (ENOSPC)'),
                                         (errno.EROFS, 'the file system is read-only (EROFS)'),
                                         (errno.EACCES, 'permission denied (EACCES)')])
def test_failed_save_keeps_the_previous_checkpoint_and_stops_with_one_line(
        tmp_path, data_root, monkeypatch, code, words):
    config = write_config(tmp_path / 'tiny.py', data_root)
    work = tmp_path / 'work'
    monkeypatch.setattr(runner_io, 'atomic_write_bytes', failing_write(code, 'iter_4.pth'))
    with pytest.raises(TrainingStopped) as stopped:
        run_in_process(config, work, max_keep_ckpts=1)  # mmengine would delete iter_2 first
    message = str(stopped.value)
    assert '\n' not in message
    assert message.startswith(f'could not write {work / "iter_4.pth"}: {words}'), message
    assert f'free on {work}' in message
    assert f'the previous checkpoint {work / "iter_2.pth"} is intact' in message
    assert sorted(os.listdir(work)) == sorted(['iter_2.pth', 'last_checkpoint', 'tiny.py'] + [
        name for name in os.listdir(work) if os.path.isdir(work / name)])  # no temp file left
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_2.pth')
    assert find_latest_checkpoint(work) == str(work / 'iter_2.pth')
    assert load_checkpoint_safely(work / 'iter_2.pth')['meta']['iter'] == 2


@pytest.mark.timeout(300)
def test_failed_save_with_retry_goes_on_and_saves_at_the_next_interval(tmp_path, data_root,
                                                                      monkeypatch, capsys):
    config = write_config(tmp_path / 'tiny.py', data_root)
    work = tmp_path / 'work'
    monkeypatch.setattr(runner_io, 'atomic_write_bytes', failing_write(errno.ENOSPC,
                                                                       'iter_4.pth'))
    run_in_process(config, work, max_keep_ckpts=1, on_save_error='retry')
    assert not (work / 'iter_4.pth').exists() and not (work / 'iter_2.pth').exists()
    assert load_checkpoint_safely(work / 'iter_6.pth')['meta']['iter'] == 6
    assert find_latest_checkpoint(work) == str(work / 'iter_6.pth')
    log = capsys.readouterr().out
    assert 'no space left on device (ENOSPC)' in log
    assert 'training goes on and saves again at the next interval' in log


# ------------------------------------------------------------------------------------------
# Auto-resume: the latest complete checkpoint, never a torn one
# ------------------------------------------------------------------------------------------
def save(path, step):
    torch.save(dict(meta=dict(iter=step), state_dict={}), path)


def test_latest_checkpoint_skips_unfinished_writes_and_a_torn_last_checkpoint(tmp_path):
    save(tmp_path / 'iter_2.pth', 2)
    save(tmp_path / 'iter_4.pth', 4)
    data = (tmp_path / 'iter_4.pth').read_bytes()
    (tmp_path / 'iter_6.pth').write_bytes(data[:len(data) // 2])  # a plain write cut short
    save(tmp_path / '.iter_8.pth.host-123-0123abcd.tmp.pth', 8)  # an atomic write in progress
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_6.pth'))
    assert not is_complete_checkpoint(tmp_path / 'iter_6.pth')
    assert find_latest_checkpoint(tmp_path) == str(tmp_path / 'iter_4.pth')
    (tmp_path / 'last_checkpoint').write_text('')  # mmengine's open('w') cut short
    assert find_latest_checkpoint(tmp_path) == str(tmp_path / 'iter_4.pth')
    (tmp_path / 'iter_4.pth').unlink()
    (tmp_path / 'last_checkpoint').unlink()
    assert find_latest_checkpoint(tmp_path) == str(tmp_path / 'iter_2.pth')
    assert find_latest_checkpoint(tmp_path / 'empty') is None


def test_resume_auto_and_torchrun_restarts(tmp_path, monkeypatch):
    cfg = Config(dict(work_dir=str(tmp_path), resume=False, load_from='pretrained.pth'))
    monkeypatch.delenv('TORCHELASTIC_RESTART_COUNT', raising=False)
    apply_resume(cfg, None)
    assert (cfg.resume, cfg.load_from) == (False, 'pretrained.pth')  # a first run: untouched
    apply_resume(cfg, 'auto')
    assert (cfg.resume, cfg.load_from) == (False, 'pretrained.pth')  # nothing to resume yet
    save(tmp_path / 'iter_2.pth', 2)
    monkeypatch.setenv('TORCHELASTIC_RESTART_COUNT', '1')
    apply_resume(cfg, None)
    assert (cfg.resume, cfg.load_from) == (True, str(tmp_path / 'iter_2.pth'))
    apply_resume(cfg, 'elsewhere/iter_9.pth')
    assert (cfg.resume, cfg.load_from) == (True, 'elsewhere/iter_9.pth')


def test_safe_loading_uses_public_registration_and_nests(tmp_path):
    from mmengine.logging import HistoryBuffer
    path = tmp_path / 'stock.pth'
    torch.save(dict(log=HistoryBuffer([1.0], [1])), path)  # not loadable by torch's defaults
    with pytest.raises(Exception, match='Weights only load failed'):
        CheckpointLoader.load_checkpoint(str(path))
    with safe_checkpoint_loading():
        with safe_checkpoint_loading():
            pass
        assert CheckpointLoader.load_checkpoint(str(path))['log'].current() == 1.0
    with pytest.raises(Exception, match='Weights only load failed'):
        CheckpointLoader.load_checkpoint(str(path))
