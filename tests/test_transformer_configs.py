"""The transformer configs (SegFormer, Swin UPerNet, SegNeXt under InfoPro): each builds at full
size on the meta device with its cuts, trains a step on CPU at a tiny width through its own
optimizer (mmseg's AdamW and paramwise_cfg), and that step applies the paramwise settings."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmseg.registry import MODELS

from conftest import make_batch

REPO = Path(__file__).resolve().parents[1]
BN = dict(type='BN', requires_grad=True)
LR = 6e-5  # mmseg's AdamW learning rate in all three families

#: config -> (backbone type, decode head type, number of units, split points)
CONFIGS = {
    'segformer_mit-b5_infopro-k4_cityscapes-1024x1024.py':
    ('InfoProMixVisionTransformer', 'SegformerHead', 56,
     ['layers.1.1.3', 'layers.2.1.11', 'layers.2.1.27']),
    'segformer_mit-b5_infopro-k2_cityscapes-1024x1024.py':
    ('InfoProMixVisionTransformer', 'SegformerHead', 56, ['layers.2.1.11']),
    'upernet_swin-b_infopro-k4_ade20k-512x512.py':
    ('InfoProSwinTransformer', 'UPerHead', 25,
     ['stages.1.blocks.1', 'stages.2.blocks.10', 'stages.3.blocks.0']),
    'upernet_swin-t_infopro-k2_ade20k-512x512.py':
    ('InfoProSwinTransformer', 'UPerHead', 13, ['stages.2.blocks.4']),
    'segnext_mscan-b_infopro-k4_ade20k-512x512.py':
    ('InfoProMSCAN', 'LightHamHead', 25, ['block1.0', 'patch_embed2', 'block3.3']),
}


def load(name):
    return Config.fromfile(str(REPO / 'configs' / name))


def shrink(model_cfg, crop=(64, 128)):
    """Narrow widths, a small crop and BN; depth, cuts, heads and loss weights stay the
    config's."""
    model_cfg.backbone.init_cfg = None  # no download
    model_cfg.data_preprocessor.size = crop
    backbone = model_cfg.backbone
    if backbone.type == 'InfoProMixVisionTransformer':
        backbone.embed_dims = 8  # x num_heads (1, 2, 5, 8): 8, 16, 40, 64 channels
    elif backbone.type == 'InfoProSwinTransformer':
        backbone.embed_dims = 8 * backbone.num_heads[0]
    else:
        backbone.update(embed_dims=[8, 16, 40, 64], norm_cfg=BN)
    plain = MODELS.build({**backbone, 'split_points': []})
    channels = [plain.unit_out_channels(plain.output_unit(p)) for p in range(plain.num_outputs)]
    heads = [model_cfg.decode_head] + ([model_cfg.auxiliary_head]
                                       if 'auxiliary_head' in model_cfg else [])
    for head, width in zip(heads, (16, 8)):
        index = head.in_index
        in_channels = ([channels[i] for i in index] if isinstance(index, (list, tuple))
                       else channels[index])
        head.update(in_channels=in_channels, channels=width)
        head['norm_cfg'] = dict(BN)  # replaced, not merged (LightHamHead's GN has num_groups)
        if head.type == 'LightHamHead':
            head.ham_channels = 16
    for kind, width in (('reconstruction', (8, 8, 4)), ('classifier', 16)):
        model_cfg.local_heads[kind].update(channels=width)
        if 'norm_cfg' in model_cfg.local_heads[kind]:
            model_cfg.local_heads[kind].norm_cfg = BN
    return model_cfg


def test_every_transformer_config_is_listed():
    shipped = {p.name for p in (REPO / 'configs').glob('*.py')
               if p.name.startswith(('segformer', 'upernet_swin', 'segnext'))}
    assert shipped == set(CONFIGS)


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_config_builds_at_full_size_on_the_meta_device(name):
    cfg = load(name)
    backbone_type, head_type, num_units, split_points = CONFIGS[name]
    with torch.device('meta'):  # no memory, no weights loaded
        model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == backbone_type
    assert type(model.decode_head).__name__ == head_type
    assert len(model.backbone.unit_names) == num_units
    assert model.backbone.split_points == split_points
    assert model.backbone.num_modules == len(split_points) + 1
    # mmseg's pretrained backbone weights are kept (loaded by init_weights, as in mmseg).
    assert model.backbone.init_cfg['type'] == 'Pretrained'
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert 'norm' in cfg.optim_wrapper.paramwise_cfg.custom_keys


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_config_trains_a_step_at_a_tiny_width_with_its_own_optimizer(name):
    cfg = load(name)
    torch.manual_seed(0)
    model = MODELS.build(shrink(cfg.model))
    model.init_weights()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = make_batch(height=64, width=128, num_classes=model.decode_head.num_classes)
    log_vars = model.train_step(batch, wrapper)
    k = model.backbone.num_modules
    assert all(f'm{i}.loss_recon' in log_vars for i in range(1, k))
    assert torch.isfinite(log_vars['loss']) and torch.isfinite(log_vars['decode.loss_ce'])
    for module in model.local_modules():  # every module was updated
        ids = {id(p) for p in module.parameters()}
        assert any(not torch.equal(before[n], p) for n, p in model.named_parameters()
                   if id(p) in ids)


def one_adamw_step(cfg, weight_decay):
    """The tiny SegFormer K=4 after one train_step with the config's optimizer settings at the
    given weight decay; its parameters before and after."""
    cfg = copy.deepcopy(cfg)
    cfg.optim_wrapper.optimizer.weight_decay = weight_decay
    torch.manual_seed(0)
    model = MODELS.build(shrink(cfg.model))
    model.init_weights()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.manual_seed(1)
    model.train_step(make_batch(height=64, width=128, num_classes=19),
                     build_optim_wrapper(model, cfg.optim_wrapper))
    return before, dict(model.named_parameters())


def test_train_step_applies_mmseg_paramwise_cfg_to_backbone_and_local_heads():
    """SegFormer's AdamW: norms are not decayed (decay_mult=0), other weights are; parameters
    named '*head*' (decode head and the local heads w, psi) step with lr x10."""
    cfg = load('segformer_mit-b5_infopro-k4_cityscapes-1024x1024.py')
    assert cfg.optim_wrapper.optimizer.lr == LR
    before, decayed = one_adamw_step(cfg, weight_decay=0.01)
    _, undecayed = one_adamw_step(cfg, weight_decay=0.0)
    norm = 'backbone.layers.0.1.0.norm1.weight'
    linear = 'backbone.layers.0.1.0.attn.attn.in_proj_weight'
    assert torch.equal(decayed[norm], undecayed[norm])
    assert not torch.equal(decayed[linear], undecayed[linear])
    # AdamW's first step moves a parameter by lr * g / (|g| + eps): at most the group's lr,
    # reached where |g| >> eps.
    for name, lr in ((linear, LR), ('local_heads.0.classifier.conv_seg.weight', 10 * LR),
                     ('local_heads.2.reconstruction.squeeze.conv.weight', 10 * LR),
                     ('decode_head.fusion_conv.conv.weight', 10 * LR)):
        step = (undecayed[name] - before[name]).abs().max()
        torch.testing.assert_close(step, torch.tensor(lr), rtol=1e-3, atol=0, msg=name)
