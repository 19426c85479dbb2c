"""Tiny configs of every supported backbone and decode head (InfoPro and mmseg's plain twin)."""
import copy

import torch
from infopro_seg.engine import InfoProOptimWrapper
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import nn

from conftest import build_model, make_batch, tiny_deeplab_cfg

NORM = dict(type='BN', requires_grad=True)

#: backbone name -> (InfoPro config, mmseg's plain type, channels of each output)
BACKBONES = {
    'resnet_v1c': (dict(type='InfoProResNet', variant='ResNetV1c', depth=18, stem_channels=16,
                        base_channels=8, out_indices=(0, 1, 2, 3), dilations=(1, 1, 2, 4),
                        strides=(1, 2, 1, 1), contract_dilation=True, norm_cfg=NORM),
                   'ResNetV1c', (8, 16, 32, 64)),
    'resnext': (dict(type='InfoProResNeXt', depth=50, groups=2, base_width=4, stem_channels=16,
                     base_channels=8, out_indices=(0, 1, 2, 3), dilations=(1, 1, 2, 4),
                     strides=(1, 2, 1, 1), contract_dilation=True, norm_cfg=NORM),
                'ResNeXt', (32, 64, 128, 256)),
    'resnest': (dict(type='InfoProResNeSt', depth=50, stem_channels=16, base_channels=8,
                     radix=2, reduction_factor=4, avg_down_stride=True, out_indices=(0, 1, 2, 3),
                     dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), contract_dilation=True,
                     norm_cfg=NORM),
                'ResNeSt', (32, 64, 128, 256)),
    # mmseg's configs/mobilenet_v2 DeepLabs: output stride 8 by dilation, outputs at the ends of
    # layer2, layer3, layer5 and layer7.
    'mobilenet_v2': (dict(type='InfoProMobileNetV2', widen_factor=0.25,
                          strides=(1, 2, 2, 1, 1, 1, 1), dilations=(1, 1, 1, 2, 2, 4, 4),
                          out_indices=(1, 2, 4, 6), norm_cfg=NORM),
                     'MobileNetV2', (8, 8, 24, 80)),
}

#: A mid-network cut of each backbone (K=2) and a three-module cut (K=3).
CUTS = {
    'resnet_v1c': (['layer2.1'], ['layer1.1', 'layer3.0']),
    'resnext': (['layer2.3'], ['layer1.2', 'layer3.2']),
    'resnest': (['layer2.3'], ['layer1.2', 'layer3.2']),
    'mobilenet_v2': (['layer3.1'], ['layer2.1', 'layer5.0']),
}


@MODELS.register_module(force=True)
class TwoLevelTestHead(BaseDecodeHead):
    """A user's own head: its ``in_index`` says one level, its forward reads a second one."""

    def __init__(self, low_index: int, low_channels: int, **kwargs):
        super().__init__(**kwargs)
        self.low_index = low_index
        self.fuse = nn.Conv2d(self.in_channels + low_channels, self.channels, 3, padding=1)

    def forward(self, inputs):
        x = self._transform_inputs(inputs)
        low = inputs[self.low_index]
        x = nn.functional.interpolate(x, size=low.shape[2:], mode='bilinear')
        return self.cls_seg(torch.relu(self.fuse(torch.cat([x, low], dim=1))))


def decode_head(kind: str, channels) -> dict:
    """A tiny decode head of ``kind`` on outputs with ``channels``."""
    common = dict(channels=16, num_classes=4, norm_cfg=NORM, align_corners=False,
                  dropout_ratio=0.1, loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0))
    if kind == 'aspp':
        return dict(type='ASPPHead', in_channels=channels[3], in_index=3,
                    dilations=(1, 2, 3, 4), **common)
    if kind == 'deeplabv3plus':
        return dict(type='DepthwiseSeparableASPPHead', in_channels=channels[3], in_index=3,
                    dilations=(1, 2, 3, 4), c1_in_channels=channels[0], c1_channels=8, **common)
    if kind == 'uper':
        return dict(type='UPerHead', in_channels=list(channels), in_index=[0, 1, 2, 3],
                    pool_scales=(1, 2, 3, 6), **common)
    if kind == 'psp':
        return dict(type='PSPHead', in_channels=channels[3], in_index=3,
                    pool_scales=(1, 2, 3, 6), **common)
    if kind == 'fcn':
        return dict(type='FCNHead', in_channels=channels[3], in_index=3, num_convs=2,
                    concat_input=True, **common)
    if kind == 'custom':
        return dict(type='TwoLevelTestHead', in_channels=channels[3], in_index=3, low_index=1,
                    low_channels=channels[1], **common)
    raise KeyError(kind)


#: What each head kind reads of a four-output backbone.
HEAD_READS = {'aspp': [3], 'deeplabv3plus': [0, 3], 'uper': [0, 1, 2, 3], 'psp': [3],
              'fcn': [3], 'custom': [1, 3]}


def tiny_cfg(backbone: str = 'resnet_v1c', head: str = 'deeplabv3plus', split_points=(),
             plain: bool = False, aux: bool = True) -> dict:
    """A tiny segmentor config: InfoPro with ``split_points``, or mmseg's own EncoderDecoder."""
    backbone_cfg, plain_type, channels = copy.deepcopy(BACKBONES[backbone])
    cfg = tiny_deeplab_cfg(split_points=split_points, aux=aux,
                           type='EncoderDecoder' if plain else 'InfoProEncoderDecoder')
    if plain:
        backbone_cfg.pop('variant', None)
        backbone_cfg['type'] = plain_type
    else:
        backbone_cfg['split_points'] = list(split_points)
    cfg['backbone'] = backbone_cfg
    cfg['decode_head'] = decode_head(head, channels)
    if aux:
        cfg['auxiliary_head'].update(in_channels=channels[2], in_index=2)
    return cfg


def small_batch(batch_size=2, seed=0):
    """32x32 crops: every output of the tiny backbones is 4x4 or larger."""
    return make_batch(batch_size=batch_size, height=32, width=32, seed=seed)


def sgd_wrapper(model, lr=0.1, momentum=0.0):
    return InfoProOptimWrapper(torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum))


def module_param_names(model):
    ids = [{id(p) for p in module.parameters()} for module in model.local_modules()]
    return [{name for name, p in model.named_parameters() if id(p) in group} for group in ids]


def step_once(cfg):
    model = build_model(cfg)
    torch.manual_seed(123)
    model.train_step(small_batch(), sgd_wrapper(model))
    return model


def assert_k1_step_equals_mmseg(plain, ours):
    """One SGD step of mmseg's EncoderDecoder and of the K=1 InfoPro segmentor with the same
    weights gives bit-identical losses and parameters."""
    ours.load_state_dict(plain.state_dict(), strict=True)
    logs = []
    for model in (plain, ours):
        torch.manual_seed(0)
        logs.append(model.train_step(small_batch(seed=0), sgd_wrapper(model, momentum=0.9)))
    assert logs[0].keys() == logs[1].keys()
    assert all(torch.equal(torch.as_tensor(logs[0][k]), torch.as_tensor(logs[1][k]))
               for k in logs[0])
    for (name, p), q in zip(plain.named_parameters(), ours.parameters()):
        assert torch.equal(p, q), name
