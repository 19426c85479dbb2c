"""A user's mistakes end the tools with one line and exit status 2; bugs keep their traceback.

The library checks run in-process; the tools run as a user runs them: one subprocess runs many
invocations of the tool scripts (``runpy``, one mmseg import for all), and a few end-to-end
subprocesses check what a single invocation prints.
"""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmseg.registry import MODELS, TRANSFORMS

from infopro_seg.datasets import generate_synthetic_cityscapes
from infopro_seg.datasets.cityscapes_conversion import check_labels_converted, convert_cityscapes
from infopro_seg.engine.cli import DEBUG_ENV, UsageError, enable_amp, error_line, run_cli
from infopro_seg.engine.config_check import check_component_keys, check_config
from infopro_seg.engine.method_check import check_benchmark_methods
from infopro_seg.errors import ConfigError
from infopro_seg.models.utils.checkpointing import parse_checkpointing

from conftest import tiny_deeplab_cfg
from run_configs import NARROW_DEMO

REPO = Path(__file__).resolve().parents[1]

TINY_CONFIG = NARROW_DEMO

# Runs each ``[tool, *args]`` of the JSON list in argv[1] as ``python tool args`` would, in this
# one process, and writes ``[{code, stderr}]`` to argv[2].
DRIVER = textwrap.dedent("""
    import contextlib, io, json, runpy, sys, traceback
    argv_file, out_file = sys.argv[1:3]
    results = []
    for argv in json.load(open(argv_file)):
        sys.argv = list(argv)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                runpy.run_path(argv[0], run_name='__main__')
                code = 0
            except SystemExit as exit:
                code = exit.code if isinstance(exit.code, int) else 1
            except BaseException:
                traceback.print_exc()
                code = 1
        results.append(dict(code=code, stderr=err.getvalue()))
    json.dump(results, open(out_file, 'w'))
""")


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """A tiny synthetic Cityscapes set, unconverted and converted, and a config on each."""
    root = tmp_path_factory.mktemp('cli_errors')
    raw = root / 'raw'
    generate_synthetic_cityscapes(raw, num_train=2, num_val=1, height=64, width=128)
    converted = root / 'converted'
    generate_synthetic_cityscapes(converted, num_train=2, num_val=1, height=64, width=128)
    convert_cityscapes(converted, nproc=1, progress=False)
    configs = {}
    for name, data_root in (('ok', converted), ('raw', raw)):
        configs[name] = root / f'tiny_{name}.py'
        configs[name].write_text(TINY_CONFIG.format(repo=REPO, data_root=data_root))
    return root, raw, configs


def _tool(*args):
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


# In-process: run_cli, the checks and the messages ------------------------------------------

def test_run_cli_prints_one_line_and_exits_with_the_errors_code(capsys, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)

    def mistake():
        raise ConfigError('model.x: bad value; Fix: set model.x=1')

    with pytest.raises(SystemExit) as exit:
        run_cli(mistake, argv=[])
    assert exit.value.code == 2
    assert capsys.readouterr().err == 'error: model.x: bad value; Fix: set model.x=1\n'
    assert UsageError is ConfigError

    with pytest.raises(SystemExit) as exit:
        run_cli(mistake, argv=['--debug'])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('Traceback') and 'ConfigError: model.x: bad value' in err

    monkeypatch.setenv(DEBUG_ENV, '1')
    with pytest.raises(SystemExit):
        run_cli(mistake, argv=[])
    assert 'Traceback' in capsys.readouterr().err


def test_run_cli_lets_a_bug_through_and_returns_the_mains_code(monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)

    def bug():
        raise RuntimeError('internal invariant broken')

    with pytest.raises(RuntimeError, match='internal invariant broken'):
        run_cli(bug, argv=[])
    with pytest.raises(SystemExit) as exit:
        run_cli(lambda: 1, argv=[])
    assert exit.value.code == 1


