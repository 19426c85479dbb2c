"""The local training step: isolation, memory, equivalences with mmseg/mmengine, heads, errors."""
import copy
import warnings

import pytest
import torch
from infopro_seg.engine import InfoProAmpOptimWrapper, InfoProOptimWrapper

from conftest import build_model, make_batch, tiny_deeplab_cfg
from infopro_seg.models.segmentors.infopro_encoder_decoder import SummedLocalLossWarning
from infopro_seg.utils import SavedTensorMeter


def sgd_wrapper(model, lr=0.1, momentum=0.0, **kwargs):
    return InfoProOptimWrapper(torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum),
                               **kwargs)


def module_param_names(model):
    """Names of the parameters each local module trains."""
    ids = [{id(p) for p in module.parameters()} for module in model.local_modules()]
    return [{name for name, p in model.named_parameters() if id(p) in group} for group in ids]


def step_once(cfg, batch_seed=0):
    model = build_model(cfg)
    torch.manual_seed(123)
    model.train_step(make_batch(seed=batch_seed), sgd_wrapper(model))
    return model


def test_every_parameter_belongs_to_exactly_one_module():
    model = build_model(tiny_deeplab_cfg(split_points=['layer2.0', 'layer3.1', 'layer4.0']))
    groups = module_param_names(model)
    assert len(groups) == 4
    assert sum(len(g) for g in groups) == len(set().union(*groups))
    assert set().union(*groups) == {name for name, _ in model.named_parameters()}


def test_later_loss_weight_leaves_earlier_module_updates_bit_identical():
    cfg = tiny_deeplab_cfg(split_points=['layer2.1'])
    changed = copy.deepcopy(cfg)
    changed['decode_head']['loss_decode']['loss_weight'] = 3.0
    changed['auxiliary_head']['loss_decode']['loss_weight'] = 0.1
    a, b = step_once(cfg), step_once(changed)
    first, second = module_param_names(a)
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert all(torch.equal(pa[n], pb[n]) for n in first)
    assert not all(torch.equal(pa[n], pb[n]) for n in second)  # the change did act


def test_earlier_loss_weight_leaves_later_module_updates_bit_identical():
    cfg = tiny_deeplab_cfg(split_points=['layer2.1'])
    changed = tiny_deeplab_cfg(split_points=['layer2.1'], loss_weights=[(0.3, 2.0)])
    a, b = step_once(cfg), step_once(changed)
    first, second = module_param_names(a)
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert all(torch.equal(pa[n], pb[n]) for n in second)
    assert not all(torch.equal(pa[n], pb[n]) for n in first)


def test_no_gradient_crosses_a_cut():
    """Module 1's parameters get gradients from module 1's loss alone."""
    model = build_model(tiny_deeplab_cfg(split_points=['layer2.1']))
    first, second = module_param_names(model)
    wrapper = sgd_wrapper(model)
    wrapper.step = lambda **kw: None  # keep the gradients for inspection
    wrapper.zero_grad = lambda **kw: None
    torch.manual_seed(1)
    model.train_step(make_batch(), wrapper)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    # Recompute module 1's gradients from module 1's loss only.
    model.zero_grad()
    torch.manual_seed(1)
    data = model.data_preprocessor(make_batch(), True)
    modules = model.local_modules()
    _, _, losses = modules[0](data['inputs'], [None] * 4, data['data_samples'],
                              model.reconstruction_target(data['inputs']))
    model.parse_losses(losses)[0].backward()
    for name, param in model.named_parameters():
        if name in first:
            assert torch.equal(param.grad, grads[name]), name


def test_k1_reproduces_mmseg_encoder_decoder_exactly():
    plain = build_model(tiny_deeplab_cfg(type='EncoderDecoder'))
    ours = build_model(tiny_deeplab_cfg(split_points=[]))
    ours.load_state_dict(plain.state_dict(), strict=True)
    wrappers = [sgd_wrapper(m, momentum=0.9) for m in (plain, ours)]
    for step in range(2):
        logs = []
        for model, wrapper in zip((plain, ours), wrappers):
            torch.manual_seed(step)
            logs.append(model.train_step(make_batch(seed=step), wrapper))
        assert logs[0].keys() == logs[1].keys()
        assert all(torch.equal(torch.as_tensor(logs[0][k]), torch.as_tensor(logs[1][k]))
                   for k in logs[0])
    for (name, p), q in zip(plain.named_parameters(), ours.parameters()):
        assert torch.equal(p, q), name


