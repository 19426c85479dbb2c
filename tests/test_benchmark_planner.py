"""The memory benchmark tool, the split planner (InfoPro*) and ``split_points='auto'``."""
import csv
import itertools
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO, build_model, make_batch, tiny_deeplab_cfg
from infopro_seg.engine import InfoProOptimWrapper
from infopro_seg.planning import (SavedBytesMeter, evaluate_cuts, fit_budget,
                                  meta_masks_select_all, naive_cuts, plan_splits, profile_model)
from infopro_seg.planning.benchmark import parse_method
from infopro_seg.utils import SavedTensorMeter

BENCHMARK = os.path.join(REPO, 'tools', 'analysis_tools', 'benchmark_memory.py')
PLAN_SPLITS = os.path.join(REPO, 'tools', 'analysis_tools', 'plan_splits.py')

# A tiny InfoPro DeepLab-V3 (ResNetV1c-50 layout, 8 base channels) as a config file. SyncBN and a
# pretrained checkpoint on purpose: the benchmark must swap in BN and skip the download.
TINY_CONFIG = """
custom_imports = dict(imports=['infopro_seg'], allow_failed_imports=False)
default_scope = 'mmseg'
crop_size = (96, 96)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='InfoProEncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                           seg_pad_val=255, size=crop_size),
    pretrained='open-mmlab://resnet50_v1c',
    backbone=dict(type='InfoProResNet', variant='ResNetV1c', depth=50, stem_channels=16,
                  base_channels=8, out_indices=(0, 1, 2, 3), dilations=(1, 1, 2, 4),
                  strides=(1, 2, 1, 1), norm_cfg=norm_cfg, norm_eval=False,
                  contract_dilation=True, split_points=['layer3.1']),
    decode_head=dict(type='ASPPHead', in_channels=256, in_index=3, channels=16,
                     dilations=(1, 2, 3, 4), dropout_ratio=0.1, num_classes=4,
                     norm_cfg=norm_cfg, align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    auxiliary_head=dict(type='FCNHead', in_channels=128, in_index=2, channels=8, num_convs=1,
                        concat_input=False, dropout_ratio=0.1, num_classes=4,
                        norm_cfg=norm_cfg, align_corners=False,
                        loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4)),
    local_heads=dict(reconstruction=dict(type='ReconstructionHead', channels=(16, 8, 4)),
                     classifier=dict(type='LocalClassifierHead', channels=16)),
    local_loss_weights=[(1.5, 1.0)],
    train_cfg=dict(), test_cfg=dict(mode='whole'))
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005))
"""


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / 'tiny_infopro_deeplab.py'
    path.write_text(TINY_CONFIG)
    return str(path)


