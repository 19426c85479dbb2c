# DeepLab-V3+ on ResNeSt S-101-D8 (split-attention blocks, 128-channel deep stem) on Cityscapes
# 512x1024 (4 GPUs x 2 images, 80k iterations), InfoPro K=2: the diff over mmseg's config.
# ResNeSt's blocks are ResNet bottlenecks in layer1..layer4, so it is cut like R-101; the cut is
# the planner's.
# `python tools/analysis_tools/plan_splits.py CONFIG --crop 512 1024 --batch 2 -k 2`.
_base_ = [
    'mmseg::resnest/resnest_s101-d8_deeplabv3plus_4xb2-80k_cityscapes-512x1024.py',
    './_base_/infopro_runtime.py'
]

model = dict(
    type='InfoProEncoderDecoder',
    backbone=dict(type='InfoProResNeSt', split_points=['layer3.14']),
    local_heads={{_base_.infopro_local_heads}},
    local_loss_weights=[(1.5, 1.0)])

train_dataloader = dict(sampler={{_base_.infopro_sampler}})
default_hooks = {{_base_.infopro_default_hooks}}
train_cfg = {{_base_.infopro_train_cfg}}
# InfoPro's optimizer wrappers (one local backward per module, one step per iteration).
optim_wrapper = dict(constructor='InfoProOptimWrapperConstructor')
