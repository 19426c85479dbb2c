# Table 5, "InfoPro* K=2, 640x1280 crops": batch 8 (4 GPUs x 2), lr 0.015, lambda 2 / 1.
_base_ = './deeplabv3_r101_infopro_cityscapes.py'
crop_size = (640, 1280)
model = dict(data_preprocessor=dict(size=crop_size), local_loss_weights=[(2.0, 1.0)])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2048, 1024), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(optimizer=dict(lr=0.015))