def _run(args, timeout=240):
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    return subprocess.run([sys.executable] + args, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_benchmark_tool_writes_one_row_per_method_and_memory_falls_with_k(tiny_config,
                                                                         tmp_path):
    out = tmp_path / 'bench'
    methods = ['e2e', 'infopro-k2', 'infopro-k4']
    proc = _run([BENCHMARK, tiny_config, '--crop', '96', '96', '--batch', '2', '--iters', '2',
                 '--methods', *methods, '--device', 'cpu', '--out', str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'peak / E2E' in proc.stdout and 'CPU peak =' in proc.stdout  # table and footer
    assert 'iteration 2/2' in proc.stderr  # progress
    with open(out / 'results.csv') as f:
        rows = list(csv.DictReader(f))
    with open(out / 'results.json') as f:
        data = json.load(f)
    assert [r['method'] for r in rows] == methods
    assert [r['method'] for r in data['rows']] == methods
    assert (out / 'memory_vs_crop.png').stat().st_size > 0
    by_method = {r['method']: r for r in data['rows']}
    for row in data['rows']:
        assert row['figure'] == 'measured'
        assert row['time_s'] > 0 and len(row['times_s']) == 2
        # The meta-device estimate is the same accounting as the CPU measurement.
        assert row['estimated_peak_mb'] == pytest.approx(row['peak_mb'], abs=0.15)
    peaks = [by_method[m]['peak_mb'] for m in methods]
    activations = [by_method[m]['activations_mb'] for m in methods]
    assert peaks[0] > peaks[1] > peaks[2], peaks
    assert activations[0] > activations[1] > activations[2], activations
    assert by_method['e2e']['peak_vs_e2e'] == 1.0
    assert by_method['infopro-k2']['split_points'] == ['layer3.1']  # the config's own cut
    assert len(by_method['infopro-k4']['split_points']) == 3  # planned for K=4


def test_method_names_parse():
    assert parse_method('e2e')[:4] == ('e2e', 1, False, False)
    assert parse_method('amp')[:4] == ('e2e', 1, False, True)
    assert parse_method('with_cp')[:4] == ('with_cp', 1, False, False)
    assert parse_method('infopro-k3+amp')[:4] == ('infopro', 3, False, True)
    assert parse_method('e2e+cp')[:4] == ('e2e', 1, True, False)
    assert parse_method('with_cp+amp')[:4] == ('with_cp', 1, False, True)
    method = parse_method('infopro-k4+cp2,3+step')
    assert (method.cp, method.cp_modules, method.step) == (True, (2, 3), True)
    with pytest.raises(ValueError, match=r'\+cp names modules \[5\], but there are 4'):
        parse_method('infopro-k4+cp5')
    method = parse_method('infopro-k4+cp+amp')
    assert (method.base, method.k, method.cp, method.amp) == ('infopro', 4, True, True)
    for bad in ('infopro', 'infopro-k2+amp+cp', 'e2e+cp+cp', 'infopro-k2+step+amp'):
        with pytest.raises(ValueError, match='unknown method'):
            parse_method(bad)
    with pytest.raises(ValueError, match='use one of them'):
        parse_method('with_cp+cp')
    with pytest.raises(ValueError, match='K must be at least 1'):
        parse_method('infopro-k0+cp')


def _measure(config, method, meta):
    from infopro_seg.planning.benchmark.measure import measure_method
    return measure_method(dict(config=config, cfg_options=None, method=method, crop=[96, 96],
                               batch=2, iters=1, device='cpu', meta=meta, max_mem=64 << 30,
                               threads=None))


def test_checkpointing_and_amp_methods_are_estimated_on_meta(tiny_config):
    rows = {m: _measure(tiny_config, m, 'always')
            for m in ('e2e', 'e2e+amp', 'infopro-k2', 'infopro-k2+cp', 'infopro-k2+cp+amp')}
    assert all(r['figure'] == 'estimated (meta device)' for r in rows.values())
    assert 'AMP emulated on meta' in rows['e2e+amp']['note']
    assert 'note' not in rows['infopro-k2+cp'] or 'AMP' not in rows['infopro-k2+cp']['note']
    peak = {m: r['peak_mb'] for m, r in rows.items()}
    assert peak['infopro-k2+cp'] < peak['infopro-k2'] < peak['e2e']
    assert peak['e2e+amp'] < peak['e2e']
    assert peak['infopro-k2+cp+amp'] < peak['infopro-k2+cp']
    # AMP keeps the model state in float32.
    assert rows['e2e+amp']['state_mb'] == rows['e2e']['state_mb']


def test_meta_amp_estimate_equals_the_cpu_bfloat16_measurement(tiny_config):
    for method in ('e2e+amp', 'infopro-k2+cp+amp'):
        row = _measure(tiny_config, method, 'auto')
        assert row['figure'] == 'measured' and 'bfloat16 autocast' in row['note']
        assert row['estimated_peak_mb'] == row['peak_mb'], row
        assert row['estimated_activations_mb'] == row['activations_mb'], row


@pytest.mark.parametrize('depth', [18, 50])
def test_planner_predicts_the_local_step_peak_exactly(depth):
    """Planned module costs equal the saved-for-backward peak of a real InfoPro step."""
    profile = profile_model(tiny_deeplab_cfg(split_points=[], depth=depth), (96, 64), 2)
    for cuts in ([], [2], [profile.num_units // 2], naive_cuts(profile.num_units, 3),
                 plan_splits(profile, 4).cuts):
        plan = evaluate_cuts(profile, cuts)
        model = build_model(tiny_deeplab_cfg(split_points=plan.split_points, depth=depth))
        with SavedTensorMeter() as meter:
            model.train_step(make_batch(2, 96, 64),
                             InfoProOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))
        assert plan.peak_bytes == meter.peak_bytes, plan.split_points


@pytest.mark.parametrize('depth, amp', [(50, False), (18, True)])
def test_planner_predicts_the_checkpointed_step_peak_exactly(depth, amp):
    """With model.checkpointing (and AMP: emulated autocast on meta, against CPU bfloat16
    autocast) the planned module costs still equal the real step's saved-for-backward peak."""
    cfg = dict(tiny_deeplab_cfg(split_points=[], depth=depth), checkpointing=True)
    profile = profile_model(cfg, (96, 64), 2, amp=amp)
    plain = profile_model(tiny_deeplab_cfg(split_points=[], depth=depth), (96, 64), 2)
    assert profile.checkpointed and profile.amp == amp
    for cuts in ([], [2], naive_cuts(profile.num_units, 3), plan_splits(profile, 4).cuts):
        plan = evaluate_cuts(profile, cuts)
        model = build_model(dict(tiny_deeplab_cfg(split_points=plan.split_points, depth=depth),
                                 checkpointing=True))
        with SavedTensorMeter() as meter, torch.autocast('cpu', dtype=torch.bfloat16,
                                                         enabled=amp):
            model.train_step(make_batch(2, 96, 64),
                             InfoProOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))
        assert plan.peak_bytes == meter.peak_bytes, plan.split_points
        assert plan.peak_bytes < evaluate_cuts(plain, cuts).peak_bytes


def test_profile_rejects_amp_off_the_meta_device():
    with pytest.raises(ValueError, match="use device='meta'"):
        profile_model(tiny_deeplab_cfg(split_points=[], depth=18), (32, 32), 2, 'cpu', amp=True)


def test_planner_runs_valid_pixel_averaged_psi_on_meta_and_predicts_the_real_peak():
    """psi averaging over valid pixels (the paper configs) counts them with .item(), which meta
    tensors cannot answer; the plan must still be made on meta and equal the real step."""
    cfg = tiny_deeplab_cfg(split_points=[], depth=18)
    cfg['local_heads']['classifier']['loss_decode'] = dict(
        type='CrossEntropyLoss', loss_weight=1.0, avg_non_ignore=True)
    profile = profile_model(cfg, (96, 64), 2, device='meta')
    plan = plan_splits(profile, 2)
    model = build_model({**cfg, 'backbone': {**cfg['backbone'],
                                             'split_points': plan.split_points}})
    assert model.local_heads[0]['classifier'].loss_decode.avg_non_ignore  # real device unchanged
    with SavedTensorMeter() as meter:
        model.train_step(make_batch(2, 96, 64),
                         InfoProOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))
    assert plan.peak_bytes == meter.peak_bytes


def test_balanced_splits_beat_evenly_spaced_ones_and_are_optimal():
    profile = profile_model(tiny_deeplab_cfg(split_points=[], depth=50), (128, 128), 2)
    n = profile.num_units
    for k in (2, 3, 4):
        balanced = plan_splits(profile, k)
        naive = evaluate_cuts(profile, naive_cuts(n, k))
        assert balanced.peak_bytes < naive.peak_bytes, (k, balanced.split_points)
        exhaustive = min(evaluate_cuts(profile, list(cuts)).peak_bytes
                         for cuts in itertools.combinations(range(n - 1), k - 1))
        assert balanced.peak_bytes == exhaustive
    assert plan_splits(profile, 4).peak_bytes < plan_splits(profile, 2).peak_bytes


def test_meta_device_accounting_equals_the_cpu_measurement():
    cfg = tiny_deeplab_cfg(split_points=['layer2.1'], depth=50)
    batch = make_batch(2, 96, 96)
    model = build_model(cfg)
    with SavedTensorMeter() as cpu:
        model.train_step(batch, InfoProOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))
    from mmengine.config import ConfigDict
    from mmseg.registry import MODELS
    with torch.device('meta'):
        meta_model = MODELS.build(ConfigDict(cfg))  # no init_weights: there is no data
    meta_model.to('meta')  # also points the data preprocessor at the meta device
    meta_batch = dict(inputs=[x.to('meta') for x in batch['inputs']],
                      data_samples=[s.to('meta') for s in batch['data_samples']])
    with meta_masks_select_all(), SavedBytesMeter() as meta:
        meta_model.train_step(meta_batch,
                              InfoProOptimWrapper(torch.optim.SGD(meta_model.parameters(), lr=0.1)))
    assert meta.peak_saved_bytes == cpu.peak_bytes


