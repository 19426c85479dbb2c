# DeepLab-V3+ R-101-D8 on ADE20K 512x512 (4 GPUs x 4 images, 80k iterations) trained with
# InfoPro, K=2: the diff over mmseg's own config. Loss weights as for Cityscapes; the cut is the
# planner's (InfoPro*) for 512x512, batch 4:
# `python tools/analysis_tools/plan_splits.py CONFIG --crop 512 512 --batch 4 -k 2`.
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r101-d8_4xb4-80k_ade20k-512x512.py'
custom_imports = dict(imports=['infopro_seg'], allow_failed_imports=False)

model = dict(
    type='InfoProEncoderDecoder',
    backbone=dict(type='InfoProResNet', variant='ResNetV1c', split_points=['layer3.18']),
    # w and psi as in the authors' code (align_corners=True, psi's CE averaged over valid pixels),
    # as in configs/deeplabv3_r50_infopro_cityscapes.py.
    local_heads=dict(
        reconstruction=dict(type='ReconstructionHead', channels=(128, 32, 12), loss_type='bce',
                            align_corners=True),
        classifier=dict(
            type='LocalClassifierHead', channels=512, dropout_ratio=0.1, align_corners=True,
            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                             avg_non_ignore=True))),
    local_loss_weights=[(1.5, 1.0)])
model_wrapper_cfg = dict(type='InfoProDistributedDataParallel')

# Exact resume and safe checkpoint I/O, as in configs/deeplabv3_r50_infopro_cityscapes.py.
train_dataloader = dict(sampler=dict(type='ResumableInfiniteSampler', shuffle=True))
default_hooks = dict(
    exact_resume=dict(type='ExactResumeHook'),
    checkpoint=dict(backend_args=dict(backend='atomic_local')))  # atomic checkpoint writes
custom_hooks = [dict(type='SafeCheckpointLoadingHook')]  # weights-only load_from / resume
