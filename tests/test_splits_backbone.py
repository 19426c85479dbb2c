"""Where the network is cut: split-point parsing, validation, and the backbone's local parts."""
import pytest
import torch
from mmseg.models.backbones import ResNetV1c, ResNetV1d

from infopro_seg.models.backbones import InfoProResNet
from infopro_seg.models.splits import local_loss_weights, resolve_split_points

R18_UNITS = (['stem.0', 'stem.1', 'stem.2'] +
             [f'layer{s}.{b}' for s in range(1, 5) for b in range(2)])


def small_resnet(**kwargs):
    args = dict(depth=18, stem_channels=16, base_channels=8, dilations=(1, 1, 2, 4),
                strides=(1, 2, 1, 1), contract_dilation=True)
    args.update(kwargs)
    return args


@pytest.mark.parametrize('split_point, index', [
    ('layer3.0', 7), ((3, 0), 7), ('stem', 2), ('stem.0', 0), ((0, 1), 1), ('layer1.1', 4)])
def test_split_point_forms(split_point, index):
    assert resolve_split_points([split_point], R18_UNITS) == [index]


@pytest.mark.parametrize('split_points, message', [
    (['layer5.0'], 'names no unit'),
    (['layer3.7'], 'names no unit'),
    (['layer4.1'], 'last unit'),
    (['layer3.0', 'layer2.0'], 'forward order'),
    (['layer3.0', 'layer3.0'], 'forward order'),
    (['layer3'], "name the block"),
    (['conv1'], 'invalid split point'),
    ([(3, 'a')], 'pair'),
    ('paper_r999', 'unknown split preset'),
])
def test_invalid_split_points_name_the_problem(split_points, message):
    with pytest.raises(ValueError, match=message) as info:
        resolve_split_points(split_points, R18_UNITS)
    if 'names no unit' in message:
        assert 'layer3.0-1' in str(info.value)  # the message lists what is valid


def test_more_modules_than_units_is_refused():
    names = R18_UNITS[:-1]  # every unit but the last is a valid cut: K = 11 is the maximum
    assert len(resolve_split_points(names, R18_UNITS)) == len(R18_UNITS) - 1
    with pytest.raises(ValueError):
        resolve_split_points(names + ['layer4.1'], R18_UNITS)


def test_loss_weights_per_module_schedule_and_errors():
    assert local_loss_weights([(1.5, 1.0)], 1) == [(1.5, 1.0)]
    assert local_loss_weights([(1.5, 1.0)], 3) == [(1.5, 1.0)] * 3
    schedule = local_loss_weights(dict(first=(5, 0), last=(0.5, 1)), 3)
    assert schedule == [(5.0, 0.0), (2.75, 0.5), (0.5, 1.0)]
    with pytest.raises(ValueError, match='2 \\(lambda1, lambda2\\) pairs but the split points '
                       'make 3 local module'):
        local_loss_weights([(1, 1), (2, 1)], 3)
    with pytest.raises(ValueError, match='pair'):
        local_loss_weights([(1, 1, 1)], 1)


@pytest.mark.parametrize('variant, mmseg_cls', [('ResNetV1c', ResNetV1c), ('ResNetV1d', ResNetV1d)])
def test_parameter_names_are_mmseg_names(variant, mmseg_cls):
    ours = InfoProResNet(variant=variant, split_points=['layer2.1'], **small_resnet())
    theirs = mmseg_cls(**small_resnet())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict(), strict=True)


@pytest.mark.parametrize('variant, depth, split_points', [
    ('ResNetV1c', 18, []),
    ('ResNetV1c', 18, ['stem.0', 'stem.1', 'layer1.0', 'layer3.1', 'layer4.0']),
    ('ResNet', 18, ['stem', 'layer2.0']),
    ('ResNetV1d', 50, ['layer1.2', 'layer3.3']),
])
def test_local_parts_compose_to_the_plain_forward(variant, depth, split_points):
    torch.manual_seed(0)
    backbone = InfoProResNet(variant=variant, split_points=split_points,
                             **small_resnet(depth=depth)).eval()
    x = torch.randn(2, 3, 40, 56)
    expected = backbone(x)
    outputs = {}
    with torch.no_grad():
        for k, part in enumerate(backbone.local_parts()):
            x, produced = part(x)
            outputs.update(produced)
            assert x.shape[1] == backbone.module_out_channels(k)
    assert backbone.num_modules == len(split_points) + 1
    assert sorted(outputs) == list(range(4))
    for position, feature in enumerate(expected):
        assert torch.equal(outputs[position], feature)


def test_unit_channels_and_strides_match_the_features():
    backbone = InfoProResNet(variant='ResNetV1c', **small_resnet()).eval()
    x = torch.randn(1, 3, 64, 64)
    parts = InfoProResNet(variant='ResNetV1c', split_points=R18_UNITS[:-1], **small_resnet())
    parts.load_state_dict(backbone.state_dict())
    parts.eval()
    with torch.no_grad():
        for index, part in enumerate(parts.local_parts()):
            x, _ = part(x)
            assert x.shape[1] == parts.unit_out_channels(index), R18_UNITS[index]
            assert 64 // x.shape[-1] == parts.unit_out_stride(index), R18_UNITS[index]
