# UPerNet on Swin-T (ImageNet-1k pretrained, window 7) on ADE20K 512x512 trained with InfoPro,
# K=2: the diff over mmseg's own config (see the Swin-B K=4 config); the planner's cut.
_base_ = [
    'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
    './_base_/infopro_runtime.py'
]

model = dict(
    type='InfoProEncoderDecoder',
    backbone=dict(type='InfoProSwinTransformer', split_points=['stages.2.blocks.4']),
    local_heads={{_base_.infopro_local_heads}},
    # The paper's K=2 weights (lambda1 recon, lambda2 task).
    local_loss_weights=[(1.5, 1.0)])

optim_wrapper = dict(constructor='InfoProOptimWrapperConstructor')
train_dataloader = dict(sampler={{_base_.infopro_sampler}})
default_hooks = {{_base_.infopro_default_hooks}}
train_cfg = {{_base_.infopro_train_cfg}}
