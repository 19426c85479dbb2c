"""InfoPro composed with checkpointing, cheaper local heads and AMP."""
import copy

import pytest
import torch
import torch.nn.functional as F

from conftest import build_model, make_batch, tiny_deeplab_cfg
from infopro_seg.engine import DeviceAmpOptimWrapper, InfoProOptimWrapper
from infopro_seg.errors import ConfigError
from infopro_seg.models.utils import CheckpointedUnit, parse_checkpointing
from infopro_seg.utils import SavedTensorMeter

SPLITS = {1: [], 2: ['layer3.0'], 4: ['layer2.0', 'layer3.1', 'layer4.0']}


def cfg_with(k, checkpointing=None, **head_options):
    cfg = tiny_deeplab_cfg(split_points=SPLITS[k])
    cfg['checkpointing'] = checkpointing
    for kind, options in head_options.items():
        cfg['local_heads'][kind].update(options)
    return cfg


class KeepGrads(InfoProOptimWrapper):
    """Backward as OptimWrapper, but no step and no zero_grad: the gradients stay to compare."""

    def step(self, **kwargs):
        pass

    def zero_grad(self, **kwargs):
        pass


def one_step(cfg, meter=None):
    """Build (seed 0), one train_step (dropout seed fixed), gradients and buffers after it."""
    model = build_model(cfg)
    wrapper = KeepGrads(torch.optim.SGD(model.parameters(), lr=0.1))
    torch.manual_seed(7)
    if meter is None:
        model.train_step(make_batch(), wrapper)
    else:
        with meter:
            model.train_step(make_batch(), wrapper)
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    return model, grads, buffers


def count_calls(modules):
    counts = {}
    for name, module in modules.items():
        counts[name] = 0

        def hook(mod, args, output, name=name):
            counts[name] += 1
        module.register_forward_hook(hook)
    return counts


OTHER_GRANULARITIES = dict(backbone=True, decode_head='head', auxiliary_head='head',
                          local_heads='layers')


@pytest.mark.parametrize('k, checkpointing', [(1, True), (2, True), (4, True),
                                              (2, OTHER_GRANULARITIES)])
def test_checkpointing_gives_the_same_gradients_and_running_stats(k, checkpointing):
    """BN in train mode, dropout on (its masks are redrawn identically on recomputation)."""
    _, grads, buffers = one_step(cfg_with(k))
    model = build_model(cfg_with(k, checkpointing=checkpointing))
    assert model.checkpointing == parse_checkpointing(checkpointing)
    # Every region runs twice: forward, then recomputed in its module's backward. The stem's
    # first conv (input: the image) and the first block after each cut (detached input) too.
    watched = {'decode': model.decode_head.bottleneck.conv,
               'aux': model.auxiliary_head.convs[0].conv,
               'stem': model.backbone.stem[0], 'layer4.1': model.backbone.layer4[1].conv1}
    for j, heads in enumerate(model.local_heads):
        watched[f'w{j}'] = heads['reconstruction'].squeeze.conv
        watched[f'psi{j}'] = heads['classifier'].convs[0].conv
    for cut in SPLITS[k]:
        stage, block = cut.split('.')
        following = getattr(model.backbone, stage)[int(block) + 1] if int(block) + 1 < len(
            getattr(model.backbone, stage)) else getattr(model.backbone,
                                                         f'layer{int(stage[-1]) + 1}')[0]
        watched[f'after {cut}'] = following.conv1
    calls = count_calls(watched)
    wrapper = KeepGrads(torch.optim.SGD(model.parameters(), lr=0.1))
    torch.manual_seed(7)
    model.train_step(make_batch(), wrapper)
    assert calls == {name: 2 for name in watched}
    cp_grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    assert cp_grads.keys() == grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(cp_grads[name], grad, rtol=1e-6, atol=1e-9, msg=name)
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, buffers[name]), name


