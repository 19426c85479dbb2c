# SegFormer MiT-B5 on Cityscapes 1024x1024, InfoPro K=2 (see the K=4 config): one cut inside
# stage 2, where the planner balances the two modules' activation memory.
_base_ = './segformer_mit-b5_infopro-k4_cityscapes-1024x1024.py'
model = dict(
    backbone=dict(split_points=['layers.2.1.11']),
    # The paper's K=2 weights (lambda1 recon, lambda2 task).
    local_loss_weights=[(1.5, 1.0)])
