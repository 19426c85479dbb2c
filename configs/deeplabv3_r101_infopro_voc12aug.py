# DeepLab-V3 R-101-D8 on Pascal VOC 2012 + SBD aug 512x512 (4 GPUs x 4 images, 40k
# iterations) trained with InfoPro, K=2: the diff over mmseg's own config. Loss weights as for
# Cityscapes; the cut is the planner's (InfoPro*) for 512x512, batch 4:
# `python tools/analysis_tools/plan_splits.py CONFIG --crop 512 512 --batch 4 -k 2`.
_base_ = [
    'mmseg::deeplabv3/deeplabv3_r101-d8_4xb4-40k_voc12aug-512x512.py',
    './_base_/infopro_runtime.py'
]

model = dict(
    type='InfoProEncoderDecoder',
    backbone=dict(type='InfoProResNet', variant='ResNetV1c', split_points=['layer3.11']),
    local_heads={{_base_.infopro_local_heads}},
    local_loss_weights=[(1.5, 1.0)])

train_dataloader = dict(sampler={{_base_.infopro_sampler}})
default_hooks = {{_base_.infopro_default_hooks}}
train_cfg = {{_base_.infopro_train_cfg}}
# InfoPro's optimizer wrappers (one local backward per module, one step per iteration).
optim_wrapper = dict(constructor='InfoProOptimWrapperConstructor')
