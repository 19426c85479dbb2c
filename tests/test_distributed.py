"""Multi-process training with InfoProDistributedDataParallel: CPU, gloo, two ranks by torchrun.

The distributed scenarios run this file as a script under ``python -m torch.distributed.run``
(torchrun, what ``tools/dist_train.sh`` uses): ``test_distributed.py SCENARIO OUT_DIR``. Every
rank writes what it saw to ``OUT_DIR/rank<r>.pt``; the tests compare the ranks with each other and
with single-process training computed here. Each job is bounded three times: the workers stop
themselves (``faulthandler`` watchdog, gloo timeout), the launcher's process group is killed
after ``JOB_TIMEOUT`` seconds, and pytest-timeout bounds the test.
"""
import copy
import faulthandler
import os
import signal
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
import torch

from conftest import REPO, build_model, make_batch, tiny_deeplab_cfg

WORLD_SIZE = 2
WORKER_TIMEOUT = 90  # seconds; a worker dumps its stacks and exits after this
JOB_TIMEOUT = 150  # seconds; the whole torchrun job is killed after this
# Equal up to float summation order: DDP averages per-rank gradients, single-process training
# sums over the whole batch; after a few SGD steps (lr 0.1, momentum 0.9) differences stay ~1e-7.
RTOL, ATOL = 1e-5, 1e-6


def sgd_wrapper(model, lr=0.1, momentum=0.9, **kwargs):
    from infopro_seg.engine import InfoProOptimWrapper
    return InfoProOptimWrapper(torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum),
                               **kwargs)


def select(batch, indices):
    """The samples ``indices`` of a dataloader batch."""
    return {key: [value[i] for i in indices] for key, value in batch.items()}


