# InfoPro K=3 on R-101 (not in the paper for segmentation). The cuts balance the modules'
# activation memory (InfoPro*): `python tools/analysis_tools/plan_splits.py CONFIG --crop 512 1024
# --batch 2 -k 3` chose them (docs/memory.md). Loss weights (lambda1, lambda2) = (0.5, 1) on every
# local module: in the K=4 accuracy study (docs/study.md; 500 iterations) the reconstruction
# weight cost accuracy the more the larger it was, and (0.5, 1) matched greedy local learning
# (26.39 +- 0.24 mIoU against 26.40 +- 0.08 over 3 seeds), where linear (3, 0.5) -> (1.5, 1)
# trailed it by 0.7 and the paper's K > 2 schedule, (5, 0) -> (0.5, 1), by 2.0 (seed 0).
_base_ = './deeplabv3_r101_infopro_cityscapes.py'
model = dict(
    backbone=dict(split_points=['layer3.5', 'layer3.18']),
    local_loss_weights=[(0.5, 1.0)])