def test_budget_search_and_a_budget_too_small(tiny_config):
    profile = profile_model(tiny_deeplab_cfg(split_points=[], depth=50), (128, 128), 2)
    e2e = plan_splits(profile, 1)
    plan, _ = fit_budget(profile, e2e.peak_with_state_bytes)
    assert plan.num_modules == 1
    plan, _ = fit_budget(profile, e2e.peak_with_state_bytes - 1)
    assert plan.num_modules > 1 and plan.peak_with_state_bytes < e2e.peak_with_state_bytes
    plan, best = fit_budget(profile, 1024)
    assert plan is None and best.peak_with_state_bytes > 1024

    proc = _run([PLAN_SPLITS, tiny_config, '--crop', '96', '96', '--batch', '2',
                 '--budget-gib', '0.000001', '--headroom-gib', '0', '--max-k', '3'])
    assert proc.returncode == 2
    assert 'no configuration (K, checkpointing, AMP) fits a budget of 1e-06 GiB' in proc.stderr
    assert 'smallest achievable peak' in proc.stderr and 'Traceback' not in proc.stderr
    assert 'fits  overhead' in proc.stdout  # the table of candidates is printed first


def test_budget_query_picks_the_cheapest_fitting_configuration():
    from infopro_seg.planning.budget import candidates_for, cheapest_fitting
    cfg = tiny_deeplab_cfg(split_points=[], depth=50)
    profiles = [profile_model(cfg, (96, 64), 2, amp=amp) for amp in (False, True)]
    everything = candidates_for(profiles, budget_bytes=1 << 40, max_modules=4)
    assert len(everything) == 8 and all(c.fits for c in everything)  # K=1..4 x AMP
    chosen = cheapest_fitting(everything)
    # Nothing is cheaper than E2E; AMP is estimated free, so the tie goes to fp32.
    assert (chosen.num_modules, chosen.checkpointed_modules, chosen.amp) == (1, [], False)
    assert chosen.overhead == 0
    # Below every plain (no recomputation) configuration: only checkpointing fits.
    plain = min(plan_splits(profile, k, checkpointed=False).peak_with_state_bytes
                for profile in profiles for k in range(1, 5))
    tight = candidates_for(profiles, budget_bytes=plain - 1, max_modules=4)
    chosen = cheapest_fitting(tight)
    assert chosen.checkpointed_modules and chosen.peak_bytes <= plain - 1
    assert all(c.overhead >= chosen.overhead for c in tight if c.fits)
    # Only the modules that need it recompute: cheaper than recomputing every module.
    everywhere = candidates_for(profiles, plain - 1, max_modules=4, checkpointing='always')
    assert chosen.overhead < min(c.overhead for c in everywhere if c.fits)
    assert cheapest_fitting(candidates_for(profiles, budget_bytes=1024, max_modules=4)) is None


