# What every InfoPro config adds to mmseg's own config of the same model. Inherit it beside
# mmseg's: `_base_ = ['mmseg::<model config>', '<this file>']`. Keys that mmseg's base also sets
# (model, train_dataloader, default_hooks) cannot be set twice among bases, so they are named
# `infopro_*` here and each config places them: `local_heads={{_base_.infopro_local_heads}}`,
# `train_dataloader = dict(sampler={{_base_.infopro_sampler}})`,
# `default_hooks = {{_base_.infopro_default_hooks}}`, `train_cfg = {{_base_.infopro_train_cfg}}`.
custom_imports = dict(imports=['infopro_seg'], allow_failed_imports=False)

# The config is planned before anything is built (infopro_fit, split_points='auto'), and the
# optimizer wrapper is InfoPro's (one local backward per module, one step per iteration), also
# under mmseg's own tools/train.py.
runner_type = 'InfoProRunner'

# Multi-GPU runs: one DDP per local module, each all-reduced once per iteration
# (docs/multi_gpu.md).
model_wrapper_cfg = dict(type='InfoProDistributedDataParallel')

# Weights-only load_from / resume of stock mmengine checkpoints, also under mmseg's own tools
# (this project's tools/train.py and tools/test.py switch it on themselves).
custom_hooks = [dict(type='SafeCheckpointLoadingHook')]

# The reference heads (Sec. 4.3 / appendix): w reconstructs the crop from the cut feature, psi
# classifies its pixels; in_channels, strides and num_classes are filled in per module. As in the
# authors' code, both up-sample with align_corners=True (the decode heads keep mmseg's False) and
# psi's cross-entropy is the mean over valid (non-ignored) pixels.
infopro_local_heads = dict(
    reconstruction=dict(type='ReconstructionHead', channels=(128, 32, 12), loss_type='bce',
                        align_corners=True),
    classifier=dict(
        type='LocalClassifierHead', channels=512, dropout_ratio=0.1, align_corners=True,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                         avg_non_ignore=True)))

# Exact resume: a run killed at any checkpoint and resumed with --resume ends as if never
# interrupted. The sampler continues the data stream where it stopped (no replay of the trained
# batches) and seeds each sample's augmentation by (seed, position); the hook saves and restores
# the random states (README, "Exact resume").
infopro_sampler = dict(type='ResumableInfiniteSampler', shuffle=True)
# mmseg's iteration-based loop, except that a resumed run does not load the trained batches again.
infopro_train_cfg = dict(type='ResumableIterBasedTrainLoop')
infopro_default_hooks = dict(
    exact_resume=dict(type='ExactResumeHook'),
    # Checkpoints written atomically (temp file, fsync, rename), also under mmseg's own tools;
    # a failed save (full disk, read-only work dir) keeps the earlier checkpoints and stops the
    # run with one line (on_save_error='retry': goes on, saves at the next interval). The ranks'
    # random states are gathered into every checkpoint (docs/faults.md).
    checkpoint=dict(type='FaultTolerantCheckpointHook', on_save_error='stop',
                    backend_args=dict(backend='atomic_local')),
    # SIGTERM / SIGUSR1: finish the iteration, save it, exit with code 4 (docs/faults.md).
    preemption=dict(type='PreemptionCheckpointHook', signals=('SIGTERM', 'SIGUSR1')))