@pytest.mark.parametrize('split_points', [['layer2.1'], ['layer1.1', 'layer2.1', 'layer3.1']])
def test_accumulated_half_batches_equal_one_full_batch(split_points):
    cfg = tiny_deeplab_cfg(split_points=split_points, norm='GN')
    full, halves = build_model(cfg), build_model(cfg)
    full.eval(), halves.eval()  # no dropout: the two runs must see identical networks
    batch = make_batch(batch_size=4)
    full.train_step(batch, sgd_wrapper(full))
    wrapper = sgd_wrapper(halves, accumulative_counts=2)
    before = [p.detach().clone() for p in halves.parameters()]
    halves.train_step({k: v[:2] for k, v in batch.items()}, wrapper)
    assert all(torch.equal(p, q) for p, q in zip(before, halves.parameters())), \
        'stepped after the first half: the K backward calls were counted as K iterations'
    halves.train_step({k: v[2:] for k, v in batch.items()}, wrapper)
    for (name, p), q in zip(full.named_parameters(), halves.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)


def test_amp_path_scales_every_local_loss_and_autocasts(monkeypatch):
    cfg = tiny_deeplab_cfg(split_points=['layer1.1', 'layer3.0'])
    # mmseg zero-initialises each block's last norm, which leaves the block's convolutions
    # without gradient in the first step; here every parameter must receive one.
    cfg['backbone']['zero_init_residual'] = False
    model = build_model(cfg)
    if not torch.cuda.is_available():
        # mmengine refuses AmpOptimWrapper without an accelerator; on CPU its GradScaler is a
        # pass-through and autocast runs in bfloat16, which exercises the same code path.
        import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_module
        monkeypatch.setattr(amp_module, 'is_cuda_available', lambda: True)
    wrapper = InfoProAmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                                     dtype='bfloat16')
    scaled = []
    original_scale = wrapper.loss_scaler.scale
    wrapper.loss_scaler.scale = lambda loss: scaled.append(loss) or original_scale(loss)
    dtypes = []
    model.backbone.layer2[0].register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    before = {name: p.detach().clone() for name, p in model.named_parameters()
              if p.requires_grad}
    log_vars = model.train_step(make_batch(), wrapper)
    assert len(scaled) == 3  # one loss-scaled backward per local module
    assert dtypes == [torch.bfloat16]
    assert torch.isfinite(torch.as_tensor(log_vars['loss']))
    # Every trainable parameter of every module (backbone parts, w, psi, decode, aux) was
    # updated: each module's scaled backward reached it and the step applied it.
    assert len(before) == len(list(model.parameters()))
    unchanged = [name for name, p in model.named_parameters()
                 if name in before and torch.equal(before[name], p)]
    assert not unchanged


def test_log_vars_name_every_module_loss():
    model = build_model(tiny_deeplab_cfg(split_points=['layer1.1', 'layer3.0']))
    log_vars = model.train_step(make_batch(), sgd_wrapper(model))
    for key in ('m1.loss_recon', 'm1.loss_ce', 'm2.loss_recon', 'm2.loss_ce', 'decode.loss_ce',
                'aux.loss_ce', 'decode.acc_seg'):
        assert key in log_vars
    total = sum(v for k, v in log_vars.items() if 'loss' in k and k != 'loss')
    torch.testing.assert_close(torch.as_tensor(log_vars['loss']), torch.as_tensor(total))


def peak_saved_bytes(split_points):
    cfg = tiny_deeplab_cfg(split_points=split_points, depth=50)
    model = build_model(cfg)
    batch = make_batch(batch_size=2, height=128, width=128)
    with SavedTensorMeter() as meter:
        model.train_step(batch, sgd_wrapper(model))
    return meter.peak_bytes


def test_memory_held_for_backward_falls_with_k():
    e2e = peak_saved_bytes([])
    k2 = peak_saved_bytes(['layer3.1'])
    k4 = peak_saved_bytes(['layer2.0', 'layer3.0', 'layer3.3'])
    print(f'peak saved-for-backward bytes: E2E {e2e}, K=2 {k2} ({k2 / e2e:.2f}x), '
          f'K=4 {k4} ({k4 / e2e:.2f}x)')
    assert k2 < 0.8 * e2e
    assert k4 < k2


def test_summed_single_backward_saves_no_memory():
    """The meter sees the difference between local steps and one backward of the summed losses."""
    model = build_model(tiny_deeplab_cfg(split_points=['layer3.1'], depth=50))
    batch = make_batch(batch_size=2, height=128, width=128)
    with SavedTensorMeter() as local:
        model.train_step(batch, sgd_wrapper(model))
    with SavedTensorMeter() as summed:
        data = model.data_preprocessor(batch, True)
        loss = model.parse_losses(model.loss(data['inputs'], data['data_samples']))[0]
        loss.backward()
    assert local.peak_bytes < 0.8 * summed.peak_bytes


def test_predict_uses_only_backbone_and_decode_head():
    model = build_model(tiny_deeplab_cfg(split_points=['layer2.1']))

    def fail(*args):
        raise AssertionError('a local head ran at inference')

    for heads in model.local_heads:
        for head in heads.values():
            head.register_forward_pre_hook(fail)
    model.auxiliary_head.register_forward_pre_hook(fail)
    model.eval()
    results = model.val_step(make_batch())
    assert results[0].pred_sem_seg.data.shape == (1, 64, 64)


