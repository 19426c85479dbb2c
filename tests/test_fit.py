"""The fit: a config transform that plans K, cuts, checkpointing, AMP and per-module steps for a
memory budget before the model is built."""
import json
import os
import subprocess
import sys
from datetime import timedelta
from unittest import mock

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from conftest import REPO, build_model, make_batch, tiny_deeplab_cfg
from infopro_seg.engine import InfoProOptimWrapper
from infopro_seg.errors import ConfigError
from infopro_seg.planning import fit as fit_module
from infopro_seg.planning import plan_splits, profile_model
from infopro_seg.planning.fit import (DECISION_FILE, fit_budget_arg, resolve_config,
                                      resolved_copy)
from infopro_seg.planning.meter import measure_step
from infopro_seg.utils.memory import GiB

CROP, BATCH = (96, 64), 2


def full_cfg(budget=None, **fit):
    """A full config around the tiny model: what the transform reads."""
    cfg = Config(dict(
        model=tiny_deeplab_cfg(split_points=[], depth=50), crop_size=CROP,
        train_dataloader=dict(batch_size=BATCH),
        optim_wrapper=dict(type='OptimWrapper',
                           optimizer=dict(type='SGD', lr=0.01, momentum=0.9))))
    if budget is not None:
        cfg.infopro_fit = dict(budget_gib=budget, headroom_gib=0, **fit)
    return cfg


def e2e_gib():
    return plan_splits(profile_model(full_cfg().model, CROP, BATCH), 1).peak_with_state_bytes / GiB


def test_a_budget_below_e2e_is_resolved_into_the_config():
    budget = 0.8 * e2e_gib()
    # fp32 and one step per iteration: only more local modules (or recomputation) fit.
    cfg = full_cfg(budget, amp='never', step_each_module='never')
    decision = resolve_config(cfg)
    assert decision.num_modules > 1
    assert cfg.model.backbone.split_points == decision.split_points
    assert not decision.amp and not decision.step_each_module
    assert cfg.infopro_fit is None and cfg.infopro_fit_decision['budget_gib'] == budget
    assert cfg.optim_wrapper.constructor == 'InfoProOptimWrapperConstructor'
    assert decision.peak_gib + decision.headroom_gib <= budget
    assert resolve_config(cfg) is None  # resolved: nothing is planned again
    build_model(cfg.model)  # the written model builds


def test_the_fit_is_the_fastest_candidate_that_fits():
    from infopro_seg.planning.budget import budget_candidates
    budget = 0.8 * e2e_gib()
    cfg = full_cfg(budget)
    decision = resolve_config(cfg)
    candidates = budget_candidates(cfg.model, CROP, BATCH, int(budget * GiB),
                                   optimizer_cfg=cfg.optim_wrapper.optimizer,
                                   step_each_module='allow')
    assert decision.overhead == pytest.approx(min(c.overhead for c in candidates if c.fits))
    assert all(c.overhead > decision.overhead for c in candidates
               if c.num_modules < decision.num_modules)  # fewer modules do not fit


def test_the_written_model_trains_within_its_planned_peak():
    """The real step (saved tensors + gradients, measured on the CPU) + parameters + optimizer
    state of the fitted model stays within each budget."""
    e2e = e2e_gib()
    for fraction in (0.95, 0.8, 0.6):
        cfg = full_cfg(fraction * e2e)
        decision = resolve_config(cfg)
        model = build_model(cfg.model)
        # As the config now says: AMP (bfloat16 on this CPU), stepping each module.
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        model.train_step(make_batch(BATCH, *CROP), wrapper)  # momentum buffers exist now
        params = list(model.parameters())
        state = sum(p.numel() * p.element_size() for p in params) + sum(
            t.numel() * t.element_size() for s in wrapper.optimizer.state.values()
            for t in s.values() if torch.is_tensor(t))
        meter = measure_step(model, wrapper, make_batch(BATCH, *CROP, seed=1))
        assert meter.peak_bytes + state <= decision.budget_bytes, (fraction, decision)


def test_only_the_modules_that_need_it_recompute():
    profile = profile_model(full_cfg().model, CROP, BATCH)
    plain = min(plan_splits(profile, k, checkpointed=False).peak_with_state_bytes
                for k in range(1, 5))
    cfg = full_cfg((plain - 1) / GiB, max_k=4, amp='never', step_each_module='never')
    decision = resolve_config(cfg)
    assert any(decision.checkpointing) and not all(decision.checkpointing)
    assert cfg.model.checkpointing == [True if on else None for on in decision.checkpointing]
    model = build_model(cfg.model)
    model.train_step(make_batch(BATCH, *CROP), InfoProOptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.01)))


def test_bad_requests_are_refused_in_one_line():
    for value in ('0', '-3', 'lots'):
        with pytest.raises(Exception, match='positive number of GiB'):
            fit_budget_arg(value)
    assert fit_budget_arg('auto') == 'auto' and fit_budget_arg('10') == 10.0
    cases = [(dict(budget_gib=0), 'positive number'), (dict(budget_gib=-1), 'positive number'),
             (dict(budget_gib=8, amp='sometimes'), 'infopro_fit.amp must be one of'),
             (dict(budget_gib=8, budgit=1), "unknown key(s) ['budgit']"),
             (dict(budget_gib=8, max_k=0), 'max_k must be a positive integer')]
    for request, message in cases:
        cfg = full_cfg()
        cfg.infopro_fit = request
        with pytest.raises(ConfigError, match=message.replace('(', r'\(').replace(')', r'\)')
                           .replace('[', r'\[').replace(']', r'\]')):
            resolve_config(cfg)
    with pytest.raises(ConfigError, match='smallest achievable peak'):
        resolve_config(full_cfg(1e-6))
    plain = full_cfg(1.0)
    plain.model = tiny_deeplab_cfg(type='EncoderDecoder')
    with pytest.raises(ConfigError, match='the fit plans InfoPro models'):
        resolve_config(plain)


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the refusal without CUDA')
def test_auto_without_cuda_refuses_with_the_fix():
    with pytest.raises(ConfigError, match='no CUDA device is available here: give a budget'):
        resolve_config(full_cfg('auto'))


