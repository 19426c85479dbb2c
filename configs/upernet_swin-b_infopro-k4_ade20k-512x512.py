# UPerNet on Swin-B (ImageNet-1k pretrained, window 7) on ADE20K 512x512 trained with InfoPro,
# K=4: the diff over mmseg's own config (8 GPUs x 2 images). Units are the patch embedding and
# the 24 blocks (names: docs/transformers.md); the cuts balance the modules' activation memory
# (planner). The FCN auxiliary head reads stage 2 and trains the module in which stage 2 ends.
# mmseg's AdamW and paramwise_cfg are kept (no decay for norms, position embeddings and relative
# position bias tables); the local heads train at the base learning rate.
_base_ = [
    'mmseg::swin/swin-base-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
    './_base_/infopro_runtime.py'
]

model = dict(
    type='InfoProEncoderDecoder',
    backbone=dict(
        type='InfoProSwinTransformer',
        split_points=['stages.1.blocks.1', 'stages.2.blocks.10', 'stages.3.blocks.0']),
    local_heads={{_base_.infopro_local_heads}},
    local_loss_weights=[(0.5, 1.0)])

optim_wrapper = dict(constructor='InfoProOptimWrapperConstructor')
train_dataloader = dict(sampler={{_base_.infopro_sampler}})
default_hooks = {{_base_.infopro_default_hooks}}
train_cfg = {{_base_.infopro_train_cfg}}
