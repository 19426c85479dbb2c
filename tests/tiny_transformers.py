"""Tiny hierarchical transformers (MiT, Swin, MSCAN) with their mmseg heads, InfoPro and plain."""
import copy

from conftest import make_batch, tiny_deeplab_cfg

BN = dict(type='BN', requires_grad=True)
HEAD = dict(channels=16, num_classes=4, norm_cfg=BN, align_corners=False, dropout_ratio=0.1,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0))
AUX_LOSS = dict(type='CrossEntropyLoss', loss_weight=0.4)

#: name -> (InfoPro backbone, mmseg's type, decode head, auxiliary head or None). Drop path is
#: off (it draws random numbers per block: the comparisons with mmseg need none).
TRANSFORMERS = {
    # SegFormer: MiT and SegformerHead on all four stages, no auxiliary head.
    'mit': (dict(type='InfoProMixVisionTransformer', embed_dims=8, num_layers=[1, 2, 2, 1],
                 num_heads=[1, 2, 4, 8], sr_ratios=[8, 4, 2, 1], drop_path_rate=0.0),
            'MixVisionTransformer',
            dict(type='SegformerHead', in_channels=[8, 16, 32, 64], in_index=[0, 1, 2, 3],
                 **HEAD),
            None),
    # Swin with UPerNet and the FCN auxiliary head on stage 2, as mmseg's configs.
    'swin': (dict(type='InfoProSwinTransformer', embed_dims=16, depths=[2, 2, 2, 2],
                  num_heads=[1, 2, 4, 8], window_size=4, drop_path_rate=0.0),
             'SwinTransformer',
             dict(type='UPerHead', in_channels=[16, 32, 64, 128], in_index=[0, 1, 2, 3],
                  pool_scales=(1, 2, 3, 6), **HEAD),
             dict(type='FCNHead', in_channels=64, in_index=2, num_convs=1, concat_input=False,
                  **{**HEAD, 'channels': 8, 'loss_decode': AUX_LOSS})),
    # SegNeXt: MSCAN and LightHamHead (NMF) on stages 1-3.
    'mscan': (dict(type='InfoProMSCAN', embed_dims=[8, 16, 32, 64], depths=[1, 2, 2, 1],
                   mlp_ratios=[2, 2, 2, 2], drop_path_rate=0.0, norm_cfg=BN),
              'MSCAN',
              dict(type='LightHamHead', in_channels=[16, 32, 64], in_index=[1, 2, 3],
                   ham_channels=16, ham_kwargs=dict(MD_S=1, MD_R=4, train_steps=2, eval_steps=2,
                                                    inv_t=100, rand_init=True),
                   **{**HEAD, 'norm_cfg': dict(type='GN', num_groups=4, requires_grad=True)}),
              None),
}

#: Cuts for K=2 and K=4: after a patch embedding, inside a stage, at a stage's end.
CUTS = {
    'mit': {2: ['layers.2.0'], 4: ['layers.0.1.0', 'layers.1.1.0', 'layers.2.1.1']},
    'swin': {2: ['stages.1.blocks.0'], 4: ['stages.0.blocks.1', 'stages.1.blocks.1',
                                           'stages.2.blocks.0']},
    'mscan': {2: ['block2.0'], 4: ['patch_embed2', 'block2.1', 'block3.0']},
}

#: A piece of each backbone's list of valid split points (refusal messages show it).
VALID_NAMES = {'mit': 'layers.1.1.0-1', 'swin': 'patch_embed, stages.0.blocks.0-1',
               'mscan': 'patch_embed2, block2.0-1'}


def transformer_cfg(name: str, split_points=(), plain: bool = False) -> dict:
    """A tiny segmentor: InfoPro with ``split_points``, or mmseg's own EncoderDecoder."""
    backbone, plain_type, decode_head, aux = copy.deepcopy(TRANSFORMERS[name])
    cfg = tiny_deeplab_cfg(split_points=split_points, aux=aux is not None,
                           type='EncoderDecoder' if plain else 'InfoProEncoderDecoder')
    if plain:
        backbone['type'] = plain_type
    else:
        backbone['split_points'] = list(split_points)
    cfg.update(backbone=backbone, decode_head=decode_head)
    if aux is not None:
        cfg['auxiliary_head'] = aux
    return cfg


def crop_batch(batch_size: int = 2, seed: int = 0) -> dict:
    """64x128 crops: the tiny backbones' last stage is 2x4."""
    return make_batch(batch_size=batch_size, height=64, width=128, seed=seed)
