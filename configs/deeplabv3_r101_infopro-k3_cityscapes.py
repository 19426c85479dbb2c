# InfoPro K=3 on R-101 (not in the paper for segmentation). The cuts balance the modules'
# activation memory (InfoPro*): `python tools/analysis_tools/plan_splits.py CONFIG --crop 512 1024
# --batch 2 -k 3` chose them (docs/memory.md). The loss weights go linearly from the first to the
# last local module, as the paper does for K > 2 on CIFAR (early modules weigh reconstruction more);
# the accuracy study (README, "The study") kept this schedule over the paper's (5, 0) -> (0.5, 1)
# and the other local objectives. `_delete_` replaces the base's list of pairs by the schedule dict.
_base_ = './deeplabv3_r101_infopro_cityscapes.py'
model = dict(
    backbone=dict(split_points=['layer3.5', 'layer3.18']),
    local_loss_weights=dict(_delete_=True, first=(3.0, 0.5), last=(1.5, 1.0)))