def test_checkpointing_leaves_parameter_names_and_inference_alone():
    plain = build_model(cfg_with(2))
    checkpointed = build_model(cfg_with(2, checkpointing=True))
    assert plain.state_dict().keys() == checkpointed.state_dict().keys()
    assert not any(isinstance(m, CheckpointedUnit) for m in checkpointed.modules())
    plain.eval(), checkpointed.eval()
    data = checkpointed.data_preprocessor(make_batch(), False)
    with torch.no_grad():
        torch.testing.assert_close(checkpointed.predict(data['inputs'], data['data_samples'])[0]
                                   .seg_logits.data,
                                   plain.predict(data['inputs'], data['data_samples'])[0]
                                   .seg_logits.data)


def test_config_with_cp_blocks_update_running_stats_once():
    """mmseg's own backbone.with_cp double-updates BN running stats; the segmentor guards it."""
    cfg = cfg_with(2)
    with_cp = copy.deepcopy(cfg)
    with_cp['backbone']['with_cp'] = True
    _, grads, buffers = one_step(cfg)
    model, cp_grads, cp_buffers = one_step(with_cp)
    assert len(model._block_guards) == 8  # every BasicBlock of R-18
    for name in grads:
        torch.testing.assert_close(cp_grads[name], grads[name], rtol=1e-6, atol=1e-9)
    assert all(torch.equal(cp_buffers[n], buffers[n]) for n in buffers)
    # Without the guard the recomputation updates them again: the check above can fail.
    unguarded = build_model(with_cp)
    for guard in unguarded._block_guards:
        guard.remove()
    torch.manual_seed(7)
    unguarded.train_step(make_batch(), KeepGrads(torch.optim.SGD(unguarded.parameters(), lr=0.1)))
    changed = [n for n, b in unguarded.named_buffers() if not torch.equal(b, buffers[n])]
    assert any('layer1.0.bn1.running_mean' in n for n in changed)


def test_checkpointing_parts_are_chosen_separately():
    model = build_model(cfg_with(2, checkpointing=dict(decode_head=True, local_heads=True)))
    assert model.checkpointing == dict(backbone=False, decode_head='layers',
                                       auxiliary_head=False, local_heads='head')
    first, last = model.local_modules()
    assert first.checkpoint_heads == ['head', 'head']  # w, psi
    assert last.checkpoint_heads == ['layers', False]  # decode, aux
    assert not any(isinstance(u, CheckpointedUnit) for u in first.backbone_part.units)
    calls = count_calls({'decode': model.decode_head.bottleneck.conv,
                         'decode classifier': model.decode_head.conv_seg,  # not a layer
                         'aux': model.auxiliary_head.convs[0].conv,
                         'psi classifier': model.local_heads[0]['classifier'].conv_seg,
                         'layer4.1': model.backbone.layer4[1].conv1})
    model.train_step(make_batch(), InfoProOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))
    assert calls == {'decode': 2, 'decode classifier': 1, 'aux': 1, 'psi classifier': 2,
                     'layer4.1': 1}


@pytest.mark.parametrize('bad, message', [
    ('yes', "it takes None or False (off), True or 'all'"),
    (dict(backbone=True, necks=True), "unknown part(s) ['necks']"),
    (dict(backbone=1), 'backbone must be one of True, False, got 1'),
    (dict(decode_head='blocks'), "decode_head must be one of True, False, 'head', 'layers'"),
])
def test_bad_checkpointing_switch_names_the_fix(bad, message):
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')
                       .replace('[', r'\[').replace(']', r'\]')):
        build_model(cfg_with(2, checkpointing=bad))


def test_checkpointing_lowers_the_saved_tensor_peak_of_a_k4_step():
    """Why at least a quarter lower. Without checkpointing every conv-norm-ReLU keeps two tensors
    of its output's size (the norm's input, the ReLU's output; the next conv reads the latter),
    and every unit has at least one; with checkpointing a unit keeps only its input, and one unit
    at a time is recomputed. In the peak module (module 1: 3 stem units and 3 blocks) the units
    then keep at most 1/2 + 1/6 = 2/3 of what they kept; the heads are recomputed the same way,
    and the loss tensors (full-resolution logits and targets) are the same in both runs. So the
    peak falls by at least a third of the activations, which are more than 3/4 of the peak here
    (image and loss tensors: well under a quarter), i.e. by more than 1/4."""
    plain, cp = SavedTensorMeter(), SavedTensorMeter()
    one_step(cfg_with(4), plain)
    one_step(cfg_with(4, checkpointing=True), cp)
    assert cp.peak_bytes <= 0.75 * plain.peak_bytes, (cp.peak_bytes, plain.peak_bytes)


