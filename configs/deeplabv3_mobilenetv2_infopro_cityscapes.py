# DeepLab-V3 on MobileNetV2 (dilated to output stride 8, as mmseg's configs/mobilenet_v2) on
# Cityscapes 512x1024 (4 GPUs x 2 images, 80k iterations), InfoPro K=2: the diff over mmseg's
# config.
# MobileNetV2's units are its stem and inverted-residual blocks, named as mmseg names its stages
# (layer1 .. layer7); the cut is the planner's (InfoPro*, 512x1024, batch 2).
# `python tools/analysis_tools/plan_splits.py CONFIG --crop 512 1024 --batch 2 -k 2`.
_base_ = [
    'mmseg::mobilenet_v2/mobilenet-v2-d8_deeplabv3_4xb2-80k_cityscapes-512x1024.py',
    './_base_/infopro_runtime.py'
]

model = dict(
    type='InfoProEncoderDecoder',
    backbone=dict(type='InfoProMobileNetV2', split_points=['layer5.1']),
    local_heads={{_base_.infopro_local_heads}},
    local_loss_weights=[(1.5, 1.0)])

train_dataloader = dict(sampler={{_base_.infopro_sampler}})
default_hooks = {{_base_.infopro_default_hooks}}
train_cfg = {{_base_.infopro_train_cfg}}
# InfoPro's optimizer wrappers (one local backward per module, one step per iteration).
optim_wrapper = dict(constructor='InfoProOptimWrapperConstructor')
