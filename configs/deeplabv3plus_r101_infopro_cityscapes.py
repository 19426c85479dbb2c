# DeepLab-V3+ R-101-D8 on Cityscapes 512x1024 (4 GPUs x 2 images, 40k iterations, SyncBN) trained
# with InfoPro, K=2: the diff over mmseg's own E2E config. The decode head also reads layer1 (c1);
# module 2 gets it detached (the decoder's c1 branch is trained, layer1 only by module 1's loss).
# The cut is the planner's (InfoPro*): `python tools/analysis_tools/plan_splits.py CONFIG
# --crop 512 1024 --batch 2 -k 2`.
_base_ = [
    'mmseg::deeplabv3plus/deeplabv3plus_r101-d8_4xb2-40k_cityscapes-512x1024.py',
    './_base_/infopro_runtime.py'
]

model = dict(
    type='InfoProEncoderDecoder',
    backbone=dict(type='InfoProResNet', variant='ResNetV1c', split_points=['layer3.16']),
    local_heads={{_base_.infopro_local_heads}},
    local_loss_weights=[(1.5, 1.0)])

train_dataloader = dict(sampler={{_base_.infopro_sampler}})
default_hooks = {{_base_.infopro_default_hooks}}
train_cfg = {{_base_.infopro_train_cfg}}
# InfoPro's optimizer wrappers (one local backward per module, one step per iteration).
optim_wrapper = dict(constructor='InfoProOptimWrapperConstructor')