def params(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


# Configs shared by the workers and the single-process references computed in the tests.
def gn_cfg(split_points):
    """No batch statistics: per-rank and whole-batch gradients agree (run in eval: no dropout)."""
    return tiny_deeplab_cfg(split_points=split_points, norm='GN')


PARITY_SPLITS = ['layer2.1']  # K=2, paper-like (aux head in the last module)
ACCUM_SPLITS = ['layer1.1', 'layer3.0']  # K=3
PARITY_STEPS = 2


# ------------------------------------------------------------------------------------------
# Worker side (runs under torchrun)
# ------------------------------------------------------------------------------------------
def _record_sync(wrapper, log):
    """Log each local module's forward and every gradient bucket its DDP all-reduces."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    for index, ddp in enumerate(wrapper.ddp_modules):
        ddp.module.register_forward_pre_hook(
            lambda module, args, index=index: log.append(('forward', index, 0)))

        def hook(process_group, bucket, index=index):
            log.append(('allreduce', index, bucket.buffer().numel()))
            return allreduce_hook(process_group, bucket)

        ddp.register_comm_hook(None, hook)


def _trainable_numel(wrapper):
    return [sum(p.numel() for p in ddp.module.parameters() if p.requires_grad)
            for ddp in wrapper.ddp_modules]


def _scenario_train(rank, out):
    """Scenarios (a)-(c), K=1 and the non-InfoPro fallback in one process group."""
    from mmengine.model import MMDistributedDataParallel

    from infopro_seg.engine import InfoProDistributedDataParallel

    # (a) BN in train mode (batch statistics, dropout), K=3, different data on each rank.
    # device_ids=[rank] as mmengine passes it to DDP-like wrappers: ignored for a CPU model.
    model = build_model(tiny_deeplab_cfg(split_points=ACCUM_SPLITS))
    wrapper = InfoProDistributedDataParallel(model, device_ids=[rank])
    optim = sgd_wrapper(model)
    torch.manual_seed(rank)  # different dropout masks per rank
    for step in range(3):
        wrapper.train_step(make_batch(batch_size=2, seed=100 * rank + step), optim)
    out['bn_k3'] = dict(params=params(model), units=wrapper.num_sync_units,
                        wrapper_keys=list(wrapper.state_dict()),
                        model_keys=list(model.state_dict()))

    # (b) Half of each global batch per rank; compared with the whole batch in one process.
    model = build_model(gn_cfg(PARITY_SPLITS)).eval()
    wrapper = InfoProDistributedDataParallel(model)
    log = []
    _record_sync(wrapper, log)
    optim = sgd_wrapper(model)
    steps = []
    for step in range(PARITY_STEPS):
        log.clear()
        batch = make_batch(batch_size=4, seed=step)
        wrapper.train_step(select(batch, [2 * rank, 2 * rank + 1]), optim)
        steps.append(list(log))
    out['parity'] = dict(params=params(model), log=steps, numel=_trainable_numel(wrapper))

    # (c) Accumulation: two iterations of one sample per rank make one update of four samples.
    model = build_model(gn_cfg(ACCUM_SPLITS)).eval()
    wrapper = InfoProDistributedDataParallel(model)
    log = []
    _record_sync(wrapper, log)
    optim = sgd_wrapper(model, accumulative_counts=2)
    batch = make_batch(batch_size=4, seed=0)
    iterations, snapshots = [], []
    for micro in range(2):
        log.clear()
        wrapper.train_step(select(batch, [2 * rank + micro]), optim)
        iterations.append(list(log))
        snapshots.append(params(model))
    out['accumulation'] = dict(params=snapshots, log=iterations, numel=_trainable_numel(wrapper))

    # K=1: the whole segmentor is one local module, one DDP.
    model = build_model(tiny_deeplab_cfg(split_points=[]))
    wrapper = InfoProDistributedDataParallel(model)
    optim = sgd_wrapper(model)
    for step in range(2):
        wrapper.train_step(make_batch(batch_size=2, seed=100 * rank + step), optim)
    out['k1'] = dict(params=params(model), units=wrapper.num_sync_units)

    # A plain mmseg EncoderDecoder falls back to mmengine's MMDistributedDataParallel.
    model = build_model(tiny_deeplab_cfg(type='EncoderDecoder'))
    wrapper = InfoProDistributedDataParallel(model)
    optim = sgd_wrapper(model)
    for step in range(2):
        wrapper.train_step(make_batch(batch_size=2, seed=100 * rank + step), optim)
    out['fallback'] = dict(params=params(model),
                           mmddp=isinstance(wrapper.ddp_modules[0], MMDistributedDataParallel))


def _scenario_fail(rank, out):
    """Rank 1 raises in its second iteration while rank 0 waits for it in an all-reduce."""
    from infopro_seg.engine import InfoProDistributedDataParallel

    model = build_model(tiny_deeplab_cfg(split_points=PARITY_SPLITS))
    wrapper = InfoProDistributedDataParallel(model)
    optim = sgd_wrapper(model)
    for step in range(2):
        if rank == 1 and step == 1:
            raise RuntimeError('rank 1 fails on purpose')
        wrapper.train_step(make_batch(batch_size=2, seed=step), optim)
    out['finished'] = True


def _scenario_runner(rank, out):
    """The root config's model_wrapper_cfg through mmengine's Runner with launcher='pytorch'."""
    from mmengine.config import Config, ConfigDict
    from mmengine.runner import Runner

    data_root = os.environ['INFOPRO_TEST_DATA']
    work_dir = os.environ['INFOPRO_TEST_WORK_DIR']
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'deeplabv3_r50_infopro_cityscapes.py'))
    # CPU: BN instead of the config's SyncBN (SyncBN refuses CPU tensors).
    cfg.model = ConfigDict(tiny_deeplab_cfg(split_points=PARITY_SPLITS, norm='BN'))
    dataset = dict(type='BaseSegDataset', data_root=data_root,
                   data_prefix=dict(img_path='img', seg_map_path='ann'), img_suffix='.png',
                   seg_map_suffix='.png', metainfo=dict(classes=('a', 'b', 'c', 'd')),
                   pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                             dict(type='PackSegInputs')])
    cfg.train_dataloader = ConfigDict(
        batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dataset)
    cfg.val_dataloader = ConfigDict(
        batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dataset)
    cfg.val_evaluator = ConfigDict(type='IoUMetric', iou_metrics=['mIoU'])
    cfg.train_cfg = ConfigDict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
    cfg.default_hooks.checkpoint = ConfigDict(type='FaultTolerantCheckpointHook', by_epoch=False,
                                              interval=2)
    cfg.default_hooks.logger = ConfigDict(type='LoggerHook', interval=1)
    cfg.work_dir = work_dir
    cfg.launcher = 'pytorch'
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = {key: buffer.current() for key, buffer in runner.message_hub.log_scalars.items()
               if key.startswith('val/')}
    out['runner'] = dict(wrapper=type(runner.model).__name__, params=params(runner.model.module),
                         units=runner.model.num_sync_units, distributed=runner.distributed,
                         world_size=runner.world_size, metrics=metrics)


SCENARIOS = dict(train=_scenario_train, fail=_scenario_fail, runner=_scenario_runner)


def _worker_main(scenario, out_dir):
    faulthandler.dump_traceback_later(WORKER_TIMEOUT, exit=True)  # never outlive the test
    torch.set_num_threads(1)  # two ranks share two cores
    import torch.distributed as dist

    # Initialise gloo ourselves: mmengine's pytorch launcher would call torch.cuda.set_device
    # first; with a process group in place the Runner skips its own init_dist.
    dist.init_process_group('gloo', timeout=timedelta(seconds=WORKER_TIMEOUT))
    rank = dist.get_rank()
    out = {}
    SCENARIOS[scenario](rank, out)
    torch.save(out, os.path.join(out_dir, f'rank{rank}.pt'))
    dist.barrier()
    dist.destroy_process_group()


# ------------------------------------------------------------------------------------------
# Test side
# ------------------------------------------------------------------------------------------
def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def torchrun(scenario, out_dir, env=None):
    """Run ``scenario`` on two CPU ranks; returns (return code, stdout + stderr)."""
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nnodes=1',
           f'--nproc_per_node={WORLD_SIZE}', '--master_addr=127.0.0.1',
           f'--master_port={_free_port()}', '--monitor_interval=0.2', os.path.abspath(__file__),
           scenario, str(out_dir)]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore', **(env or {}))
    # Own session: on timeout the launcher and its workers are killed together.
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=JOB_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f'torchrun {scenario} hung for {JOB_TIMEOUT}s:\n{output[-5000:]}')
    return proc.returncode, output


def load_ranks(out_dir):
    return [torch.load(os.path.join(out_dir, f'rank{r}.pt'), weights_only=False)
            for r in range(WORLD_SIZE)]


@pytest.fixture(scope='module')
def train_results(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp('ddp_train')
    code, output = torchrun('train', out_dir)
    assert code == 0, output[-8000:]
    return load_ranks(out_dir)


def assert_same(a, b, **tolerance):
    assert a.keys() == b.keys()
    for name in a:
        if tolerance:
            torch.testing.assert_close(a[name], b[name], msg=name, **tolerance)
        else:
            assert torch.equal(a[name], b[name]), name


@pytest.mark.timeout(JOB_TIMEOUT + 30)
@pytest.mark.parametrize('case', ['bn_k3', 'k1', 'fallback'])
def test_parameters_identical_across_ranks(train_results, case):
    first, second = (results[case] for results in train_results)
    assert_same(first['params'], second['params'])  # bit-identical: all-reduce, same step
    start = build_model(tiny_deeplab_cfg(split_points=[] if case == 'k1' else ACCUM_SPLITS,
                                         type='EncoderDecoder' if case == 'fallback'
                                         else 'InfoProEncoderDecoder'))
    assert any(not torch.equal(p, first['params'][n]) for n, p in start.named_parameters())


@pytest.mark.timeout(JOB_TIMEOUT + 30)
def test_one_sync_unit_per_local_module_and_checkpoint_keys_unchanged(train_results):
    results = train_results[0]
    assert results['bn_k3']['units'] == 3
    assert results['k1']['units'] == 1
    assert results['fallback']['mmddp']
    assert results['bn_k3']['wrapper_keys'] == [
        f'module.{key}' for key in results['bn_k3']['model_keys']]


@pytest.mark.timeout(JOB_TIMEOUT + 30)
def test_update_equals_single_process_on_concatenated_batch(train_results):
    model = build_model(gn_cfg(PARITY_SPLITS)).eval()
    optim = sgd_wrapper(model)
    for step in range(PARITY_STEPS):
        model.train_step(make_batch(batch_size=4, seed=step), optim)
    for results in train_results:
        assert_same(results['parity']['params'], params(model), rtol=RTOL, atol=ATOL)


@pytest.mark.timeout(JOB_TIMEOUT + 30)
def test_each_module_all_reduces_once_during_its_own_backward(train_results):
    """Module k's gradients are all reduced before module k+1 runs, each element exactly once."""
    for results in train_results:
        numel = results['parity']['numel']
        for log in results['parity']['log']:
            modules = [index for kind, index, _ in log]
            assert modules == sorted(modules)  # forward k, all-reduce k, forward k+1, ...
            for k in range(len(numel)):
                entries = [(kind, size) for kind, index, size in log if index == k]
                assert entries[0] == ('forward', 0)
                assert sum(size for kind, size in entries if kind == 'allreduce') == numel[k]


@pytest.mark.timeout(JOB_TIMEOUT + 30)
def test_accumulation_matches_single_process_and_syncs_only_on_update(train_results):
    start = build_model(gn_cfg(ACCUM_SPLITS)).eval()
    model = copy.deepcopy(start)
    model.train_step(make_batch(batch_size=4, seed=0), sgd_wrapper(model))
    for results in train_results:
        first, second = results['accumulation']['log']
        assert [kind for kind, _, _ in first] == ['forward'] * 3  # no_sync: nothing reduced
        assert_same(results['accumulation']['params'][0], params(start))  # and no step
        for k, numel in enumerate(results['accumulation']['numel']):
            assert sum(size for kind, index, size in second
                       if kind == 'allreduce' and index == k) == numel
        assert_same(results['accumulation']['params'][1], params(model), rtol=RTOL, atol=ATOL)


@pytest.mark.timeout(JOB_TIMEOUT + 30)
def test_failing_rank_stops_the_job_with_its_error(tmp_path):
    code, output = torchrun('fail', tmp_path)
    assert code != 0
    assert 'rank 1 fails on purpose' in output
    # The launcher stopped rank 0, not its watchdog (which would dump its stacks first).
    assert 'Timeout (' not in output
    assert not os.path.exists(tmp_path / 'rank0.pt')


def _write_toy_dataset(root, num=4, size=64):
    import cv2
    import numpy as np
    os.makedirs(root / 'img'), os.makedirs(root / 'ann')
    rng = np.random.default_rng(0)
    for i in range(num):
        cv2.imwrite(str(root / 'img' / f'{i}.png'), rng.integers(0, 256, (size, size, 3),
                                                                dtype=np.uint8))
        cv2.imwrite(str(root / 'ann' / f'{i}.png'), rng.integers(0, 4, (size, size),
                                                                dtype=np.uint8))


@pytest.mark.timeout(JOB_TIMEOUT + 30)
def test_runner_with_pytorch_launcher_uses_the_wrapper(tmp_path):
    _write_toy_dataset(tmp_path / 'data')
    work_dir = tmp_path / 'work'
    env = dict(INFOPRO_TEST_DATA=str(tmp_path / 'data'), INFOPRO_TEST_WORK_DIR=str(work_dir))
    code, output = torchrun('runner', tmp_path, env=env)
    assert code == 0, output[-8000:]
    ranks = [results['runner'] for results in load_ranks(tmp_path)]
    for results in ranks:
        assert results['wrapper'] == 'InfoProDistributedDataParallel'
        assert results['distributed'] and results['world_size'] == WORLD_SIZE
        assert results['units'] == 2
        assert 'val/mIoU' in results['metrics']  # val_step went through the wrapper
    assert_same(ranks[0]['params'], ranks[1]['params'])
    from infopro_seg.engine import load_checkpoint_safely
    checkpoint = load_checkpoint_safely(str(work_dir / 'iter_2.pth'), map_location='cpu')
    model = build_model(tiny_deeplab_cfg(split_points=PARITY_SPLITS))
    assert list(checkpoint['state_dict']) == list(model.state_dict())  # no 'module.' prefix
    assert_same({n: checkpoint['state_dict'][n] for n in ranks[0]['params']}, ranks[0]['params'])


def test_wrapper_needs_a_process_group():
    from infopro_seg.engine import InfoProDistributedDataParallel
    with pytest.raises(RuntimeError, match='process group'):
        InfoProDistributedDataParallel(build_model(tiny_deeplab_cfg()))


def test_root_config_selects_the_wrapper():
    from mmengine.config import Config
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'deeplabv3_r101_infopro_cityscapes.py'))
    assert cfg.model_wrapper_cfg == dict(type='InfoProDistributedDataParallel')


if __name__ == '__main__':
    _worker_main(sys.argv[1], sys.argv[2])
