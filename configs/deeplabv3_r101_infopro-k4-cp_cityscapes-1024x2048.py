# Full-resolution Cityscapes crops (1024x2048, 2 images per GPU) with InfoPro K=4, every local
# module checkpointed and AMP (float16 + dynamic loss scaling). Estimated peak: 0.36x E2E's at
# 512x1024 (3078 MiB, meta-device estimate); without AMP 0.53x (docs/composition.md). AMP here is
# mmengine's AmpOptimWrapper, which needs a GPU.
_base_ = './deeplabv3_r101_infopro-k4-cp_cityscapes.py'
crop_size = (1024, 2048)
model = dict(data_preprocessor=dict(size=crop_size))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 1024), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
