"""Shared fixtures: tiny DeepLab-V3 models and batches that run in well under a second on CPU."""
import copy
import os

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The tests' models are tiny: a second intra-op thread buys nothing there, and on a shared CPU
# two threads per process oversubscribe the cores (a 0.5 s test took 12-20 s at a load of 3).
# Subprocesses the tests start keep their own default.
torch.set_num_threads(1)

import infopro_seg  # noqa: E402,F401  (registers components)
from mmseg.utils import register_all_modules  # noqa: E402

register_all_modules(init_default_scope=True)


def tiny_deeplab_cfg(split_points=('layer3.0', ), norm='BN', depth=18, num_classes=4,
                     loss_weights=((1.5, 1.0), ), aux=True, type='InfoProEncoderDecoder'):
    """A small dilated DeepLab-V3 (ResNetV1c-18, ASPP, FCN aux head) as an mmseg model config."""
    norm_cfg = dict(type='GN', num_groups=4, requires_grad=True) if norm == 'GN' else dict(
        type=norm, requires_grad=True)
    backbone = dict(
        type='InfoProResNet' if type == 'InfoProEncoderDecoder' else 'ResNetV1c',
        depth=depth, stem_channels=16, base_channels=8, num_stages=4, out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), norm_cfg=norm_cfg, norm_eval=False,
        contract_dilation=True)
    if type == 'InfoProEncoderDecoder':
        backbone.update(variant='ResNetV1c', split_points=list(split_points))
    expansion = 4 if depth >= 50 else 1
    cfg = dict(
        type=type,
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0, size_divisor=8,
                               seg_pad_val=255),
        backbone=backbone,
        decode_head=dict(type='ASPPHead', in_channels=64 * expansion, in_index=3, channels=16,
                         dilations=(1, 2, 3, 4), dropout_ratio=0.1, num_classes=num_classes,
                         norm_cfg=norm_cfg, align_corners=False,
                         loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
        train_cfg=dict(), test_cfg=dict(mode='whole'))
    if aux:
        cfg['auxiliary_head'] = dict(
            type='FCNHead', in_channels=32 * expansion, in_index=2, channels=8, num_convs=1,
            concat_input=False, dropout_ratio=0.1, num_classes=num_classes, norm_cfg=norm_cfg,
            align_corners=False, loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4))
    if type == 'InfoProEncoderDecoder':
        cfg.update(
            local_heads=dict(
                reconstruction=dict(type='ReconstructionHead', channels=(16, 8, 4)),
                classifier=dict(type='LocalClassifierHead', channels=16)),
            local_loss_weights=[list(w) for w in loss_weights])
    return cfg


def build_model(cfg, seed=0):
    from mmengine.config import ConfigDict
    from mmseg.registry import MODELS
    torch.manual_seed(seed)
    model = MODELS.build(ConfigDict(copy.deepcopy(cfg)))
    model.init_weights()
    return model


def make_batch(batch_size=2, height=64, width=64, num_classes=4, seed=0):
    """A batch as the dataloader gives it: uint8 images and SegDataSamples with labels."""
    from infopro_seg.utils import random_seg_batch
    return random_seg_batch(batch_size, (height, width), num_classes, seed=seed)


@pytest.fixture
def tiny_cfg():
    return tiny_deeplab_cfg
