"""mmseg's other DeepLabs under InfoPro: each config trains a step on CPU when shrunk.

The configs keep their depth, split points, heads and loss weights; only widths, the crop and
the normalisation (SyncBN -> BN, one process) are made small so that a step takes about a second.
That the full-size models build with the expected cuts is tested in test_configs.py.
"""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS

from conftest import make_batch
from tiny_models import sgd_wrapper

REPO = Path(__file__).resolve().parents[1]
ZOO = {
    # config: (backbone type, decode head type)
    'deeplabv3plus_r101_infopro_cityscapes.py': ('InfoProResNet', 'DepthwiseSeparableASPPHead'),
    'deeplabv3plus_r101_infopro-k4_cityscapes.py': ('InfoProResNet', 'DepthwiseSeparableASPPHead'),
    'deeplabv3_mobilenetv2_infopro_cityscapes.py': ('InfoProMobileNetV2', 'ASPPHead'),
    'deeplabv3plus_mobilenetv2_infopro_cityscapes.py':
    ('InfoProMobileNetV2', 'DepthwiseSeparableASPPHead'),
    'deeplabv3plus_s101_infopro_cityscapes.py': ('InfoProResNeSt', 'DepthwiseSeparableASPPHead'),
    'deeplabv3_r101_infopro_ade20k.py': ('InfoProResNet', 'ASPPHead'),
    'deeplabv3plus_r101_infopro_ade20k.py': ('InfoProResNet', 'DepthwiseSeparableASPPHead'),
    'deeplabv3_r101_infopro_voc12aug.py': ('InfoProResNet', 'ASPPHead'),
    'deeplabv3plus_r101_infopro_voc12aug.py': ('InfoProResNet', 'DepthwiseSeparableASPPHead'),
}
BN = dict(type='BN', requires_grad=True)


def shrink(model_cfg, crop=(64, 64)):
    """Narrow widths, a small crop and BN; depth, cuts, heads and weights stay the config's."""
    model_cfg.pretrained = None
    model_cfg.data_preprocessor.size = crop
    backbone = model_cfg.backbone
    backbone.norm_cfg = BN
    if backbone.type == 'InfoProMobileNetV2':
        backbone.widen_factor = 0.25
    else:
        backbone.update(base_channels=8, stem_channels=16)
    plain = MODELS.build({**backbone, 'split_points': []})
    channels = [plain.unit_out_channels(plain.output_unit(p)) for p in range(plain.num_outputs)]
    heads = [model_cfg.decode_head, model_cfg.auxiliary_head]
    for head, width in zip(heads, (16, 8)):
        head.update(in_channels=channels[head.in_index], channels=width, norm_cfg=BN)
        if 'c1_in_channels' in head:
            head.update(c1_in_channels=channels[0], c1_channels=8)
    model_cfg.local_heads.reconstruction.channels = (8, 8, 4)
    model_cfg.local_heads.classifier.channels = 16
    return model_cfg


@pytest.mark.parametrize('name', sorted(ZOO))
def test_config_trains_a_step_on_cpu_at_a_tiny_width(name):
    cfg = Config.fromfile(str(REPO / 'configs' / name))
    backbone_type, head_type = ZOO[name]
    assert cfg.model.backbone.type == backbone_type
    assert cfg.model.decode_head.type == head_type
    torch.manual_seed(0)
    model = MODELS.build(shrink(cfg.model))
    num_classes = model.decode_head.num_classes
    log_vars = model.train_step(make_batch(num_classes=num_classes),
                                sgd_wrapper(model, lr=0.01))
    k = model.backbone.num_modules
    assert all(f'm{i}.loss_recon' in log_vars for i in range(1, k))
    assert torch.isfinite(log_vars['loss']) and torch.isfinite(log_vars['decode.loss_ce'])
    if head_type == 'DepthwiseSeparableASPPHead':
        # c1 is the first output; module K gets it detached from module 1.
        assert model.decode_head.infopro_backbone_inputs == [0, model.backbone.num_outputs - 1]
