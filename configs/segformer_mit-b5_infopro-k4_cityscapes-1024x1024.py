# SegFormer MiT-B5 on Cityscapes 1024x1024 trained with InfoPro, K=4: the diff over mmseg's own
# config (mmseg trains it on 8 GPUs x 1 image). Units are the patch embeddings and the 52 blocks
# (names: docs/transformers.md); the cuts balance the modules' activation memory (planner).
# mmseg's AdamW and paramwise_cfg are kept: no decay for norms, lr x10 for every parameter named
# '*head*', which includes the local heads (local_heads.*), randomly initialised like the
# decode head.
_base_ = [
    'mmseg::segformer/segformer_mit-b5_8xb1-160k_cityscapes-1024x1024.py',
    './_base_/infopro_runtime.py'
]

model = dict(
    type='InfoProEncoderDecoder',
    backbone=dict(
        type='InfoProMixVisionTransformer',
        split_points=['layers.1.1.3', 'layers.2.1.11', 'layers.2.1.27']),
    local_heads={{_base_.infopro_local_heads}},
    # The K=4 ResNet configs' weights, level with greedy in the project's study.
    local_loss_weights=[(0.5, 1.0)])

optim_wrapper = dict(constructor='InfoProOptimWrapperConstructor')
train_dataloader = dict(sampler={{_base_.infopro_sampler}})
default_hooks = {{_base_.infopro_default_hooks}}
train_cfg = {{_base_.infopro_train_cfg}}
