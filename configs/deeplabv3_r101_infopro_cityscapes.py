# The paper's Table 5 row "InfoPro* K=2": DeepLab-V3 R-101-D8, Cityscapes 512x1024, batch 8
# (4 GPUs x 2), 40k iterations, SyncBN, lambda 1.5 / 1; module 1 = stem .. layer3.12.
_base_ = './deeplabv3_r50_infopro_cityscapes.py'
model = dict(
    pretrained='open-mmlab://resnet101_v1c',
    backbone=dict(depth=101, split_points='paper_r101_k2'))
