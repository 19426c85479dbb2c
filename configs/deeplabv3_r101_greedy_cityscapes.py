# Baseline: greedy supervised local learning (lambda1 = 0: no reconstruction head, module 1 trained
# by pixel classification alone), the setting InfoPro improves on (Sec. 2, Table 5's DGL row uses
# the same local classifier).
_base_ = './deeplabv3_r101_infopro_cityscapes.py'
model = dict(local_loss_weights=[(0.0, 1.0)])
