# DeepLab-V3 R-50-D8 on Cityscapes 512x1024 (4 GPUs x 2 images, 40k iterations, SyncBN) trained
# with InfoPro, K=2: the diff over mmseg's own E2E config. All InfoPro configs inherit this one.
_base_ = 'mmseg::deeplabv3/deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py'
custom_imports = dict(imports=['infopro_seg'], allow_failed_imports=False)

model = dict(
    type='InfoProEncoderDecoder',
    backbone=dict(
        type='InfoProResNet',
        variant='ResNetV1c',
        # R-50's layer3 has 6 blocks; cutting after 4 of them roughly balances the two modules'
        # activation memory (stem..layer3.3 vs layer3.4..layer4 + ASPP + FCN aux).
        split_points=['layer3.3']),
    # The reference heads (Sec. 4.3 / appendix): w reconstructs the crop from the cut feature,
    # psi classifies its pixels. in_channels, strides and num_classes are filled in per module.
    # As in the authors' code, both up-sample with align_corners=True (the decode heads keep
    # mmseg's False) and psi's cross-entropy is the mean over valid (non-ignored) pixels.
    local_heads=dict(
        reconstruction=dict(type='ReconstructionHead', channels=(128, 32, 12), loss_type='bce',
                            align_corners=True),
        classifier=dict(
            type='LocalClassifierHead', channels=512, dropout_ratio=0.1, align_corners=True,
            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                             avg_non_ignore=True))),
    # (lambda1 recon, lambda2 task) per local module: the paper's batch-8, 512x1024 setting.
    local_loss_weights=[(1.5, 1.0)])


# Multi-GPU runs: one DDP per local module, each all-reduced once per iteration (docs/multi_gpu.md).
model_wrapper_cfg = dict(type='InfoProDistributedDataParallel')

# Exact resume: a run killed at any checkpoint and resumed with --resume ends as if never
# interrupted. The sampler continues the data stream where it stopped (no replay of the trained
# batches) and seeds each sample's augmentation by (seed, position); the hook saves and restores
# the random states (README, "Exact resume").
train_dataloader = dict(sampler=dict(type='ResumableInfiniteSampler', shuffle=True))
default_hooks = dict(
    exact_resume=dict(type='ExactResumeHook'),
    # Checkpoints written atomically (temp file, fsync, rename), also under mmseg's own tools.
    checkpoint=dict(backend_args=dict(backend='atomic_local')))
# Weights-only loading of stock mmengine checkpoints for load_from / resume, also under mmseg's
# own tools (this project's tools/train.py and tools/test.py switch it on themselves).
custom_hooks = [dict(type='SafeCheckpointLoadingHook')]