def test_plan_splits_budget_query_prints_the_table_and_the_answer(tiny_config):
    proc = _run([PLAN_SPLITS, tiny_config, '--crop', '96', '96', '--batch', '2',
                 '--budget-gib', '2', '--max-k', '2'])
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = [line for line in proc.stdout.splitlines() if line[:2].strip().isdigit()]
    assert len(table) == 8  # K=1..2 x AMP x stepping each module
    assert 'InfoPro fit for 2 GiB (crop 96x96, batch 2): K=1, split_points=[]' in proc.stdout


def test_plan_splits_cli_prints_points_and_modules(tiny_config):
    proc = _run([PLAN_SPLITS, tiny_config, '--crop', '96', '96', '--batch', '2', '-k', '3'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    from mmengine.config import Config
    profile = profile_model(Config.fromfile(tiny_config).model, (96, 96), 2)
    assert f'split_points={plan_splits(profile, 3).split_points}' in out
    assert 'evenly spaced units' in out and 'largest module' in out


def test_models_do_not_import_the_planning_package():
    import ast
    models = os.path.join(REPO, 'infopro_seg', 'models')
    for folder, _, files in os.walk(models):
        for name in files:
            if not name.endswith('.py'):
                continue
            with open(os.path.join(folder, name)) as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    modules = [('.' * node.level) + (node.module or '')]
                elif isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                else:
                    continue
                assert not any('planning' in m for m in modules), (name, modules)


def test_benchmark_keeps_a_size_divisor_preprocessor_runnable():
    """mmseg's preprocessor pads to `size` or to a multiple of `size_divisor`, never both: the
    benchmark sets the crop as `size` only where the config has no divisor."""
    from mmengine.config import Config
    from infopro_seg.planning.benchmark import method_model_cfg
    for preprocessor, size in ((dict(size_divisor=8), None), (dict(size=(512, 1024)), (96, 64))):
        cfg = Config(dict(model=tiny_deeplab_cfg()))
        cfg.model.data_preprocessor = dict(type='SegDataPreProcessor', **preprocessor)
        for method in ('e2e', 'infopro-k2'):
            model, _ = method_model_cfg(cfg, method, (96, 64), 2)
            assert model['data_preprocessor'].get('size') == size, (preprocessor, method)


def test_a_mixed_checkpointing_method_recomputes_only_its_modules():
    from mmengine.config import Config
    from infopro_seg.planning.benchmark import method_model_cfg, method_optim_wrapper_cfg
    cfg = Config(dict(model=tiny_deeplab_cfg(split_points=[], depth=50)))
    model, _ = method_model_cfg(cfg, 'infopro-k4+cp3,4+step', (96, 64), 2)
    assert model['checkpointing'] == [None, None, True, True]
    assert len(model['backbone']['split_points']) == 3
    assert method_optim_wrapper_cfg(cfg, False, 'cpu', step=True)['step_each_module'] is True
    build_model(model)


def test_plans_of_the_shipped_configs_are_unchanged():
    """The planner's cuts and module costs for the shipped configs (plain, AMP, checkpointed)
    equal the figures pinned in tests/data/planner_plans.json."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from infopro_seg.planning import config_optimizer
    with open(os.path.join(REPO, 'tests', 'data', 'planner_plans.json')) as f:
        pinned = json.load(f)
    for key, rows in pinned.items():
        path, crop, batch, amp, cp = key.split('|')
        cfg = Config.fromfile(os.path.join(REPO, path))
        init_default_scope('mmseg')
        model = cfg.model.to_dict()
        if cp != 'cp=None':
            model['checkpointing'] = True
        profile = profile_model(model, tuple(int(v) for v in crop.split('x')),
                                int(batch[1:]), 'meta', config_optimizer(cfg),
                                amp=amp == 'amp=True')
        for k, row in rows.items():
            plan = plan_splits(profile, int(k))
            assert plan.split_points == row['split_points'], (key, k)
            assert [m['total_bytes'] for m in plan.modules] == row['totals'], (key, k)
            assert plan.state_bytes == row['state'], (key, k)
