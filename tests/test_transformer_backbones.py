"""InfoPro on hierarchical transformers (MiT, Swin, MSCAN): mmseg's names and forward, K=1 equal
to mmseg's own segmentor, gradient isolation, publishing, checkpointing, AMP, split names and the
AdamW ``paramwise_cfg`` of mmseg's transformer configs."""
import copy

import pytest
import torch
from mmseg.registry import MODELS

from conftest import build_model
from infopro_seg.engine import (DeviceAmpOptimWrapper, InfoProOptimWrapper,
                                load_checkpoint_safely, publish_checkpoint)
from infopro_seg.errors import ConfigError
from tiny_transformers import CUTS, TRANSFORMERS, VALID_NAMES, crop_batch, transformer_cfg

NAMES = list(TRANSFORMERS)


class KeepGrads(InfoProOptimWrapper):
    """Back-propagates as the training step does, but never steps nor zeroes: the gradients stay
    to be compared."""

    def step(self, **kwargs):
        pass

    def zero_grad(self, **kwargs):
        pass


def sgd(model, momentum=0.0):
    return InfoProOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1, momentum=momentum))


def grads_of(model, seed=7):
    """Log variables and gradients of one training step (dropout and NMF seeds fixed)."""
    torch.manual_seed(seed)
    log_vars = model.train_step(crop_batch(), KeepGrads(torch.optim.SGD(model.parameters(),
                                                                        lr=0.1)))
    return log_vars, {n: p.grad.clone() for n, p in model.named_parameters()
                      if p.grad is not None}


def plain_backbone_cfg(name):
    cfg = copy.deepcopy(TRANSFORMERS[name][0])
    cfg['type'] = TRANSFORMERS[name][1]
    return cfg


@pytest.mark.parametrize('name', NAMES)
def test_units_compose_to_mmseg_forward_bit_for_bit(name):
    """mmseg's state-dict names; the units in order give mmseg's outputs and gradients exactly;
    every unit's listed channels and stride are what it produces."""
    torch.manual_seed(0)
    ours = MODELS.build({**TRANSFORMERS[name][0], 'split_points': CUTS[name][4]})
    theirs = MODELS.build(plain_backbone_cfg(name))
    assert isinstance(ours, type(theirs))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 128)
    expected = theirs(x)
    features, h = {}, x
    for part in ours.local_parts():
        h, outputs = part(h)
        features.update(outputs)
    assert sorted(features) == list(range(len(expected)))
    assert all(torch.equal(features[i], out) for i, out in enumerate(expected))
    sum(out.sum() for out in expected).backward()
    sum(feature.sum() for feature in features.values()).backward()
    for (param_name, theirs_param), ours_param in zip(theirs.named_parameters(),
                                                      ours.parameters()):
        assert torch.equal(theirs_param.grad, ours_param.grad), param_name
    h = x
    with torch.no_grad():
        for index, unit in enumerate(ours._units()):
            h = unit(h)
            unit_name = ours.unit_names[index]
            assert h.shape[1] == ours.unit_out_channels(index), unit_name
            assert 64 // h.shape[2] == ours.unit_out_stride(index), unit_name


@pytest.mark.parametrize('name', NAMES)
def test_k1_equals_mmseg_segmentor_bit_for_bit(name):
    """Same weights: the same losses, gradients, updated parameters and predicted logits."""
    plain = build_model(transformer_cfg(name, plain=True))
    ours = build_model(transformer_cfg(name))
    ours.load_state_dict(plain.state_dict(), strict=True)
    plain_logs, plain_grads = grads_of(plain)
    our_logs, our_grads = grads_of(ours)
    assert plain_logs.keys() == our_logs.keys()
    assert all(torch.equal(plain_logs[k], our_logs[k]) for k in plain_logs)
    assert plain_grads.keys() == our_grads.keys()
    assert all(torch.equal(plain_grads[k], our_grads[k]) for k in plain_grads)
    plain.eval(), ours.eval()
    batch = crop_batch(batch_size=1, seed=3)
    torch.manual_seed(0)
    theirs = plain.test_step(copy.deepcopy(batch))[0].seg_logits.data
    torch.manual_seed(0)
    assert torch.equal(ours.test_step(batch)[0].seg_logits.data, theirs)


@pytest.mark.parametrize('name', NAMES)
def test_the_same_seed_builds_mmseg_initial_weights(name):
    """Building adds no random draws (the heads' meta-device probe restores the random state,
    which SegNeXt's LightHamHead draws from in forward)."""
    theirs = build_model(transformer_cfg(name, plain=True), seed=5).state_dict()
    ours = build_model(transformer_cfg(name), seed=5).state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[key], theirs[key]) for key in theirs)


@pytest.mark.parametrize('k', [2, 4])
@pytest.mark.parametrize('name', NAMES)
def test_later_losses_leave_earlier_modules_bit_identical(name, k):
    """Gradient isolation through train_step: scaling the last module's losses changes only the
    last module's parameters."""
    cfg = transformer_cfg(name, CUTS[name][k])
    changed = copy.deepcopy(cfg)
    changed['decode_head']['loss_decode']['loss_weight'] = 3.0
    if 'auxiliary_head' in changed:
        changed['auxiliary_head']['loss_decode']['loss_weight'] = 0.1
    models = []
    for model_cfg in (cfg, changed):
        model = build_model(model_cfg)
        torch.manual_seed(123)
        model.train_step(crop_batch(), sgd(model))
        models.append(model)
    groups = [{n for n, p in models[0].named_parameters()
               if any(p is q for q in module.parameters())}
              for module in models[0].local_modules()]
    assert len(groups) == k and all(groups)
    a, b = (dict(model.named_parameters()) for model in models)
    for earlier in groups[:-1]:
        assert all(torch.equal(a[n], b[n]) for n in earlier)
    assert not all(torch.equal(a[n], b[n]) for n in groups[-1])