def test_auxiliary_head_trains_the_module_where_its_input_ends():
    paper_like = build_model(tiny_deeplab_cfg(split_points=['layer3.0']))
    late_cut = build_model(tiny_deeplab_cfg(split_points=['layer4.0']))
    owners = []
    for model in (paper_like, late_cut):
        for k, module in enumerate(model.local_modules()):
            if any(head is model.auxiliary_head for head in module.heads):
                owners.append(k)
    assert owners == [1, 0]
    log_vars = late_cut.train_step(make_batch(), sgd_wrapper(late_cut))
    assert 'aux.loss_ce' in log_vars


def test_greedy_baseline_builds_no_reconstruction_head():
    model = build_model(tiny_deeplab_cfg(split_points=['layer2.1'], loss_weights=[(0.0, 1.0)]))
    assert list(model.local_heads[0]) == ['classifier']
    log_vars = model.train_step(make_batch(), sgd_wrapper(model))
    assert 'm1.loss_ce' in log_vars and 'm1.loss_recon' not in log_vars


def test_reconstruction_target_is_the_crop_before_normalisation():
    model = build_model(tiny_deeplab_cfg())
    batch = make_batch()
    data = model.data_preprocessor(batch, True)
    target = model.reconstruction_target(data['inputs'])
    rgb = torch.stack(batch['inputs']).float().flip(1) / 255  # BGR -> RGB as the preprocessor
    torch.testing.assert_close(target, rgb, atol=1e-5, rtol=0)


@pytest.mark.parametrize('change, message', [
    (dict(loss_weights=[(1, 1), (1, 1)]), 'pairs but the split points make 1'),
    (dict(loss_weights=[(0, 0)]), 'no local loss'),
    (dict(split_points=['layer9.0']), 'names no unit'),
])
def test_bad_configs_fail_clearly(change, message):
    with pytest.raises(ValueError, match=message):
        build_model(tiny_deeplab_cfg(**change))


def test_decode_head_must_read_the_last_module():
    cfg = tiny_deeplab_cfg(split_points=['layer4.0'])
    cfg['decode_head'].update(in_index=2, in_channels=32)
    with pytest.raises(ValueError, match='decode head must read'):
        build_model(cfg)


def test_missing_head_config_fails_clearly():
    cfg = tiny_deeplab_cfg()
    cfg['local_heads']['reconstruction'] = None
    with pytest.raises(ValueError, match='no reconstruction head config'):
        build_model(cfg)


class _RecordingSync(torch.nn.Module):
    """A local module with a DDP-like ``no_sync`` that records when it is entered."""

    def __init__(self, module, log):
        super().__init__()
        self.module, self.log = module, log

    def forward(self, *args):
        self.log.append('forward')
        return self.module(*args)

    def no_sync(self):
        import contextlib
        self.log.append('no_sync')
        return contextlib.nullcontext()


def test_every_module_skips_sync_exactly_on_accumulating_iterations():
    model = build_model(tiny_deeplab_cfg(split_points=['layer1.1', 'layer3.0'], norm='GN'))
    wrapper = sgd_wrapper(model, accumulative_counts=2)
    logs = [[] for _ in range(3)]
    for iteration in range(2):
        for log in logs:
            log.clear()
        modules = [_RecordingSync(m, log) for m, log in zip(model.local_modules(), logs)]
        model.train_step(make_batch(), wrapper, local_modules=modules)
        expected = ['no_sync', 'forward'] if iteration == 0 else ['forward']
        assert logs == [expected] * 3, (iteration, logs)


def summed_loss_warnings(action):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        action()
    return [w for w in caught if issubclass(w.category, SummedLocalLossWarning)]


def test_training_through_loss_warns_once_naming_the_fix():
    model = build_model(tiny_deeplab_cfg(split_points=['layer2.1']))
    data = model.data_preprocessor(make_batch(), True)

    def twice():
        for _ in range(2):
            model(data['inputs'], data['data_samples'], mode='loss')

    caught = summed_loss_warnings(twice)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "model_wrapper_cfg = dict(type='InfoProDistributedDataParallel')" in message
    assert 'train_step' in message


def test_train_step_and_inference_do_not_warn():
    model = build_model(tiny_deeplab_cfg(split_points=['layer2.1']))
    assert not summed_loss_warnings(lambda: model.train_step(make_batch(), sgd_wrapper(model)))
    data = model.data_preprocessor(make_batch(), True)
    with torch.no_grad():  # e.g. a validation loss
        assert not summed_loss_warnings(lambda: model.loss(data['inputs'], data['data_samples']))
    model.eval()
    assert not summed_loss_warnings(lambda: model.loss(data['inputs'], data['data_samples']))
    assert not summed_loss_warnings(lambda: model.val_step(make_batch()))
