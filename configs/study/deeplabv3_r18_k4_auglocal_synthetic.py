# K=4 with the AugLocal-style psi: two residual blocks shaped like the following layers, then the
# FCN pixel classifier.
_base_ = './deeplabv3_r18_k4_synthetic.py'

model = dict(local_heads=dict(classifier=dict(
    type='AugLocalClassifierHead', width_multipliers=(1, 2), dilations=(1, 2))))