@pytest.mark.parametrize('name', NAMES)
def test_published_weights_load_strictly_into_mmseg_model_with_identical_logits(name, tmp_path):
    ours = build_model(transformer_cfg(name, CUTS[name][2]))
    ours.train_step(crop_batch(), sgd(ours))
    torch.save(dict(meta=dict(iter=1), state_dict=ours.state_dict()), tmp_path / 'iter_1.pth')
    path = publish_checkpoint(str(tmp_path / 'iter_1.pth'), str(tmp_path / 'model.pth'),
                              add_hash=False)
    plain = build_model(transformer_cfg(name, plain=True), seed=1)
    plain.load_state_dict(load_checkpoint_safely(path)['state_dict'], strict=True)
    ours.eval(), plain.eval()
    batch = crop_batch(batch_size=1)
    with torch.no_grad():
        torch.manual_seed(0)
        a = ours.test_step(copy.deepcopy(batch))[0].seg_logits.data
        torch.manual_seed(0)
        b = plain.test_step(batch)[0].seg_logits.data
    assert torch.equal(a, b)


@pytest.mark.parametrize('name', NAMES)
def test_checkpointing_gives_identical_gradients(name):
    """model.checkpointing=True: the same losses and gradients. MiT and Swin (LayerNorm,
    linear layers) bit for bit; MSCAN's BatchNorm-convolution stack to float32 rounding, as the
    ResNet checkpointing tests (torch's reentrant checkpoint returns the gradient of a unit's
    input through a leaf tensor, and the CPU kernels upstream of it then sum in another
    order)."""
    cfg = transformer_cfg(name, CUTS[name][2])
    checkpointed = copy.deepcopy(cfg)
    checkpointed['checkpointing'] = True
    logs, grads = grads_of(build_model(cfg))
    cp_logs, cp_grads = grads_of(build_model(checkpointed))
    assert all(torch.equal(logs[key], cp_logs[key]) for key in logs)
    assert cp_grads.keys() == grads.keys()
    # Rounding: about ten float32 epsilons of the largest gradient (conv biases ahead of a
    # BatchNorm have a true gradient of 0: only rounding noise is compared there).
    atol = 1e-6 * max(float(grad.abs().max()) for grad in grads.values())
    for param_name, grad in grads.items():
        if name == 'mscan':
            torch.testing.assert_close(cp_grads[param_name], grad, rtol=1e-6, atol=atol,
                                       msg=param_name)
        else:
            assert torch.equal(cp_grads[param_name], grad), param_name


@pytest.mark.parametrize('name', ['mit', 'swin'])
def test_mmseg_with_cp_composes_with_k4_bit_for_bit(name):
    """mmseg's own ``backbone.with_cp`` (MiT and Swin blocks; MSCAN has none) under K=4."""
    cfg = transformer_cfg(name, CUTS[name][4])
    with_cp = copy.deepcopy(cfg)
    with_cp['backbone']['with_cp'] = True
    _, grads = grads_of(build_model(cfg))
    model = build_model(with_cp)
    depths = TRANSFORMERS[name][0]['num_layers' if name == 'mit' else 'depths']
    assert len(model._block_guards) == sum(depths)  # every block checkpoints itself
    _, cp_grads = grads_of(model)
    assert cp_grads.keys() == grads.keys()
    assert all(torch.equal(cp_grads[n], grads[n]) for n in grads)


@pytest.mark.parametrize('name', NAMES)
def test_one_amp_step_on_cpu(name):
    """bfloat16 autocast and loss scaling (DeviceAmpOptimWrapper) through InfoPro's step, K=2
    with checkpointing: finite losses, every module's parameters updated."""
    cfg = transformer_cfg(name, CUTS[name][2])
    cfg['checkpointing'] = True
    model = build_model(cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    wrapper = DeviceAmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                                    device='cpu', dtype='bfloat16')
    log_vars = model.train_step(crop_batch(), wrapper)
    for key in ('loss', 'm1.loss_recon', 'decode.loss_ce'):
        assert torch.isfinite(log_vars[key]), key
    for module in model.local_modules():
        ids = {id(p) for p in module.parameters()}
        changed = [not torch.equal(before[n], p) for n, p in model.named_parameters()
                   if id(p) in ids]
        assert any(changed)


@pytest.mark.parametrize('name', NAMES)
def test_a_split_point_that_names_no_unit_is_refused_with_the_valid_names(name):
    with pytest.raises(ConfigError, match=r"split point 'layer3\.1' names no unit of this "
                       r'backbone; valid split points: .*' + VALID_NAMES[name]):
        MODELS.build({**TRANSFORMERS[name][0], 'split_points': ['layer3.1']})
    with pytest.raises(ConfigError, match=r"invalid split point 'layers\.9': it names no unit.*"
                       r'valid split points: .*' + VALID_NAMES[name]):
        MODELS.build({**TRANSFORMERS[name][0], 'split_points': ['layers.9']})


def test_split_points_are_module_paths_of_the_state_dict():
    """Each unit name is a module path of mmseg's backbone (the prefix of its state-dict keys)."""
    for name, cuts in CUTS.items():
        backbone = MODELS.build({**TRANSFORMERS[name][0], 'split_points': cuts[4]})
        paths = dict(backbone.named_modules())
        assert all(unit in paths for unit in backbone.unit_names), name
        assert backbone.split_points == cuts[4]
