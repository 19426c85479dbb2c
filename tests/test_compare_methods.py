"""The accuracy study tool (issue 12) on a tiny run: its table and files, its errors."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / 'tools' / 'analysis_tools' / 'compare_methods.py'
STUDY_CFG = REPO / 'configs' / 'study' / 'deeplabv3_r18_k4_synthetic.py'

TINY_CONFIG = f"""
_base_ = '{REPO / 'configs' / 'demo' / 'deeplabv3_r18_infopro_synthetic.py'}'
crop_size = (32, 64)
scale = (128, 64)
model = dict(data_preprocessor=dict(size=crop_size),
             backbone=dict(base_channels=8, stem_channels=8),
             decode_head=dict(in_channels=64, channels=8),
             auxiliary_head=dict(in_channels=32, channels=8),
             local_heads=dict(reconstruction=dict(channels=(8, 4, 4)),
                              classifier=dict(channels=8)))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(
    pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
              dict(type='RandomCrop', crop_size=crop_size),
              dict(type='PackSegInputs')]))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(
    pipeline=[dict(type='LoadImageFromFile'), dict(type='Resize', scale=scale, keep_ratio=True),
              dict(type='LoadAnnotations'), dict(type='PackSegInputs')]))
test_dataloader = val_dataloader
"""


def run_tool(*args, cwd=REPO):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.timeout(600)
def test_tiny_study_writes_its_table_and_files(tmp_path):
    config = tmp_path / 'tiny.py'
    config.write_text(TINY_CONFIG)
    work = tmp_path / 'study'
    result = run_tool(config, '--methods', 'e2e', 'greedy', 'infopro-anneal', '--iters', '2',
                      '--seeds', '0', '--work-dir', work, '--data-root', tmp_path / 'data',
                      '--num-train', '4', '--num-val', '2', '--image-size', '64', '128')
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert 'generated a synthetic Cityscapes set' in output
    table = output[output.index('method'):]
    assert 'e2e' in table and 'greedy' in table and 'loss m1' in table and 'peak MiB' in table

    results = json.loads((work / 'results.json').read_text())
    rows = {row['method']: row for row in results['rows']}
    assert set(rows) == {'e2e', 'greedy', 'infopro-anneal'}
    assert rows['e2e']['K'] == 1 and rows['greedy']['K'] == 2
    for row in rows.values():
        assert row['status'] == 'ok' and row['iters'] == 2
        assert 0 <= row['miou'] <= 100
        assert len(row['class_iou']) == 19  # per-class IoU from the study's metric
        assert row['peak_mb'] > 0 and row['peak_counted_on'] in ('meta', 'cpu')
    # Greedy trains module 1 by psi alone; E2E has one module (decode + aux).
    assert set(rows['greedy']['module_losses']) == {'m1', 'decode', 'aux'}
    assert 'm1.loss_ce' in rows['greedy']['losses'] and 'm1.loss_recon' not in rows[
        'greedy']['losses']
    assert set(rows['e2e']['module_losses']) == {'decode', 'aux'}
    # K=2 keeps only module 2's activations alive at once: less memory than E2E.
    assert rows['greedy']['peak_mb'] < rows['e2e']['peak_mb']
    # Each run trained with its own, dumped config.
    e2e_cfg = Config.fromfile(str(work / 'e2e' / 'seed0' / 'config.py'))
    assert e2e_cfg.model.backbone.split_points == []
    assert e2e_cfg.randomness.seed == 0 and e2e_cfg.train_cfg.max_iters == 2
    with open(work / 'summary.csv') as f:
        summary = list(csv.DictReader(f))
    assert [s['method'] for s in summary] == ['e2e', 'greedy', 'infopro-anneal']
    # The anneal hook ran inside the Runner: lambda1 logged below the config's 1.5 (iteration 1
    # of 2 trains at 0.75), both module-1 losses trained.
    scalars = next((work / 'infopro-anneal' / 'seed0').glob('*/vis_data/scalars.json'))
    logged = [json.loads(line) for line in scalars.read_text().splitlines()]
    lambda1 = [entry['m1.lambda1'] for entry in logged if 'm1.lambda1' in entry]
    assert lambda1 and all(0 < value < 1.5 for value in lambda1)
    assert {'m1.loss_recon', 'm1.loss_ce'} <= set(rows['infopro-anneal']['losses'])
    assert (work / 'runs.csv').is_file() and (work / 'table.txt').is_file()
    assert (work / 'miou_vs_memory.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'

    # --reuse continues a study: finished runs are read back, not trained again.
    log = work / 'greedy' / 'seed0' / 'train.log'
    before = log.stat().st_mtime_ns
    again = run_tool(config, '--methods', 'e2e', 'greedy', '--iters', '2', '--seeds', '0',
                     '--work-dir', work, '--data-root', tmp_path / 'data', '--reuse',
                     '--memory', 'none')
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert again.stdout.count('reusing') == 2 and 'training' not in again.stdout
    assert log.stat().st_mtime_ns == before
    reused = {row['method']: row for row in json.loads((work / 'results.json').read_text())['rows']}
    assert reused['greedy']['miou'] == rows['greedy']['miou']
    assert reused['e2e']['peak_mb'] == rows['e2e']['peak_mb']


def test_unknown_method_fails_clearly(tmp_path):
    result = run_tool(STUDY_CFG, '--methods', 'e2e', 'magic', '--work-dir', tmp_path)
    assert result.returncode == 2
    assert "unknown method(s) ['magic']" in result.stderr and 'supcon' in result.stderr


def test_missing_config_fails_clearly(tmp_path):
    result = run_tool(tmp_path / 'nope.py', '--work-dir', tmp_path)
    assert result.returncode == 2 and 'not found' in result.stderr


def test_every_method_builds_on_the_study_config():
    import infopro_seg  # noqa: F401
    from mmseg.registry import HOOKS, MODELS
    from mmseg.utils import register_all_modules

    from infopro_seg.study.methods import METHODS
    from infopro_seg.study.runs import run_config
    register_all_modules(init_default_scope=True)
    expected_k = {'e2e': 1}
    for name in METHODS:
        cfg = run_config(str(STUDY_CFG), name, seed=1, iters=10, data_root='/data')
        model = MODELS.build(cfg.model)
        assert model.backbone.num_modules == expected_k.get(name, 4), name
        assert cfg.train_dataloader.dataset.data_root == '/data'
        assert cfg.param_scheduler[0].end == 10 and cfg.val_evaluator.type == 'PerClassIoUMetric'
    # A method's hooks join the config's own (the safe-loading hook stays).
    anneal = run_config(str(STUDY_CFG), 'infopro-anneal-half', 0, None, None)
    assert [hook['type'] for hook in anneal.custom_hooks] == [
        'SafeCheckpointLoadingHook', 'LocalLossWeightAnnealHook']
    assert HOOKS.build(anneal.custom_hooks[-1]).end == 0.5
    paper = MODELS.build(run_config(str(STUDY_CFG), 'infopro-paper', 0, None, None).model)
    assert paper.loss_weights == [(5.0, 0.0), (2.75, 0.5), (0.5, 1.0)]
    assert 'classifier' not in paper.local_heads[0]  # lambda2 = 0 builds no psi


def test_peak_memory_on_meta_equals_cpu_and_supcon_falls_back_to_cpu():
    import infopro_seg  # noqa: F401
    from infopro_seg.study.runs import peak_training_mb, run_config
    options = {'train_dataloader.batch_size': 2, 'crop_size': (32, 64)}  # pooled BN needs 2
    # E2E runs on meta; psi's cross-entropy with avg_non_ignore calls .item(), which meta cannot.
    e2e = run_config(str(STUDY_CFG), 'e2e', 0, 1, None, options)
    assert peak_training_mb(e2e, 'meta') == (peak_training_mb(e2e, 'cpu')[0], 'meta')
    supcon = run_config(str(STUDY_CFG), 'supcon', 0, 1, None, options)
    megabytes, counted_on = peak_training_mb(supcon, 'meta')
    assert counted_on == 'cpu' and megabytes > 0
