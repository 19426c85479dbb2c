"""An AugLocal-style psi: a few residual blocks shaped like the following ones, then psi."""
from typing import Optional, Sequence

import torch
from mmcv.cnn import ConvModule
from mmseg.models.backbones.resnet import BasicBlock
from mmseg.registry import MODELS
from torch import nn

from .local_classifier_head import LocalClassifierHead


@MODELS.register_module()
class AugLocalClassifierHead(LocalClassifierHead):
    """psi with an auxiliary network that imitates the layers after the cut (kind ``'classifier'``).

    AugLocal (Ma et al., ICLR 2024) builds the auxiliary net of local module k from a few layers
    of the primary network that follow module k (own parameters, same structure), so that the
    local loss asks module k for features the *next* layers can use, not features that are
    linearly separable already (which starves later modules: the "collapse" of greedy local
    learning). Here those layers are ResNet basic blocks (3x3-3x3 with a residual, mmseg's
    ``BasicBlock``) at the module output's resolution: block i has
    ``in_channels * width_multipliers[i]`` channels and dilation ``dilations[i]``, as the following
    blocks of a dilated ResNet stage and the next stage would (a channel change gets a 1x1
    projection on the residual). An FCN pixel classifier (:class:`LocalClassifierHead`) follows.

    The segmentor fills in only ``in_channels`` (not which units follow the cut), so the blocks
    imitate the following units' shape by the multipliers rather than copy the exact units.

    Args:
        in_channels: Channels of the local module's output.
        num_classes: Classes.
        width_multipliers: One entry per block: its width as a multiple of ``in_channels``.
        dilations: One dilation per block (1 for all when ``None``).
        channels: Width of the FCN classifier's hidden conv.
        norm_cfg: Normalisation in the blocks and the classifier.
        **kwargs: Any other :class:`LocalClassifierHead` argument.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 width_multipliers: Sequence[float] = (1, 2),
                 dilations: Optional[Sequence[int]] = None,
                 channels: int = 512,
                 norm_cfg: Optional[dict] = dict(type='BN', requires_grad=True),
                 **kwargs):
        if not width_multipliers:
            raise ValueError('width_multipliers needs at least one block')
        dilations = list(dilations) if dilations is not None else [1] * len(width_multipliers)
        if len(dilations) != len(width_multipliers):
            raise ValueError(f'dilations ({len(dilations)}) and width_multipliers '
                             f'({len(width_multipliers)}) need one entry per block')
        widths = [max(1, int(round(in_channels * m))) for m in width_multipliers]
        super().__init__(in_channels=widths[-1], num_classes=num_classes, channels=channels,
                         norm_cfg=norm_cfg, **kwargs)
        blocks, width_in = [], in_channels
        for width, dilation in zip(widths, dilations):
            shortcut = None
            if width != width_in:
                shortcut = ConvModule(width_in, width, 1, norm_cfg=norm_cfg, act_cfg=None)
            blocks.append(BasicBlock(width_in, width, dilation=dilation, downsample=shortcut,
                                     norm_cfg=norm_cfg))
            width_in = width
        self.aux_blocks = nn.Sequential(*blocks)

    def _forward_feature(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The auxiliary blocks, then the FCN convs of :class:`LocalClassifierHead`."""
        inputs = list(inputs)
        inputs[self.in_index] = self.aux_blocks(inputs[self.in_index])
        return super()._forward_feature(inputs)