def test_a_build_error_keeps_its_type_through_mmengines_registry():
    cfg = tiny_deeplab_cfg(split_points=['layer9.3'])
    with pytest.raises(ConfigError) as error:
        MODELS.build(ConfigDict(cfg))
    # built three levels deep (segmentor -> backbone -> split points), it arrives as raised
    assert type(error.value) is ConfigError
    line = error_line(error.value)
    assert line.startswith("split point 'layer9.3' names no unit of this backbone")
    assert 'class `' not in line and '\n' not in line
    assert error_line(ConfigError('two\n  lines')) == 'two lines'


def test_unknown_keys_and_types_name_the_closest_valid_one():
    with pytest.raises(ConfigError, match="model.local_loss_weight: InfoProEncoderDecoder takes "
                       "no argument 'local_loss_weight'; did you mean local_loss_weights?"):
        check_component_keys(dict(type='InfoProEncoderDecoder', local_loss_weight=[(1, 1)]),
                             MODELS, 'model')
    with pytest.raises(ConfigError, match="did you mean split_points?"):
        check_component_keys(dict(type='InfoProResNet', split_point=['layer3.0']), MODELS,
                             'model.backbone')
    with pytest.raises(ConfigError, match="'InfoProResNt' is not a registered model; did you "
                       'mean InfoProResNet?'):
        check_component_keys(dict(type='InfoProResNt'), MODELS, 'model.backbone')
    with pytest.raises(ConfigError, match=r"pipeline\[3\].cat_max_ratios: RandomCrop takes no "
                       "argument 'cat_max_ratios'; did you mean cat_max_ratio?"):
        check_component_keys(dict(type='RandomCrop', crop_size=(8, 8), cat_max_ratios=0.75),
                             TRANSFORMS, 'train_dataloader.dataset.pipeline[3]')
    # keys the segmentor fills in for a local head are not the user's mistake
    check_component_keys(dict(type='ReconstructionHead', in_stride=8), MODELS,
                         'model.local_heads.reconstruction')


def test_checkpointing_error_lists_every_accepted_value():
    with pytest.raises(ConfigError) as error:
        parse_checkpointing('yes')
    message = str(error.value)
    for accepted in ('None', 'False', 'True', "'all'", 'dict(', 'backbone', 'decode_head',
                     'auxiliary_head', 'local_heads'):
        assert accepted in message
    with pytest.raises(ConfigError, match="model.checkpointing.decode_head must be one of True, "
                       "False, 'head', 'layers', got 'yes'"):
        parse_checkpointing(dict(decode_head='yes'))


def test_unconverted_cityscapes_names_the_converter(data):
    _, raw, _ = data
    with pytest.raises(ConfigError, match=r'label images .*_gtFine_labelTrainIds.png.* are '
                       r'missing .* Fix: python tools/dataset_converters/cityscapes.py'):
        check_labels_converted(raw, 'gtFine/train')


@pytest.mark.skipif(torch.cuda.is_available(), reason='--amp is valid with a GPU')
def test_amp_without_a_gpu_says_what_to_do(data):
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper')))
    with pytest.raises(ConfigError, match='drop --amp, or .*optim_wrapper.type='
                       'DeviceAmpOptimWrapper'):
        enable_amp(cfg)
    _, _, configs = data
    cfg = Config.fromfile(configs['ok'])
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    with pytest.raises(ConfigError, match='DeviceAmpOptimWrapper'):
        check_config(cfg, training=True)


def test_impossible_benchmark_methods_are_refused(data):
    _, _, configs = data
    cfg = Config.fromfile(configs['ok'])
    check_benchmark_methods(cfg, ['e2e', 'infopro-k2', 'infopro-k11'], (64, 64), 2)
    with pytest.raises(ConfigError, match='--methods infopro-k99: K=99 local modules, but '
                       'InfoProResNet has 11 units .* use infopro-k1 .. infopro-k11'):
        check_benchmark_methods(cfg, ['e2e', 'infopro-k99'], (64, 64), 2)
    cfg.model = dict(cfg.model, type='EncoderDecoder')
    with pytest.raises(ConfigError, match='--methods infopro-k2: .*needs an InfoPro config'):
        check_benchmark_methods(cfg, ['infopro-k2'], (64, 64), 2)


