# The accuracy study's model (docs/study.md): the demo's DeepLab-V3 R-18 on the synthetic set, cut
# into K=4 modules at the stage boundaries (stem+layer1 | layer2 | layer3 | layer4 + heads), with
# the loss weights linear from (3, 0.5) to (1.5, 1) (the study's `infopro` row; the R-101 K=3/K=4
# configs use its `infopro-0.5` row's (0.5, 1)). The methods compared by
# tools/analysis_tools/compare_methods.py are overrides of this config.
_base_ = '../demo/deeplabv3_r18_infopro_synthetic.py'

model = dict(
    backbone=dict(split_points=['layer1.1', 'layer2.1', 'layer3.1']),
    local_loss_weights=dict(_delete_=True, first=(3.0, 0.5), last=(1.5, 1.0)))
