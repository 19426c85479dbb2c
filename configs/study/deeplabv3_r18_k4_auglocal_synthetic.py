# K=4 with AugLocal's psi: fresh copies of backbone units that follow each cut (3 for the first
# local module, 1 for the last, sampled evenly), then the FCN pixel classifier.
_base_ = './deeplabv3_r18_k4_synthetic.py'

model = dict(local_heads=dict(classifier=dict(type='AugLocalClassifierHead', depth=(3, 1))))