# Plots -----------------------------------------------------------------------------------

def _labels_in_view(ax, axis):
    """Non-empty tick labels whose ticks lie inside the axis' view."""
    low, high = sorted(ax.get_ylim() if axis == 'y' else ax.get_xlim())
    ticks = ax.get_yticks() if axis == 'y' else ax.get_xticks()
    labels = ax.get_yticklabels() if axis == 'y' else ax.get_xticklabels()
    return [label.get_text() for tick, label in zip(ticks, labels)
            if low <= tick <= high and label.get_text().strip()]


def _rendered(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig).draw()
    return fig.axes[0]


@pytest.mark.parametrize('peaks', [(1800, 8582, 1300, 3237), (100, 90000, 50, 20000)])
def test_memory_vs_crop_has_numbers_on_both_axes(peaks):
    from infopro_seg.planning.benchmark.plot import draw_memory_vs_crop
    rows = [dict(method=method, crop=crop, batch=2, figure='measured', peak_mb=peak)
            for (method, crop), peak in zip([('e2e', '256x512'), ('e2e', '512x1024'),
                                             ('infopro-k4', '256x512'),
                                             ('infopro-k4', '512x1024')], peaks)]
    ax = _rendered(draw_memory_vs_crop(rows, 'R-101'))
    assert _labels_in_view(ax, 'x') == ['256x512', '512x1024']
    assert len(_labels_in_view(ax, 'y')) >= 2
    assert ax.get_xlabel() and ax.get_ylabel()


def test_memory_vs_time_and_miou_vs_memory_have_numbers_on_both_axes():
    from infopro_seg.planning.benchmark.interleaved import draw_memory_vs_time
    from infopro_seg.study.report import draw_miou_vs_memory
    rows = [dict(method='e2e', cpu_ratio=1.0), dict(method='infopro-k4', cpu_ratio=1.15)]
    time_ax = _rendered(draw_memory_vs_time(rows, {'e2e': 1.0, 'infopro-k4': 0.38}, 'R-101'))
    summaries = [dict(method='e2e', K=1, runs=3, peak_mb=181.6, miou_mean=26.6, miou_std=0.34),
                 dict(method='greedy', K=4, runs=3, peak_mb=92.0, miou_mean=26.4,
                      miou_std=0.08)]
    miou_ax = _rendered(draw_miou_vs_memory(summaries, 'study'))
    for ax in (time_ax, miou_ax):
        assert len(_labels_in_view(ax, 'x')) >= 2 and len(_labels_in_view(ax, 'y')) >= 2
        assert ax.get_xlabel() and ax.get_ylabel()
    assert draw_miou_vs_memory([dict(method='e2e', runs=0, failed=1)], 'study') is None


# Through the tools -----------------------------------------------------------------------