# ----------------------------------------------------------------------------- cheaper heads

def test_psi_at_feature_resolution_uses_nearest_labels_and_keeps_ignore():
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    head = MODELS.build(dict(type='LocalClassifierHead', in_channels=8, num_classes=4,
                             channels=8, dropout_ratio=0.0, loss_at_feature_resolution=True,
                             norm_cfg=dict(type='BN'),
                             loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)))
    labels = torch.randint(0, 4, (2, 1, 32, 32))
    labels[:, :, :8] = 255  # an ignored band
    samples = [SegDataSample(gt_sem_seg=PixelData(data=label)) for label in labels]
    logits = torch.randn(2, 4, 8, 8, requires_grad=True)
    loss = head.loss_by_feat(logits, samples)['loss_ce']
    expected_labels = labels[:, 0, ::4, ::4]  # nearest neighbour at stride 4
    assert (expected_labels[:, :2] == 255).all()
    # mmseg's CrossEntropyLoss (avg_non_ignore=False) averages over all pixels.
    expected = F.cross_entropy(logits, expected_labels, ignore_index=255,
                               reduction='none').mean()
    torch.testing.assert_close(loss, expected)
    # The default (the paper's) up-samples the logits to the labels instead.
    head.loss_at_feature_resolution = False
    assert not torch.allclose(head.loss_by_feat(logits, samples)['loss_ce'], expected)


def test_w_with_target_stride_reconstructs_a_downsampled_crop():
    from mmseg.registry import MODELS
    full = MODELS.build(dict(type='ReconstructionHead', in_channels=8, in_stride=8,
                             channels=(8, 4, 4)))
    cheap = MODELS.build(dict(type='ReconstructionHead', in_channels=8, in_stride=8,
                              channels=(8, 4, 4), target_stride=4))
    assert len(full.refine) == 2 and len(cheap.refine) == 0
    feature = torch.randn(2, 8, 4, 8)
    image = torch.rand(2, 3, 32, 64)
    logits = cheap(feature)
    assert logits.shape == (2, 3, 8, 16)
    expected = F.binary_cross_entropy_with_logits(logits, F.avg_pool2d(image, 4))
    torch.testing.assert_close(cheap.loss(feature, image)['loss_recon'], expected)
    assert full(feature).shape == (2, 3, 32, 64)
    with pytest.raises(ValueError, match='target_stride must be a power of two'):
        MODELS.build(dict(type='ReconstructionHead', in_channels=8, in_stride=8,
                          target_stride=16))


def test_cheaper_heads_save_less_and_default_heads_are_unchanged():
    cheap = dict(classifier=dict(loss_at_feature_resolution=True),
                 reconstruction=dict(target_stride=4))
    default, lighter = SavedTensorMeter(), SavedTensorMeter()
    one_step(cfg_with(2), default)
    one_step(cfg_with(2, **cheap), lighter)
    # Module 1 holds the local heads: its full-resolution logits, labels and crops are gone.
    assert lighter.peak_bytes < default.peak_bytes
    model = build_model(cfg_with(2))
    assert model.local_heads[0]['reconstruction'].target_stride == 1
    assert model.local_heads[0]['classifier'].loss_at_feature_resolution is False


# ----------------------------------------------------------------------------- AMP

def amp_step_with_overflow(model, wrapper, overflow_module):
    """One train_step in which the loss of local module ``overflow_module`` (1-based) is inf."""
    head = model.local_modules()[overflow_module - 1].heads[0]
    handle = head.register_forward_hook(lambda mod, args, out: out * float('inf'))
    try:
        model.train_step(make_batch(), wrapper)
    finally:
        handle.remove()


