"""Faults survived on 2 gloo ranks under torchrun: preemption of one rank, a rank killed.

Each job runs tools/train.py on two CPU ranks under ``python -m torch.distributed.run``
(torchrun) with this file as the worker entry point: it initialises the gloo process group
itself (mmengine's pytorch launcher would call ``torch.cuda.set_device``), records its pid, and
runs tools/train.py with ``--launcher pytorch``. A job with ``--max-restarts 1`` restarts the
group after a rank fails; tools/train.py then resumes by itself (``TORCHELASTIC_RESTART_COUNT``).
Every final checkpoint is compared, bit for bit, with an uninterrupted run of the same config.

The killed-rank case costs one more 2-rank job with a restart; it runs when
``INFOPRO_SLOW_TESTS=1`` is set (see docs/faults.md).
"""
import faulthandler
import os
import random
import runpy
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from fault_runs import MAX_ITERS, REPO, assert_bit_identical, env, make_data, write_config

WORKER_TIMEOUT = 180  # seconds; a worker dumps its stacks and exits after this
JOB_TIMEOUT = 300  # seconds; the whole torchrun job is killed after this
SLOW = os.environ.get('INFOPRO_SLOW_TESTS', '') not in ('', '0')


def _worker_main(pid_dir, train_args):
    faulthandler.dump_traceback_later(WORKER_TIMEOUT, exit=True)  # never outlive the test
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)  # two ranks share two cores
    restart = os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')
    Path(pid_dir, f'rank{os.environ["RANK"]}.restart{restart}').write_text(str(os.getpid()))
    dist.init_process_group('gloo', timeout=timedelta(seconds=WORKER_TIMEOUT))
    sys.argv = ['tools/train.py', *train_args, '--launcher', 'pytorch']
    runpy.run_path(str(REPO / 'tools' / 'train.py'), run_name='__main__')


class Job:
    """A torchrun job of tools/train.py on two CPU ranks, its output read as it comes."""

    def __init__(self, root, config, restarts=0):
        self.pids = root / 'pids'
        self.pids.mkdir()
        self.work = root / 'work'
        # A restarted group must not share torchrun's store with the first attempt: it still
        # holds that attempt's addresses, and gloo's start-up would wait for ranks that no longer
        # exist (pytorch/pytorch#135712). The c10d rendezvous (--standalone on one machine)
        # with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 gives every attempt its own store.
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone',
               '--nproc_per_node=2', f'--max-restarts={restarts}', '--monitor_interval=0.2',
               os.path.abspath(__file__), str(self.pids), str(config), '--work-dir',
               str(self.work)]
        # Own session: on timeout the launcher and its workers are killed together.
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=dict(
            env(), TORCH_DISABLE_SHARE_RDZV_TCP_STORE='1'), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.output = ''
        self.start = time.monotonic()

    def wait_for(self, text):
        for line in self.proc.stdout:
            self.output += line
            if text in line:
                return
            if time.monotonic() - self.start > JOB_TIMEOUT:
                break
        self.kill()
        pytest.fail(f'{text!r} never appeared:\n{self.output[-6000:]}')

    def signal_rank(self, rank, sig):
        pid = int((self.pids / f'rank{rank}.restart0').read_text())
        os.kill(pid, sig)

    def finish(self):
        try:
            rest, _ = self.proc.communicate(timeout=max(1, JOB_TIMEOUT - (time.monotonic()
                                                                         - self.start)))
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f'torchrun hung for {JOB_TIMEOUT}s:\n{self.output[-6000:]}')
        self.output += rest
        return self.proc.returncode

    def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.communicate()

    @property
    def restarted(self):
        return sorted(path.name for path in self.pids.iterdir() if 'restart1' in path.name)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp('faults_ddp') / 'cityscapes')


@pytest.fixture(scope='module')
def straight_runs(tmp_path_factory, data_root):
    """Uninterrupted 2-rank runs, one per ``diff_rank_seed``, made when first asked for."""
    runs = {}

    def run(diff_rank_seed):
        if diff_rank_seed not in runs:
            root = tmp_path_factory.mktemp(f'straight_{diff_rank_seed}')
            config = write_config(root / 'tiny.py', data_root, diff_rank_seed=diff_rank_seed)
            job = Job(root, config)
            assert job.finish() == 0, job.output[-6000:]
            runs[diff_rank_seed] = job.work / f'iter_{MAX_ITERS}.pth'
        return runs[diff_rank_seed]

    return run


@pytest.mark.timeout(2 * JOB_TIMEOUT + 60)
@pytest.mark.parametrize('diff_rank_seed', [False, True])
def test_sigterm_on_one_rank_saves_restarts_and_ends_bit_identical(tmp_path, data_root,
                                                                   straight_runs,
                                                                   diff_rank_seed):
    """SIGTERM to rank 1 only at a random iteration: both ranks save that iteration and exit
    with code 4, torchrun restarts the group, which resumes by itself and runs to the end."""
    config = write_config(tmp_path / 'tiny.py', data_root, diff_rank_seed=diff_rank_seed)
    job = Job(tmp_path, config, restarts=1)
    at = random.Random().randint(1, 5)
    job.wait_for(f'Iter(train) [{at}/{MAX_ITERS}]')
    job.signal_rank(1, signal.SIGTERM)
    assert job.finish() == 0, job.output[-6000:]
    assert 'error: preempted (SIGTERM)' in job.output  # rank 1, the one signalled
    assert 'error: preempted (a preemption signal on another rank)' in job.output  # rank 0
    assert 'resume: the latest complete checkpoint is' in job.output
    assert job.restarted == ['rank0.restart1', 'rank1.restart1']
    assert_bit_identical(straight_runs(diff_rank_seed), job.work / f'iter_{MAX_ITERS}.pth')


@pytest.mark.skipif(not SLOW, reason='one more 2-rank job with a restart: INFOPRO_SLOW_TESTS=1')
@pytest.mark.timeout(2 * JOB_TIMEOUT + 60)
def test_rank_killed_restarts_from_the_last_checkpoint_and_ends_bit_identical(
        tmp_path, data_root, straight_runs):
    config = write_config(tmp_path / 'tiny.py', data_root)
    job = Job(tmp_path, config, restarts=1)
    job.wait_for(f'Iter(train) [5/{MAX_ITERS}]')
    job.signal_rank(1, signal.SIGKILL)
    assert job.finish() == 0, job.output[-6000:]
    assert 'resume: the latest complete checkpoint is' in job.output
    assert job.restarted == ['rank0.restart1', 'rank1.restart1']
    assert_bit_identical(straight_runs(False), job.work / f'iter_{MAX_ITERS}.pth')


if __name__ == '__main__':
    _worker_main(sys.argv[1], sys.argv[2:])