@pytest.mark.timeout(300)
def test_each_mistake_through_the_tools_is_one_line_and_exit_2(data, tmp_path):
    root, raw, configs = data
    ok, work = str(configs['ok']), str(tmp_path / 'work')
    train = ['tools/train.py', ok, '--work-dir', work]
    cases = [  # (argv, what the line must say)
        (train + ['--cfg-options', "model.backbone.split_points=['layer9.3']"],
         "split point 'layer9.3' names no unit of this backbone; valid split points: "),
        (train + ['--cfg-options', "model.backbone.split_points=['layer4.1']"],
         "split point 'layer4.1' is the last unit of the backbone"),
        (train + ['--cfg-options', 'model.local_loss_weight=[(1.0,1.0)]'],
         'did you mean local_loss_weights?'),
        (train + ['--cfg-options', 'model.checkpointing=yes'],
         "model.checkpointing='yes' is not a checkpointing setting; it takes None or False"),
        (train + ['--cfg-options', 'model.local_loss_weights=[(1.0,1.0),(1.0,1.0)]'],
         'local_loss_weights has 2 (lambda1, lambda2) pairs'),
        (train + ['--cfg-options', 'model.local_heads.reconstruction.loss_type=l1'],
         "loss_type must be 'bce' or 'mse', got 'l1'"),
        (train + ['--cfg-options', 'optim_wrapper.optimizer.momentun=0.9'],
         'optim_wrapper.optimizer.momentun: SGD takes no argument'),
        (['tools/train.py', str(configs['raw']), '--work-dir', work],
         'Fix: python tools/dataset_converters/cityscapes.py'),
        (['tools/test.py', ok, str(root / 'none.pth'), '--work-dir', work, '--cfg-options',
          "model.backbone.split_points=['layer9.3']"], "split point 'layer9.3'"),
        (['tools/misc/publish_model.py', str(root / 'none.pth'), str(tmp_path / 'out.pth')],
         'none.pth'),
        (['tools/analysis_tools/benchmark_memory.py', ok, '--crop', '64', '64', '--methods',
          'e2e', 'infopro-k99', '--out', work], '--methods infopro-k99: K=99 local modules'),
        (['tools/analysis_tools/compare_methods.py', ok, '--methods', 'e2e',
          '--cfg-options', 'model.type=EncoderDecoder'],
         "the study compares InfoPro methods and needs model.type='InfoProEncoderDecoder'"),
        (['tools/analysis_tools/plan_splits.py', ok, '--budget-gb', '0'],
         'must be a positive number of GiB, got 0'),
    ]
    if not torch.cuda.is_available():
        cases.append((train + ['--amp'], 'drop --amp, or for bfloat16 autocast on the CPU use '
                      '--cfg-options optim_wrapper.type=DeviceAmpOptimWrapper'))
    debug = train + ['--cfg-options', 'model.checkpointing=yes', '--debug']
    argv_file, out_file = tmp_path / 'argv.json', tmp_path / 'out.json'
    argv_file.write_text(json.dumps([argv for argv, _ in cases] + [debug]))
    driver = subprocess.run([sys.executable, '-c', DRIVER, argv_file, out_file], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert driver.returncode == 0, driver.stderr[-3000:]
    results = json.loads(out_file.read_text())
    for (argv, expected), result in zip(cases, results):
        lines = result['stderr'].strip().splitlines()
        assert result['code'] == 2, (argv, result['stderr'][-2000:])
        assert 'Traceback' not in result['stderr'], (argv, result['stderr'][-2000:])
        assert lines and 'error: ' in lines[-1] and expected in lines[-1], (argv, lines)
        assert 'class `' not in lines[-1]
    assert results[-1]['code'] == 2
    assert 'Traceback' in results[-1]['stderr']
    assert 'ConfigError' in results[-1]['stderr']


@pytest.mark.timeout(300)
def test_a_config_mistake_stops_before_the_config_dump(data, tmp_path):
    _, _, configs = data
    result = _tool('tools/train.py', configs['ok'], '--work-dir', tmp_path, '--cfg-options',
                   "model.backbone.split_points=['layer9.3']")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: split point 'layer9.3'")
    assert 'Traceback' not in result.stderr
    assert 'Config:' not in result.stdout + result.stderr  # the Runner never started


@pytest.mark.timeout(300)
def test_a_failed_benchmark_method_gives_a_non_zero_exit(data, tmp_path):
    _, _, configs = data
    # batch 1: the ASPP image pooling's BatchNorm sees one value per channel and fails; the
    # method is valid, so it runs (in its own process) and fails there.
    result = _tool('tools/analysis_tools/benchmark_memory.py', configs['ok'], '--crop', '32',
                   '64', '--batch', '1', '--meta', 'always', '--methods', 'e2e', '--out',
                   tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert 'error: 1 of 1 benchmark runs failed: e2e at 32x64' in result.stderr
    assert (tmp_path / 'results.json').exists()