@pytest.mark.parametrize('checkpointing', [None, True])
def test_amp_overflow_in_one_module_skips_the_whole_step_cpu(checkpointing):
    model = build_model(cfg_with(4, checkpointing=checkpointing))
    wrapper = DeviceAmpOptimWrapper(
        device='cpu', dtype='bfloat16',
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    scale = wrapper.loss_scaler.get_scale()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    amp_step_with_overflow(model, wrapper, overflow_module=2)
    assert wrapper.loss_scaler.get_scale() == scale * 0.5
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())
    assert not wrapper.optimizer.state  # no momentum buffer either: the step never ran
    # The next, finite iteration steps every module, at the lowered scale.
    model.train_step(make_batch(seed=1), wrapper)
    assert wrapper.loss_scaler.get_scale() == scale * 0.5
    for module in model.local_modules():
        assert any(not torch.equal(p, before[name]) for name, p in model.named_parameters()
                   if any(p is q for q in module.parameters()))


def test_amp_and_checkpointing_compose_exactly_cpu():
    """Under bfloat16 autocast the recomputation runs under the same autocast state."""
    results = []
    for checkpointing in (None, True):
        model = build_model(cfg_with(4, checkpointing=checkpointing))
        wrapper = DeviceAmpOptimWrapper(device='cpu', dtype='bfloat16',
                                        optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
        torch.manual_seed(7)
        model.train_step(make_batch(), wrapper)
        results.append(dict(model.named_parameters()))
    for name, param in results[0].items():
        torch.testing.assert_close(results[1][name], param, rtol=1e-6, atol=1e-9, msg=name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_amp_overflow_in_one_module_skips_the_whole_step_cuda_fp16():
    from infopro_seg.engine import InfoProAmpOptimWrapper as AmpOptimWrapper
    model = build_model(cfg_with(4, checkpointing=True)).cuda()
    wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1,
                                                        momentum=0.9))
    assert wrapper.cast_dtype is None  # float16 autocast on CUDA
    scale = wrapper.loss_scaler.get_scale()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    amp_step_with_overflow(model, wrapper, overflow_module=3)
    assert wrapper.loss_scaler.get_scale() == scale * 0.5
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())
    model.train_step(make_batch(seed=1), wrapper)
    assert any(not torch.equal(p, before[name]) for name, p in model.named_parameters())


def test_device_amp_wrapper_rejects_bad_arguments():
    param = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ConfigError, match="dtype must be 'float16' or 'bfloat16'"):
        DeviceAmpOptimWrapper(dtype='int8', optimizer=torch.optim.SGD([param], lr=0.1))
    with pytest.raises(ConfigError, match='loss_scale'):
        DeviceAmpOptimWrapper(loss_scale='fixed', optimizer=torch.optim.SGD([param], lr=0.1))
    static = DeviceAmpOptimWrapper(loss_scale=128.0, optimizer=torch.optim.SGD([param], lr=0.1))
    assert static.loss_scaler.get_scale() == 128.0


# ----------------------------------------------------------------------------- configs

@pytest.mark.parametrize('path, crop, amp', [
    ('configs/deeplabv3_r101_infopro-k4-cp_cityscapes.py', (512, 1024), False),
    ('configs/deeplabv3_r101_infopro-k4-cp_cityscapes-1024x2048.py', (1024, 2048), True),
])
def test_checkpointed_configs_build_with_the_switch_on(path, crop, amp):
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from conftest import REPO
    cfg = Config.fromfile(f'{REPO}/{path}')
    cfg.model.pretrained = None
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert model.backbone.num_modules == 4
    assert model.checkpointing == parse_checkpointing('all')
    for module in model.local_modules():
        assert all(isinstance(unit, CheckpointedUnit) for unit in module.backbone_part.units)
        assert all(module.checkpoint_heads)
    assert tuple(cfg.model.data_preprocessor.size) == crop
    assert cfg.train_dataloader.batch_size == 2
    assert (cfg.optim_wrapper.type == 'AmpOptimWrapper') == amp


