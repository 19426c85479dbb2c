# InfoPro K=4 with every local module checkpointed: backbone units, ASPP and FCN heads, w and psi
# are recomputed in their module's backward (model.checkpointing; gradients and BN statistics
# equal the run without it). Memory and time against E2E, with_cp and AMP: docs/memory.md.
_base_ = './deeplabv3_r101_infopro-k4_cityscapes.py'
model = dict(checkpointing=True)
