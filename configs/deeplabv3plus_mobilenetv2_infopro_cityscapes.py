# DeepLab-V3+ on MobileNetV2 (dilated, output stride 8; c1 = the end of layer2, 24 channels) on
# Cityscapes 512x1024, InfoPro K=2: the diff over mmseg's config; the cut is the planner's.
# The cut falls after layer5, so the FCN auxiliary head (on layer5) trains module 1 as one more
# local classifier.
# `python tools/analysis_tools/plan_splits.py CONFIG --crop 512 1024 --batch 2 -k 2`.
_base_ = [
    'mmseg::mobilenet_v2/mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-512x1024.py',
    './_base_/infopro_runtime.py'
]

model = dict(
    type='InfoProEncoderDecoder',
    backbone=dict(type='InfoProMobileNetV2', split_points=['layer6.0']),
    local_heads={{_base_.infopro_local_heads}},
    local_loss_weights=[(1.5, 1.0)])

train_dataloader = dict(sampler={{_base_.infopro_sampler}})
default_hooks = {{_base_.infopro_default_hooks}}
train_cfg = {{_base_.infopro_train_cfg}}
# InfoPro's optimizer wrappers (one local backward per module, one step per iteration).
optim_wrapper = dict(constructor='InfoProOptimWrapperConstructor')
