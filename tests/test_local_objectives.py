"""Local objectives for K >= 3: each trains with gradient isolation and learns."""
import copy

import pytest
import torch
from infopro_seg.engine import InfoProOptimWrapper

from conftest import build_model, make_batch, tiny_deeplab_cfg
from tiny_models import module_param_names
from infopro_seg.models.heads.supcon_head import (sample_pixels_per_class,
                                                  supervised_contrastive_loss)

SPLITS = ['layer2.0', 'layer3.0']  # K=3: two local modules with their own heads


def objective_cfg(name, second_weights=(1.5, 1.0)):
    """The tiny K=3 model with objective ``name``; module 2's loss weights as given."""
    cfg = tiny_deeplab_cfg(split_points=SPLITS, loss_weights=[(1.5, 1.0), second_weights])
    heads = cfg['local_heads']
    if name == 'supcon':
        heads['classifier'] = dict(type='SupConHead', channels=16, proj_channels=8)
    elif name == 'auglocal':
        heads['classifier'] = dict(type='AugLocalClassifierHead', channels=16, depth=(2, 1))
    elif name == 'recon-light':
        heads['reconstruction'] = dict(type='ReconstructionHead', channels=(4, 4, 2))
    elif name == 'paper-schedule':
        first, last = (5.0, 0.0), (0.5, 1.0) if second_weights == (1.5, 1.0) else second_weights
        cfg['local_loss_weights'] = dict(first=first, last=last)
    else:
        raise KeyError(name)
    return cfg


OBJECTIVES = ['supcon', 'auglocal', 'recon-light', 'paper-schedule']
#: The loss each objective adds to local module 1 (the one whose learning is checked).
MODULE1_LOSS = {'supcon': 'm1.loss_supcon', 'auglocal': 'm1.loss_ce',
                'recon-light': 'm1.loss_recon', 'paper-schedule': 'm1.loss_recon'}


def sgd(model, lr=0.05):
    return InfoProOptimWrapper(torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9))


def step_once(cfg):
    model = build_model(cfg)
    torch.manual_seed(123)
    log_vars = model.train_step(make_batch(), sgd(model))
    return model, log_vars


@pytest.mark.parametrize('name', OBJECTIVES)
def test_later_module_weight_leaves_earlier_module_updates_bit_identical(name):
    a, log_vars = step_once(objective_cfg(name))
    b, _ = step_once(objective_cfg(name, second_weights=(0.5, 3.0)))
    assert MODULE1_LOSS[name] in log_vars
    first, second, third = module_param_names(a)
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert all(torch.equal(pa[n], pb[n]) for n in first | third)
    assert not all(torch.equal(pa[n], pb[n]) for n in second)  # the change did act


@pytest.mark.parametrize('name', OBJECTIVES)
def test_objective_loss_falls_on_a_fixed_batch(name):
    model = build_model(objective_cfg(name))
    wrapper = sgd(model)
    batch = make_batch(seed=3)
    torch.manual_seed(0)
    values = [model.train_step(copy.deepcopy(batch), wrapper)[MODULE1_LOSS[name]].item()
              for _ in range(8)]
    assert all(torch.isfinite(torch.tensor(values)))
    assert min(values[-2:]) < values[0], values


def test_supcon_psi_trains_each_module_by_its_contrastive_loss_alone():
    """SupCon replaces psi's cross-entropy in every local module: its loss is logged, its
    projection gets gradients, and with lambda2 = 0 in module 2 nothing reaches that one."""
    model = build_model(objective_cfg('supcon', second_weights=(1.5, 0.0)))
    wrapper = InfoProOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1),
                                  accumulative_counts=2)
    torch.manual_seed(0)
    log_vars = model.train_step(make_batch(), wrapper)  # accumulating: gradients kept, no step
    local = {name for name in log_vars if name.startswith(('m1.', 'm2.'))}
    assert local == {'m1.loss_recon', 'm1.loss_supcon', 'm2.loss_recon'}
    assert log_vars['m1.loss_supcon'] > 0
    grads = {name: param.grad for name, param in model.named_parameters()}
    psi1 = [name for name in grads if name.startswith('local_heads.0.classifier.')]
    assert psi1 and all(grads[name] is not None and grads[name].abs().sum() > 0
                        for name in psi1)
    assert not any(name.startswith('local_heads.1.classifier.') for name in grads)


