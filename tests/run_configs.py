"""Config texts of tiny training runs on the synthetic set, shared by the tool and fault tests.

Each is formatted with ``repo`` (the repository root) and ``data_root``.
"""

#: The demo config, narrowed to train in seconds on the CPU.
NARROW_DEMO = """
_base_ = '{repo}/configs/demo/deeplabv3_r18_infopro_synthetic.py'
data_root = '{data_root}'
model = dict(backbone=dict(base_channels=8, stem_channels=16),
             decode_head=dict(in_channels=64, channels=16),
             auxiliary_head=dict(in_channels=32, channels=8),
             local_heads=dict(reconstruction=dict(channels=(8, 8, 4)), classifier=dict(channels=8)))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=2, val_interval=100)
"""

#: The narrow demo on 48x96 crops, with its training pipeline.
CROPPED_NARROW_DEMO = """
_base_ = '{repo}/configs/demo/deeplabv3_r18_infopro_synthetic.py'
data_root = '{data_root}'
crop_size = (48, 96)
model = dict(data_preprocessor=dict(size=crop_size),
             backbone=dict(base_channels=8, stem_channels=16),
             decode_head=dict(in_channels=64, channels=16),
             auxiliary_head=dict(in_channels=32, channels=8),
             local_heads=dict(reconstruction=dict(channels=(8, 8, 4)), classifier=dict(channels=8)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(128, 64), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
"""
