# SegNeXt (MSCAN-B, LightHamHead) on ADE20K 512x512 trained with InfoPro, K=4: the diff over
# mmseg's own config (1 GPU x 16 images). Units are the patch embeddings (the first is the
# convolutional stem) and the 21 blocks (names: docs/transformers.md); the cuts balance the
# modules' activation memory (planner). The LightHamHead reads stages 1-3 and trains the last
# module. mmseg's AdamW and paramwise_cfg are kept: no decay for norms, lr x10 for every
# parameter named '*head*', which includes the local heads (local_heads.*).
_base_ = [
    'mmseg::segnext/segnext_mscan-b_1xb16-adamw-160k_ade20k-512x512.py',
    './_base_/infopro_runtime.py'
]

local_norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='InfoProEncoderDecoder',
    backbone=dict(type='InfoProMSCAN', split_points=['block1.0', 'patch_embed2', 'block3.3']),
    # The reference heads (_base_/infopro_runtime.py) with BatchNorm: they would take the decode
    # head's GroupNorm of 32 groups, which w's 12-channel layer cannot divide.
    local_heads=dict(
        reconstruction=dict(type='ReconstructionHead', channels=(128, 32, 12), loss_type='bce',
                            align_corners=True, norm_cfg=local_norm_cfg),
        classifier=dict(
            type='LocalClassifierHead', channels=512, dropout_ratio=0.1, align_corners=True,
            norm_cfg=local_norm_cfg,
            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                             avg_non_ignore=True))),
    local_loss_weights=[(0.5, 1.0)])

optim_wrapper = dict(constructor='InfoProOptimWrapperConstructor')
train_dataloader = dict(sampler={{_base_.infopro_sampler}})
default_hooks = {{_base_.infopro_default_hooks}}
train_cfg = {{_base_.infopro_train_cfg}}