@pytest.mark.parametrize('checkpointing', [None, True])
def test_emulated_autocast_saves_what_real_autocast_saves(checkpointing):
    """The meta-device AMP estimate's casting rules, checked against torch.autocast on the CPU
    (bfloat16, the dtype CPU autocast runs): the same saved-tensor peak, to the byte."""
    from infopro_seg.utils.meta_autocast import EmulatedAutocast
    peaks = []
    for context in (lambda: torch.autocast('cpu', dtype=torch.bfloat16),
                    lambda: EmulatedAutocast(torch.bfloat16)):
        model = build_model(cfg_with(4, checkpointing=checkpointing))
        wrapper = InfoProOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
        with SavedTensorMeter() as meter, context():
            model.train_step(make_batch(), wrapper)
        peaks.append(meter.peak_bytes)
    fp32 = SavedTensorMeter()
    one_step(cfg_with(4, checkpointing=checkpointing), fp32)
    assert peaks[0] == peaks[1] < fp32.peak_bytes


# ----------------------------------------------------------------------------- benchmark

def test_interleaved_benchmark_names_and_summary():
    from infopro_seg.planning.benchmark.interleaved import (ALL_COMBINATIONS, parse_method,
                                                            summarize)
    assert len(ALL_COMBINATIONS) == 16
    assert parse_method('infopro-k4+cp+amp')[:4] == ('infopro', 4, True, True)
    assert parse_method('amp')[:4] == ('e2e', 1, False, True)
    assert parse_method('e2e+cp+amp')[:4] == ('e2e', 1, True, True)
    assert parse_method('with_cp')[:4] == ('with_cp', 1, False, False)
    assert parse_method('infopro-k4+cp3,4+amp+step') == ('infopro', 4, True, True, (3, 4), True)
    with pytest.raises(ValueError, match='unknown method'):
        parse_method('infopro-k2+amp+cp')
    rows = summarize({'e2e': [(2.0, 4.0), (4.0, 4.0), (3.0, 4.0)],
                      'infopro-k2': [(3.0, 6.0), (3.3, 5.0), (9.0, 7.0)]})
    k2 = rows[1]
    assert (k2['wall_s'], k2['wall_min'], k2['wall_max']) == (3.3, 3.0, 9.0)
    assert k2['wall_ratio'] == pytest.approx(1.1) and k2['cpu_ratio'] == pytest.approx(1.5)


def test_interleaved_benchmark_runs_every_method_each_round(capsys):
    from mmengine.config import Config
    from infopro_seg.planning.benchmark.interleaved import time_interleaved
    cfg = Config(dict(model=tiny_deeplab_cfg(split_points=['layer3.0'])))
    methods = ['e2e', 'with_cp', 'infopro-k2+cp+amp']
    times = time_interleaved(cfg, methods, {1: [], 2: ['layer3.0']}, (32, 32), 2, rounds=2)
    assert {m: len(t) for m, t in times.items()} == {m: 2 for m in methods}
    log = [line.split('] ')[1].split(':')[0] for line in capsys.readouterr().err.splitlines()
           if line.startswith('  [')]
    assert log == methods * 3  # warm-up + 2 rounds, interleaved


@pytest.mark.parametrize('backbone, split', [('mobilenet_v2', 'layer4.0'),
                                             ('resnet_v1c', 'layer2.0')])
def test_checkpointing_other_backbones_and_deeplabv3plus_gives_the_same_gradients(backbone,
                                                                                   split):
    """Units come from the backbone adapter; DeepLab-V3+ reads the low-level output directly."""
    from tiny_models import small_batch, tiny_cfg
    grads = []
    for checkpointing in (None, True):
        cfg = tiny_cfg(backbone=backbone, head='deeplabv3plus', split_points=[split])
        cfg['checkpointing'] = checkpointing
        model = build_model(cfg)
        torch.manual_seed(3)
        model.train_step(small_batch(), KeepGrads(torch.optim.SGD(model.parameters(), lr=0.1)))
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-6, atol=1e-9, msg=name)
