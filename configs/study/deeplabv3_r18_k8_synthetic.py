# The study's model cut after every residual block (K=8): where the paper expects greedy local
# learning to lose the information later modules need (its CIFAR collapse grows with K) and
# InfoPro's reconstruction term to pay for itself. Same loss-weight schedule, spread over 7
# local modules.
_base_ = './deeplabv3_r18_k4_synthetic.py'

model = dict(backbone=dict(split_points=['layer1.0', 'layer1.1', 'layer2.0', 'layer2.1',
                                         'layer3.0', 'layer3.1', 'layer4.0']))