def test_a_resumed_run_reuses_the_saved_decision(tmp_path):
    cfg = full_cfg(0.8 * e2e_gib())
    cfg.work_dir = str(tmp_path)
    decision = resolve_config(cfg)
    with open(tmp_path / DECISION_FILE) as f:
        assert json.load(f)['split_points'] == decision.split_points
    again = full_cfg(0.8 * e2e_gib())
    again.work_dir, again.resume = str(tmp_path), True
    with mock.patch.object(fit_module, 'plan_fit') as planned:
        reused = resolve_config(again)
    planned.assert_not_called()
    assert reused == decision and again.model.backbone.split_points == decision.split_points


def _resolve_on_rank(rank, world_size, init_file, out_dir, budget):
    torch.distributed.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                                         world_size=world_size,
                                         timeout=timedelta(seconds=60))
    try:
        cfg = resolved_copy(full_cfg(budget))
        with open(os.path.join(out_dir, f'rank{rank}.txt'), 'w') as f:
            f.write(cfg.pretty_text)
    finally:
        torch.distributed.destroy_process_group()


def test_every_rank_resolves_the_same_config(tmp_path):
    torch.multiprocessing.spawn(_resolve_on_rank, nprocs=2, args=(
        2, str(tmp_path / 'init'), str(tmp_path), 0.8 * e2e_gib()))
    texts = [(tmp_path / f'rank{r}.txt').read_text() for r in range(2)]
    assert texts[0] == texts[1] and 'infopro_fit_decision' in texts[0]


def test_auto_split_points_are_planned_before_the_model_is_built():
    cfg = full_cfg()
    cfg.model.backbone.split_points = 'auto'
    cfg.model.split_planner = dict(num_modules=3, crop_size=CROP, batch_size=BATCH)
    resolve_config(cfg)
    expected = plan_splits(profile_model(full_cfg().model, CROP, BATCH), 3)
    assert cfg.model.backbone.split_points == expected.split_points
    assert 'split_planner' not in cfg.model
    # A budget: the smallest K that fits.
    cfg = full_cfg()
    cfg.model.backbone.split_points = 'auto'
    cfg.model.split_planner = dict(budget_gb=0.95 * e2e_gib(), crop_size=CROP, batch_size=BATCH)
    resolve_config(cfg)
    assert len(cfg.model.backbone.split_points) == 1


def test_auto_split_point_mistakes_are_refused():
    for planner, message in ((None, 'exactly one of'),
                             (dict(num_modules=2, budget_gb=1), 'exactly one of'),
                             (dict(budget_gb=1e-9), 'no K fits'),
                             (dict(num_module=2), "unknown key(s) ['num_module']")):
        cfg = full_cfg()
        cfg.model.backbone.split_points = 'auto'
        if planner is not None:
            cfg.model.split_planner = planner
        with pytest.raises(ConfigError, match=message.replace('(', r'\(').replace(')', r'\)')
                           .replace('[', r'\[').replace(']', r'\]')):
            resolve_config(cfg)
    cfg = tiny_deeplab_cfg(split_points=[])
    cfg['backbone']['split_points'] = 'auto'
    with pytest.raises(ConfigError, match='planned before the model is built'):
        build_model(cfg)


def _run(args, timeout=300):
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    return subprocess.run([sys.executable] + args, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_written_config_trains_and_train_py_fit_auto_refuses(tmp_path):
    """plan_splits.py --write-config writes a config that trains (tools/train.py, the demo
    config on a tiny synthetic set); --fit auto without CUDA is one line, exit 2."""
    from infopro_seg.datasets import generate_synthetic_cityscapes
    from infopro_seg.datasets.cityscapes_conversion import convert_cityscapes
    data = tmp_path / 'data'
    generate_synthetic_cityscapes(str(data), num_train=2, num_val=1, height=64, width=128)
    convert_cityscapes(str(data))
    demo = os.path.join(REPO, 'configs/demo/deeplabv3_r18_infopro_synthetic.py')
    written = tmp_path / 'fitted.py'
    proc = _run(['tools/analysis_tools/plan_splits.py', demo, '--budget-gib', '0.16',
                 '--headroom-gib', '0', '--write-config', str(written)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = written.read_text()
    assert 'infopro_fit = None' in text and 'split_points=' in text
    options = ['--cfg-options', f'data_root={data}', f'train_dataloader.dataset.data_root={data}',
               f'val_dataloader.dataset.data_root={data}', 'train_dataloader.batch_size=2',
               'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
               'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
               'train_cfg.max_iters=1', 'train_cfg.val_interval=100']
    if "type='AmpOptimWrapper'" in text:  # planned for a GPU; bfloat16 on this CPU
        options.append('optim_wrapper.type=DeviceAmpOptimWrapper')
    work = tmp_path / 'work'
    proc = _run(['tools/train.py', str(written), '--work-dir', str(work)] + options)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dumped = Config.fromfile(str(work / 'fitted.py'))
    assert dumped.model.backbone.split_points == Config.fromfile(
        str(written)).infopro_fit_decision['split_points']
    if not torch.cuda.is_available():
        proc = _run(['tools/train.py', demo, '--fit', 'auto', '--work-dir', str(work)] + options)
        assert proc.returncode == 2 and 'Traceback' not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert lines[-1].startswith('error: --fit auto reads the free memory'), proc.stderr
