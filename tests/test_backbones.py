"""Every InfoPro backbone adapter: mmseg's names, units that compose to mmseg's forward, channels
and strides, gradient isolation, K=1 equal to mmseg, published weights in mmseg's own model."""
import copy

import pytest
import torch
from mmseg.registry import MODELS

from conftest import build_model
from infopro_seg.engine import load_checkpoint_safely, publish_checkpoint
from tiny_models import (BACKBONES, CUTS, assert_k1_step_equals_mmseg, module_param_names,
                         sgd_wrapper, small_batch, step_once,
                         tiny_cfg)

NAMES = list(BACKBONES)


def plain_backbone_cfg(name):
    cfg, plain_type, _ = copy.deepcopy(BACKBONES[name])
    cfg.pop('variant', None)
    cfg['type'] = plain_type
    return cfg


@pytest.mark.parametrize('name', NAMES)
def test_parameter_names_are_mmseg_names_and_load_strictly(name):
    cfg = copy.deepcopy(BACKBONES[name][0])
    ours = MODELS.build({**cfg, 'split_points': CUTS[name][1]})
    theirs = MODELS.build(plain_backbone_cfg(name))
    # A subclass of mmseg's backbone (ResNetV1c is mmseg's ResNet with variant='ResNetV1c').
    assert isinstance(ours, type(theirs).__mro__[1] if name == 'resnet_v1c' else type(theirs))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict(), strict=True)


@pytest.mark.parametrize('name', NAMES)
def test_units_compose_to_mmseg_forward_with_the_listed_channels_and_strides(name):
    torch.manual_seed(0)
    backbone = MODELS.build({**BACKBONES[name][0], 'split_points': CUTS[name][1]}).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = backbone(x)
        features, h = [None] * len(backbone.out_indices), x
        for part in backbone.local_parts():
            h, outputs = part(h)
            for position, feature in outputs.items():
                features[position] = feature
    assert len(features) == len(expected)
    assert all(torch.equal(a, b) for a, b in zip(features, expected))
    # Every unit's listed channels and stride are what it produces.
    h = x
    with torch.no_grad():
        for index, unit in enumerate(backbone._units()):
            h = unit(h)
            assert h.shape[1] == backbone.unit_out_channels(index), backbone.unit_names[index]
            assert 64 // h.shape[2] == backbone.unit_out_stride(index), backbone.unit_names[index]
    assert len(backbone._units()) == len(backbone.unit_names)


def test_mobilenet_v2_units_are_named_as_mmseg_names_its_stages():
    backbone = MODELS.build({**BACKBONES['mobilenet_v2'][0], 'split_points': ['layer3.1']})
    assert backbone.unit_names[:4] == ['stem.0', 'layer1.0', 'layer2.0', 'layer2.1']
    assert backbone.unit_names[-1] == 'layer7.0' and len(backbone.unit_names) == 18
    assert backbone.describe_modules().splitlines()[0].startswith(
        'module 1: stem.0 .. layer3.1 (6 units, out 8 ch, stride 8)')
    with pytest.raises(ValueError, match='layer3.0-2'):  # the message lists the valid cuts
        MODELS.build({**BACKBONES['mobilenet_v2'][0], 'split_points': ['layer3.3']})


@pytest.mark.parametrize('name', NAMES)
def test_later_loss_weight_leaves_earlier_module_updates_bit_identical(name):
    cfg = tiny_cfg(backbone=name, head='deeplabv3plus', split_points=CUTS[name][1])
    changed = copy.deepcopy(cfg)
    changed['decode_head']['loss_decode']['loss_weight'] = 3.0
    changed['auxiliary_head']['loss_decode']['loss_weight'] = 0.1
    a, b = step_once(cfg), step_once(changed)
    groups = module_param_names(a)
    assert len(groups) == 3
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    for earlier in groups[:-1]:
        assert all(torch.equal(pa[n], pb[n]) for n in earlier)
    assert not all(torch.equal(pa[n], pb[n]) for n in groups[-1])


@pytest.mark.parametrize('name', NAMES)
def test_k1_reproduces_mmseg_encoder_decoder_exactly(name):
    assert_k1_step_equals_mmseg(
        build_model(tiny_cfg(backbone=name, head='deeplabv3plus', plain=True)),
        build_model(tiny_cfg(backbone=name, head='deeplabv3plus', split_points=[])))


@pytest.mark.parametrize('name', NAMES)
def test_published_checkpoint_loads_strictly_into_mmseg_own_model(name, tmp_path):
    ours = build_model(tiny_cfg(backbone=name, head='deeplabv3plus', split_points=CUTS[name][0]))
    ours.train_step(small_batch(), sgd_wrapper(ours))
    torch.save(dict(meta=dict(iter=1), state_dict=ours.state_dict()), tmp_path / 'iter_1.pth')
    path = publish_checkpoint(str(tmp_path / 'iter_1.pth'), str(tmp_path / 'model.pth'),
                              add_hash=False)
    plain = build_model(tiny_cfg(backbone=name, head='deeplabv3plus', plain=True), seed=1)
    plain.load_state_dict(load_checkpoint_safely(path)['state_dict'], strict=True)
    ours.eval()
    plain.eval()
    batch = small_batch(batch_size=1)
    with torch.no_grad():
        a = ours.test_step(copy.deepcopy(batch))[0].seg_logits.data
        b = plain.test_step(batch)[0].seg_logits.data
    assert torch.equal(a, b)
