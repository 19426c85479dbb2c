# DeepLab-V3+ R-101-D8, InfoPro K=4 (cuts from `plan_splits.py CONFIG --crop 512 1024 --batch 2
# -k 4`); loss weights (0.5, 1) on every local module, as for DeepLab-V3 K=4 (the accuracy study).
_base_ = './deeplabv3plus_r101_infopro_cityscapes.py'
model = dict(
    backbone=dict(split_points=['layer3.0', 'layer3.14', 'layer4.1']),
    local_loss_weights=[(0.5, 1.0)])