def test_auglocal_copies_the_following_units_in_a_pyramid():
    model = build_model(objective_cfg('auglocal'))  # depth (2, 1) over two local modules
    backbone = model.backbone
    units = dict(zip(backbone.unit_names, backbone._units()))
    first, second = (h['classifier'].aux_layers for h in model.local_heads)
    # Module 1 (cut after layer2.0): the first and the last following unit, and a bridge where
    # the skipped units would have widened the channels.
    assert [type(m).__name__ for m in first] == ['BasicBlock', 'ConvModule', 'BasicBlock']
    for copied, name in ((first[0], 'layer2.1'), (first[2], 'layer4.1'), (second[0], 'layer3.1')):
        original = units[name]
        assert [p.shape for p in copied.parameters()] == [p.shape for p in original.parameters()]
        # Own parameters, freshly initialised (not shared with, not equal to, the backbone's).
        assert all(c.data_ptr() != o.data_ptr() and not torch.equal(c, o)
                   for c, o in zip(copied.parameters(), original.parameters())
                   if o.dim() > 1)
    assert first[1].conv.in_channels == backbone.unit_out_channels(backbone.cuts[0])
    assert first[1].conv.out_channels == backbone.unit_out_channels(
        backbone.unit_names.index('layer4.0'))
    assert len(second) == 1
    # The psi reads what the last copy puts out.
    psi = model.local_heads[0]['classifier']
    assert psi.convs[0].conv.in_channels == first[2].conv2.out_channels


def test_auglocal_head_needs_the_segmentor():
    from mmseg.registry import MODELS
    with pytest.raises(ValueError, match='build it through InfoProEncoderDecoder'):
        MODELS.build(dict(type='AugLocalClassifierHead', in_channels=8, num_classes=4))


def test_pixel_sampling_is_class_balanced_and_skips_ignored():
    torch.manual_seed(0)
    labels = torch.tensor([0] * 100 + [1] * 3 + [255] * 50)
    index = sample_pixels_per_class(labels, max_per_class=10, ignore_index=255)
    picked = labels[index]
    assert (picked == 0).sum() == 10 and (picked == 1).sum() == 3 and not (picked == 255).any()
    assert sample_pixels_per_class(torch.full((5, ), 255), 10, 255).numel() == 0


def test_supcon_loss_prefers_clustered_embeddings():
    labels = torch.tensor([0, 0, 1, 1])
    clustered = torch.tensor([[1., 0.], [1., 0.], [0., 1.], [0., 1.]])
    mixed = torch.tensor([[1., 0.], [0., 1.], [1., 0.], [0., 1.]])
    assert (supervised_contrastive_loss(clustered, labels, 0.1)
            < supervised_contrastive_loss(mixed, labels, 0.1))
    # No anchor has a positive: a zero that still back-propagates.
    single = torch.randn(3, 2, requires_grad=True)
    loss = supervised_contrastive_loss(single, torch.tensor([0, 1, 2]), 0.1)
    loss.backward()
    assert loss.item() == 0 and single.grad is not None


@pytest.mark.parametrize('kwargs, message', [
    (dict(type='SupConHead', temperature=0), 'temperature'),
    (dict(type='SupConHead', max_pixels_per_class=1), 'max_pixels_per_class'),
    (dict(type='AugLocalClassifierHead', depth=(3, 2, 1)), 'depth takes an int or'),
])
def test_bad_head_configs_fail_clearly(kwargs, message):
    cfg = objective_cfg('supcon')
    cfg['local_heads']['classifier'] = kwargs
    with pytest.raises(ValueError, match=message):
        build_model(cfg)
