# Table 5, "InfoPro* K=2, batch 12": 4 GPUs x 3 images, lr 0.015, lambda 1 / 0.1.
_base_ = './deeplabv3_r101_infopro_cityscapes.py'
model = dict(local_loss_weights=[(1.0, 0.1)])
train_dataloader = dict(batch_size=3)
optim_wrapper = dict(optimizer=dict(lr=0.015))
