"""The GPU check (tools/analysis_tools/gpu_check.py) in its CPU mode: the same stages as on CUDA,
against the CPU meter, so the script is known to work before a GPU runs it."""
import json
import os
import runpy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from infopro_seg.fileio import is_temp_file
from infopro_seg.planning.benchmark.fit_check import clear_fit_choices, fit_label
from infopro_seg.planning.benchmark.gpu_check import (CHECK_METHODS, call_stage, cpu_suite,
                                                      cuda_suite, format_check_table,
                                                      memory_row, run_gpu_check)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def cpu_check(tmp_path_factory):
    out = tmp_path_factory.mktemp('gpu_check')
    suite = cpu_suite(str(REPO))
    suite.threads = 1
    return suite, out, run_gpu_check(suite, str(out))


@pytest.mark.timeout(300)
def test_cpu_mode_measures_every_method_beside_its_estimate(cpu_check):
    suite, out, report = cpu_check
    rows = report['rows']
    assert [row['method'] for row in rows] == list(CHECK_METHODS)
    for row in rows:
        assert row['figure'] == 'measured', row
        assert row['crop'] == '128x256' and row['batch'] == 2
        # The CPU meter counts what the meta estimate counts: the same bytes.
        assert row['peak_vs_estimate'] == pytest.approx(1.0, abs=0.02), row
        assert row['step_min'] <= row['step_s'] <= row['step_max']
        assert len(row['step_rounds']) == suite.rounds
    by_method = {row['method']: row for row in rows}
    assert by_method['e2e']['step_vs_e2e'] == 1.0
    assert [by_method[m]['num_modules'] for m in CHECK_METHODS] == [1, 1, 1, 2, 4, 4]
    # Checkpointing and AMP on K=4 keep less than K=4 alone, and K=4 less than E2E.
    assert by_method['infopro-k4+cp+amp']['peak_mb'] < by_method['infopro-k4']['peak_mb'] \
        < by_method['e2e']['peak_mb']


def test_cpu_mode_prints_one_table_and_writes_json_atomically(cpu_check):
    suite, out, report = cpu_check
    table = report['table']
    lines = table.splitlines()
    assert lines[0].startswith('| crop | method | K | peak (MiB) | reserved (MiB) | estimate')
    assert sum(line.startswith('| 128x256 |') for line in lines) == len(CHECK_METHODS) + (
        1 if suite.fit_config else 0)
    assert 'CPU meter' in table or 'saved-bytes meter' in table
    saved = json.loads((out / 'gpu_check.json').read_text())
    assert saved['table'] == table and saved['rows'] == report['rows']
    assert saved['machine']['device'] == 'cpu'
    assert (out / 'gpu_check.md').read_text() == table + '\n'
    assert not [name for name in os.listdir(out) if is_temp_file(name)]


def test_cpu_mode_fits_the_demo_net_and_trains_it_within_the_budget(cpu_check):
    """The fit stage: planned for 0.05 GiB (below E2E's peak), trained by the Runner, metered."""
    _, _, report = cpu_check
    fit = report['fit']
    assert 'error' not in fit, fit
    assert fit['num_modules'] > 1 and len(fit['split_points']) == fit['num_modules'] - 1
    assert fit['budget_mb'] == pytest.approx(0.05 * 1024)
    e2e = next(row for row in report['rows'] if row['method'] == 'e2e')
    assert fit['budget_mb'] < e2e['peak_mb']  # the budget forced the cut
    assert fit['planned_peak_mb'] <= fit['budget_mb'] - fit['headroom_mb']
    assert fit['peak_mb'] <= fit['budget_mb']  # the real (metered) peak of the trained run
    assert fit['peak_vs_planned'] == pytest.approx(1.0, abs=0.05)
    assert len(fit['times_s']) == fit['iters'] == 3
    assert 'within the budget' in report['table']
    assert f"| 128x256 | {fit_label(fit)} | {fit['num_modules']} |" in report['table']


@pytest.mark.timeout(120)
def test_isolated_row_equals_the_in_process_row(cpu_check):
    """The CUDA mode's fresh process per method gives the CPU meter's figures unchanged."""
    suite, _, report = cpu_check
    row, error = call_stage(memory_row, (suite, 'infopro-k2', (128, 256)), isolate=True)
    assert error is None
    in_process = next(r for r in report['rows'] if r['method'] == 'infopro-k2')
    assert row['peak_mb'] == in_process['peak_mb']
    assert row['estimated_peak_mb'] == in_process['estimated_peak_mb']


def _fails(message):
    raise ValueError(message)


