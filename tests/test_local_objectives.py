"""Local objectives for K >= 3 (issue 12): each trains with gradient isolation and learns."""
import copy

import pytest
import torch
from mmengine.optim import OptimWrapper

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
        heads['classifier'] = dict(type='AugLocalClassifierHead', channels=16,
                                   width_multipliers=(1, 2), dilations=(1, 2))
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
    return OptimWrapper(torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9))


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


def test_supcon_heads_are_the_configured_psi():
    model = build_model(objective_cfg('supcon'))
    assert [type(h['classifier']).__name__ for h in model.local_heads] == ['SupConHead'] * 2
    model = build_model(objective_cfg('auglocal'))
    head = model.local_heads[0]['classifier']
    cut_channels = model.backbone.unit_out_channels(model.backbone.module_ranges()[0][1] - 1)
    assert len(head.aux_blocks) == 2
    assert head.aux_blocks[1].conv2.out_channels == 2 * cut_channels


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
    (dict(type='AugLocalClassifierHead', width_multipliers=(1, 2), dilations=(1, )),
     'one entry per block'),
])
def test_bad_head_configs_fail_clearly(kwargs, message):
    cfg = objective_cfg('supcon')
    cfg['local_heads']['classifier'] = kwargs
    with pytest.raises(ValueError, match=message):
        build_model(cfg)
