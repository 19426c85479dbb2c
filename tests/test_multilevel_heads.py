"""Heads that read several backbone levels: derived inputs, isolation, K=1 equality, release."""
import copy
import gc

import pytest
import torch
from torch.multiprocessing.reductions import StorageWeakRef

from conftest import build_model
from infopro_seg.models.head_inputs import HeadInputError
from tiny_models import (HEAD_READS, assert_k1_step_equals_mmseg, module_param_names,
                         sgd_wrapper, small_batch, step_once,
                         tiny_cfg)

HEADS = list(HEAD_READS)
# K=3 on ResNetV1c-18: module 1 = stem..layer1.1 (layer1), module 2 = layer2.0..layer3.0
# (layer2), module 3 = layer3.1..layer4.1 (layer3, layer4) with the decode and FCN aux heads.
K3 = ['layer1.1', 'layer3.0']


@pytest.mark.parametrize('head', HEADS)
def test_the_levels_a_head_reads_are_derived_from_its_forward(head):
    model = build_model(tiny_cfg(head=head, split_points=K3))
    assert model.decode_head.infopro_backbone_inputs == HEAD_READS[head]
    assert model.auxiliary_head.infopro_backbone_inputs == [2]
    modules = model.local_modules()
    assert any(h is model.decode_head for h in modules[-1].heads)
    # Each output is kept until its last reader (the decode head, module 3) has run.
    assert {p: model._last_reader[p] for p in HEAD_READS[head]} == {
        p: 2 for p in HEAD_READS[head]}


@pytest.mark.parametrize('head', HEADS)
def test_later_loss_weight_leaves_earlier_module_updates_bit_identical(head):
    cfg = tiny_cfg(head=head, split_points=K3)
    changed = copy.deepcopy(cfg)
    changed['decode_head']['loss_decode']['loss_weight'] = 3.0
    a, b = step_once(cfg), step_once(changed)
    groups = module_param_names(a)
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    for earlier in groups[:-1]:
        assert all(torch.equal(pa[n], pb[n]) for n in earlier)
    assert not all(torch.equal(pa[n], pb[n]) for n in groups[-1])
    # Every conv of the decode head was trained, those reading early levels included (a norm
    # layer's weight of 1 may not move in float32 at this tiny step).
    start = build_model(cfg)
    p0 = dict(start.named_parameters())
    trained = {n for n in pa if n.startswith('decode_head.') and not torch.equal(pa[n], p0[n])}
    convs = {f'decode_head.{n}' for n, p in a.decode_head.named_parameters() if p.ndim == 4}
    assert convs and convs <= trained


@pytest.mark.parametrize('head', HEADS)
def test_k1_reproduces_mmseg_encoder_decoder_exactly(head):
    assert_k1_step_equals_mmseg(build_model(tiny_cfg(head=head, plain=True)),
                                build_model(tiny_cfg(head=head, split_points=[])))


def test_deeplabv3plus_trains_where_it_used_to_fail_mid_step():
    """The issue's report: V3+ cut after layer2.1 got ``None`` for c1 (a TypeError in conv2d)."""
    model = build_model(tiny_cfg(head='deeplabv3plus', split_points=['layer2.1']))
    log_vars = model.train_step(small_batch(), sgd_wrapper(model))
    assert torch.isfinite(log_vars['decode.loss_ce'])


@pytest.mark.parametrize('change, message', [
    # c1 channels that match no output: the message names head, outputs and fix.
    (dict(c1_in_channels=99), r'decode_head \(DepthwiseSeparableASPPHead\) cannot run on the '
     r'backbone outputs \(0: layer1.1 \(8 ch, stride 4\), 1: layer2.1 \(16 ch.*Fix: make its '
     r'in_index and in_channels \(and c1_in_channels'),
    (dict(in_index=5), r'decode_head \(DepthwiseSeparableASPPHead\): it reads backbone output 5, '
     r'but the backbone has only 4 outputs.*Fix: add the stage it needs to backbone.out_indices'),
])
def test_a_head_that_cannot_run_is_refused_at_build_time(change, message):
    cfg = tiny_cfg(head='deeplabv3plus', split_points=K3)
    cfg['decode_head'].update(change)
    with pytest.raises(HeadInputError, match=message):
        build_model(cfg)


def test_an_auxiliary_head_reading_a_missing_level_is_refused_at_build_time():
    cfg = tiny_cfg(head='aspp', split_points=K3)
    cfg['backbone']['out_indices'] = (2, 3)
    cfg['decode_head']['in_index'] = 1
    cfg['auxiliary_head']['in_index'] = 2
    with pytest.raises(HeadInputError, match=r'auxiliary_head \(FCNHead\): it reads backbone '
                       r'output 2, but the backbone has only 2 outputs'):
        build_model(cfg)


def test_a_head_can_declare_what_it_reads():
    model = build_model(tiny_cfg(head='custom', split_points=K3))
    model.decode_head.backbone_inputs = lambda num_outputs: [3, -3]
    model._check_head_placement()
    assert model.decode_head.infopro_backbone_inputs == [1, 3]


def test_outputs_are_released_once_their_last_reader_has_run():
    """Issue 8, item 3: when module k+1 starts, no feature that no later head reads is alive."""
    # Module 1 makes layer1 (read by the V3+ decode head in module 3: kept), module 2 makes
    # layer2 (read by the FCN auxiliary head in module 2 only: released before module 3).
    cfg = tiny_cfg(head='deeplabv3plus', split_points=K3)
    cfg['auxiliary_head'].update(in_index=1, in_channels=16)
    model = build_model(cfg)
    assert model._last_reader == {0: 2, 1: 1, 3: 2}
    backbone = model.backbone
    refs, alive_at_start = {}, []
    units = backbone._units()
    for position in range(4):
        units[backbone.output_unit(position)].register_forward_hook(
            lambda mod, args, out, position=position: refs.__setitem__(
                position, StorageWeakRef(out.untyped_storage())))

    def check(*args):
        gc.collect()
        alive_at_start.append({p for p, ref in refs.items() if not ref.expired()})

    starts = [units[start] for start, _ in backbone.module_ranges()]
    for unit in starts[1:]:
        unit.register_forward_pre_hook(check)
    model.train_step(small_batch(), sgd_wrapper(model))
    assert alive_at_start == [{0}, {0}]  # layer2 (position 1) is gone when module 3 starts