def test_a_failing_stage_becomes_one_line():
    value, error = call_stage(_fails, ('no such crop\nsecond line', ), isolate=False)
    assert value is None and error == 'ValueError: no such crop'


def test_cuda_table_sets_the_fit_against_the_device():
    rows = [dict(crop='512x1024', method='e2e', num_modules=1, figure='measured', peak_mb=9830.0,
                 reserved_mb=10400.0, estimated_peak_mb=9000.0, peak_vs_estimate=1.092,
                 step_s=0.5, step_min=0.49, step_max=0.52, step_vs_e2e=1.0),
            dict(crop='1024x2048', method='e2e', batch=2, figure='failed',
                 note='killed: out of memory?'),
            dict(crop='1024x2048', method='with_cp', num_modules=1, figure='estimated',
                 peak_mb=30000.0, estimated_peak_mb=30000.0,
                 note='estimate x1.25 exceeds the 40.0 GiB a real run may use')]
    fit = dict(num_modules=2, split_points=['layer3.11'], checkpointing=[False, False], amp=True,
               planned_peak_mb=60000.0, headroom_mb=4096.0, budget_mb=70000.0, describe='',
               crop='1024x2048', batch=2, iters=20, device='cuda', peak_mb=61000.0,
               reserved_mb=66000.0, device_total_mb=81000.0, peak_vs_planned=1.017,
               time_s=1.2, time_min=1.1, time_max=1.3)
    table = format_check_table(rows, fit, 'cuda')
    lines = table.splitlines()
    assert ('| 512x1024 | e2e | 1 | 9830.0 | 10400.0 | 9000.0 | 1.09 | 0.500 | 0.490-0.520 | '
            '1.00 |') in lines
    assert any('e2e (failed: killed: out of memory?)' in line for line in lines)
    assert ('| 1024x2048 | with_cp (not run: estimate x1.25 exceeds the 40.0 GiB a real run may '
            'use) | 1 | - | - | 30000.0 | - |') in table
    assert '| 1024x2048 | fit: K=2 +amp | 2 | 61000.0 | 66000.0 | 60000.0 | 1.02 | 1.200 |' \
        in table
    assert ("fit: real peak 61000.0 MiB = 1.02 x the planned 60000.0 MiB; budget 70000.0 MiB "
            "(headroom 4096.0 MiB); reserved 66000.0 MiB of the device's 81000.0 MiB (fits)") \
        in lines
    assert 'max_memory_allocated' in table
    over = format_check_table([], dict(fit, reserved_mb=82000.0), 'cuda')
    assert 'DOES NOT FIT' in over
    partial = dict(fit, num_modules=3, checkpointing=[True, False, False], step_each_module=True)
    assert fit_label(partial) == 'fit: K=3 +cp[1] +amp +step'
    assert fit_label(dict(partial, checkpointing=[True] * 3, amp=False)) == 'fit: K=3 +cp +step'


def test_the_fit_decides_checkpointing_and_amp_of_the_1024x2048_config():
    cfg = Config.fromfile(str(REPO / 'configs' /
                              'deeplabv3_r101_infopro-k4-cp_cityscapes-1024x2048.py'))
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.model.checkpointing is True
    clear_fit_choices(cfg)
    assert cfg.optim_wrapper.type == 'OptimWrapper' and 'loss_scale' not in cfg.optim_wrapper
    assert cfg.model.checkpointing is None
    assert cfg.optim_wrapper.optimizer.type == 'SGD'  # the rest of the wrapper stays


def test_cuda_suite_measures_r101_at_both_crops():
    suite = cuda_suite(str(REPO))
    assert suite.crops == [(512, 1024), (1024, 2048)] and suite.batch == 2
    assert suite.isolate and suite.fit_budget == 'auto' and suite.fit_iters == 20
    assert set(suite.methods) == set(CHECK_METHODS)
    for method, config in suite.configs.items():
        assert Path(config).is_file()
        assert ('infopro-k4' in config) == ('k4' in method)


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the refusals without CUDA')
@pytest.mark.parametrize('argv, message', [
    (['--device', 'cuda'], 'error: --device cuda: no CUDA device here'),
    (['--fit-budget', 'auto'], 'error: --fit-budget auto reads the free memory of a CUDA device'),
])
def test_tool_refuses_cuda_settings_without_a_gpu_in_one_line(monkeypatch, capsys, argv,
                                                               message):
    monkeypatch.setattr('sys.argv', ['gpu_check.py', *argv])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / 'tools/analysis_tools/gpu_check.py'), run_name='__main__')
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and '\n' not in err
