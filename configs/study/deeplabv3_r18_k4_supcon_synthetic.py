# K=4 with the supervised-contrastive psi (SupConHead) in every local module.
_base_ = './deeplabv3_r18_k4_synthetic.py'

model = dict(local_heads=dict(classifier=dict(
    _delete_=True, type='SupConHead', channels=128, proj_channels=64, temperature=0.1,
    max_pixels_per_class=64)))
