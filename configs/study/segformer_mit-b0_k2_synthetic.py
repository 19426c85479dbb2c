# Does InfoPro learn on a hierarchical transformer: SegFormer MiT-B0 (widths and depths of
# mmseg's segformer_mit-b0, trained from scratch) on the synthetic set of the R-18 study, K=2
# cut where the planner balances the two modules (128x256 crops, batch 8). Compared by
# tools/analysis_tools/compare_methods.py (e2e, greedy, infopro; docs/transformers.md).
_base_ = '../demo/deeplabv3_r18_infopro_synthetic.py'

norm_cfg = dict(type='BN', requires_grad=True)  # one device: no SyncBN
model = dict(
    backbone=dict(
        _delete_=True,
        type='InfoProMixVisionTransformer',
        embed_dims=32,
        num_layers=[2, 2, 2, 2],
        num_heads=[1, 2, 5, 8],
        sr_ratios=[8, 4, 2, 1],
        drop_path_rate=0.1,
        split_points=['layers.1.1.0']),
    decode_head=dict(
        _delete_=True,
        type='SegformerHead',
        in_channels=[32, 64, 160, 256],
        in_index=[0, 1, 2, 3],
        channels=128,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=None)

# mmseg's SegFormer optimizer (AdamW, no decay for norms), at a from-scratch learning rate and
# without the head's x10 (nothing here is pretrained).
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='InfoProOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'pos_block': dict(decay_mult=0.), 'norm': dict(decay_mult=0.)}))
