# InfoPro K=4 on R-101 (not in the paper for segmentation): see the K=3 config (cuts from
# plan_splits.py -k 4 at 512x1024, batch 2; loss weights (0.5, 1) from the accuracy study).
_base_ = './deeplabv3_r101_infopro_cityscapes.py'
model = dict(
    backbone=dict(split_points=['layer3.1', 'layer3.11', 'layer3.21']),
    local_loss_weights=[(0.5, 1.0)])
