# DeepLab-V3 R-50-D8 on Cityscapes 512x1024 (4 GPUs x 2 images, 40k iterations, SyncBN) trained
# with InfoPro, K=2: the diff over mmseg's own E2E config (what every InfoPro config adds is in
# _base_/infopro_runtime.py). The other DeepLab-V3 Cityscapes configs inherit this one.
_base_ = [
    'mmseg::deeplabv3/deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    './_base_/infopro_runtime.py'
]

model = dict(
    type='InfoProEncoderDecoder',
    backbone=dict(
        type='InfoProResNet',
        variant='ResNetV1c',
        # R-50's layer3 has 6 blocks; cutting after 4 of them roughly balances the two modules'
        # activation memory (stem..layer3.3 vs layer3.4..layer4 + ASPP + FCN aux).
        split_points=['layer3.3']),
    local_heads={{_base_.infopro_local_heads}},
    # (lambda1 recon, lambda2 task) per local module: the paper's batch-8, 512x1024 setting.
    local_loss_weights=[(1.5, 1.0)])

train_dataloader = dict(sampler={{_base_.infopro_sampler}})
default_hooks = {{_base_.infopro_default_hooks}}
train_cfg = {{_base_.infopro_train_cfg}}
# InfoPro's optimizer wrappers (one local backward per module, one step per iteration).
optim_wrapper = dict(constructor='InfoProOptimWrapperConstructor')
