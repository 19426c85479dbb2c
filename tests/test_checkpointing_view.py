"""layer_checkpointed_view: a head's layers recomputed one at a time, the head left as it was."""
import pytest
import torch
from mmcv.cnn import ConvModule
from mmseg.registry import MODELS
from torch import nn

from infopro_seg.models.utils import CheckpointedUnit, layer_checkpointed_view

NORM = dict(type='BN', requires_grad=True)


def aspp_head():
    torch.manual_seed(0)
    return MODELS.build(dict(type='ASPPHead', in_channels=8, in_index=0, channels=4,
                             dilations=(1, 2), num_classes=3, norm_cfg=NORM, dropout_ratio=0.0))


def test_the_view_computes_the_head_and_leaves_it_as_it_was():
    head = aspp_head()
    names = [name for name, _ in head.named_modules()]
    keys = list(head.state_dict())
    x = torch.randn(2, 8, 8, 8, requires_grad=True)
    expected = head([x])
    head.zero_grad()
    expected.sum().backward()
    expected_grads = {name: p.grad.clone() for name, p in head.named_parameters()}
    head.zero_grad()
    seen = []
    hook = head.bottleneck.register_forward_pre_hook(
        lambda module, args: seen.append(any(isinstance(m, CheckpointedUnit)
                                             for m in head.modules())))

    view = layer_checkpointed_view(head)
    output = view([x])
    hook.remove()
    assert seen == [True]  # during the call the layers run wrapped
    assert [name for name, _ in head.named_modules()] == names  # after it, as before
    assert list(head.state_dict()) == keys
    assert not any(isinstance(m, CheckpointedUnit) for m in head.modules())
    torch.testing.assert_close(output, expected)
    output.sum().backward()
    for name, p in head.named_parameters():
        torch.testing.assert_close(p.grad, expected_grads[name], msg=name)


def test_the_head_is_restored_when_its_forward_raises():
    head = aspp_head()
    names = [name for name, _ in head.named_modules()]
    with pytest.raises(RuntimeError, match='channels'):
        layer_checkpointed_view(head)([torch.randn(1, 5, 8, 8)])  # 5 channels, 8 expected
    assert [name for name, _ in head.named_modules()] == names


def test_a_layer_is_one_unit_and_a_module_without_layers_is_itself():
    layer = ConvModule(2, 2, 1, norm_cfg=NORM)
    view = layer_checkpointed_view(layer)
    assert isinstance(view, CheckpointedUnit) and view.unit is layer
    plain = nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU())
    assert layer_checkpointed_view(plain) is plain
