# The embedded default: a small DeepLab-V3 (ResNetV1c-18-D8, narrow) trained with InfoPro K=2 on
# the generated Cityscapes-format set (tools/generate_synthetic_cityscapes.py), sized to learn in a
# few minutes on 2 CPU cores. It is the R-50 Cityscapes config with a smaller net, crop, schedule.
_base_ = '../deeplabv3_r50_infopro_cityscapes.py'

data_root = 'data/synthetic_cityscapes/'
crop_size = (128, 256)
scale = (512, 256)  # the generated images are 256x512
norm_cfg = dict(type='BN', requires_grad=True)  # one device: no SyncBN

model = dict(
    pretrained=None,  # no download: trained from scratch
    data_preprocessor=dict(size=crop_size),
    backbone=dict(depth=18, base_channels=32, stem_channels=32, norm_cfg=norm_cfg,
                  split_points=['layer3.0']),
    decode_head=dict(in_channels=256, channels=64, dilations=(1, 6, 12, 18), norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=128, channels=32, norm_cfg=norm_cfg),
    local_heads=dict(
        reconstruction=dict(channels=(32, 16, 8)),
        classifier=dict(channels=64)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=scale, ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8, num_workers=2, persistent_workers=True,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=1, persistent_workers=True,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 300
optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=2))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
