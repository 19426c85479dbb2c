"""The accuracy study (tool and library) on a tiny run: its table and files, its errors."""
import ast
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
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

    # The runs trained one after the other in the tool's process, each with mmengine instances
    # (logger, visualizer, message hub) of its own: every run's folder holds its own log and
    # exactly its own records (the losses logged at iteration 2, one validation).
    logs = {method: Path(row['log']) for method, row in rows.items()}
    assert all(log.is_file() and log.is_relative_to(work / method / 'seed0')
               for method, log in logs.items())
    for method in rows:
        scalars, = (work / method / 'seed0').glob('*/vis_data/scalars.json')
        records = [json.loads(line) for line in scalars.read_text().splitlines()]
        assert [r['iter'] for r in records if 'loss' in r] == [2], method
        assert [r['mIoU'] for r in records if 'mIoU' in r] == [rows[method]['miou']], method

    # --reuse continues a study: finished runs are read back, not trained again.
    log = logs['greedy']
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
        with torch.device('meta'):  # the structure is checked, nothing runs
            model = MODELS.build(cfg.model)
        assert model.backbone.num_modules == expected_k.get(name, 4), name
        assert cfg.train_dataloader.dataset.data_root == '/data'
        assert cfg.param_scheduler[0].end == 10 and cfg.val_evaluator.type == 'PerClassIoUMetric'
    # A method's hooks join the config's own (the safe-loading hook stays).
    anneal = run_config(str(STUDY_CFG), 'infopro-anneal-half', 0, None, None)
    assert [hook['type'] for hook in anneal.custom_hooks] == [
        'SafeCheckpointLoadingHook', 'LocalLossWeightAnnealHook']
    assert HOOKS.build(anneal.custom_hooks[-1]).end == 0.5
    with torch.device('meta'):
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


def test_the_study_trains_through_the_function_it_is_given(tmp_path, capsys):
    """``train`` gets each run's dumped config and folder; a run that raises is a failed row and
    the study goes on."""
    from infopro_seg.study.study import run_study
    calls = []

    def train(config_path, work_dir):
        cfg = Config.fromfile(config_path)
        calls.append((Path(config_path).relative_to(tmp_path).as_posix(), work_dir,
                      cfg.randomness.seed, cfg.train_cfg.max_iters))
        raise RuntimeError('no training here')

    result = run_study(str(STUDY_CFG), ['e2e', 'greedy'], [3], str(tmp_path), iters=5,
                       data_root=str(tmp_path / 'data'), memory=None, train=train)
    assert calls == [('e2e/seed3/config.py', str(tmp_path / 'e2e' / 'seed3'), 3, 5),
                     ('greedy/seed3/config.py', str(tmp_path / 'greedy' / 'seed3'), 3, 5)]
    assert result['failed'] == 2
    assert [(row['method'], row['status'], row['error']) for row in result['rows']] == [
        ('e2e', 'failed', 'RuntimeError: no training here'),
        ('greedy', 'failed', 'RuntimeError: no training here')]
    assert 'greedy seed 3 FAILED (RuntimeError: no training here)' in capsys.readouterr().out
    saved = json.loads((tmp_path / 'results.json').read_text())
    assert [row['status'] for row in saved['rows']] == ['failed', 'failed']


def test_a_run_failing_in_its_own_process_raises_child_process_error(tmp_path):
    from infopro_seg.study.runs import run_config, write_run_config
    from infopro_seg.study.training import train_in_spawned_process
    cfg = run_config(str(STUDY_CFG), 'greedy', 0, 1, str(tmp_path / 'no_data'))
    config_path = write_run_config(cfg, str(tmp_path / 'run'))
    with pytest.raises(ChildProcessError,
                       match=f"the training process of {tmp_path / 'run'} exited with code 1"):
        train_in_spawned_process(config_path, str(tmp_path / 'run'))


def test_the_library_never_shells_out():
    """infopro_seg starts no commands (tools/ or any other): no subprocess, no os.system."""
    offenders = []
    for path in sorted((REPO / 'infopro_seg').rglob('*.py')):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or '']
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    node.value.id == 'os':
                names = [f'os.{node.attr}']
            else:
                continue
            offenders += [f'{path.relative_to(REPO)}: {name}' for name in names
                          if name in ('subprocess', 'os.system', 'os.popen')
                          or name.startswith('os.exec') or name.startswith('os.spawn')]
    assert offenders == []
