"""AugLocal's psi (Ma et al., ICLR 2024): copies of the layers after the cut, then psi."""
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn import ConvModule
from mmseg.registry import MODELS
from torch import nn

from ...errors import ConfigError

from .local_classifier_head import LocalClassifierHead

#: ``depth -> [(fresh copy, in_channels, out_channels), ...]`` of the units after one cut (see
#: :meth:`~infopro_seg.models.backbones.InfoProBackbone.following_unit_copies`).
UnitCopier = Callable[[int], List[Tuple[nn.Module, int, int]]]


def pyramid_depth(depth: Union[int, Sequence[int]], module: int, num_local: int) -> int:
    """AugLocal's pyramidal depth: ``(first, last)`` interpolated linearly over the local
    modules (module 0 gets ``first``, module ``num_local - 1`` gets ``last``); an int is used
    as is for every module."""
    if isinstance(depth, int):
        return depth
    first, last = depth
    if num_local <= 1:
        return int(first)
    return int(round(first + (last - first) * module / (num_local - 1)))


@MODELS.register_module()
class AugLocalClassifierHead(LocalClassifierHead):
    """psi behind an auxiliary network made of the primary network's following layers.

    Greedy local learning asks each module for features that are linearly separable already;
    that starves the layers after it (the "collapse" InfoPro also targets). AugLocal instead
    builds the auxiliary network of module k from a few layers of the primary network that follow
    module k, sampled uniformly among them, with their own parameters: the local loss then asks
    module k for features the *next* layers can use. The auxiliary depth shrinks linearly from
    the first local module to the last (a pyramid), as fewer layers follow. Here the sampled units
    are fresh copies of the backbone's own units (ResNet blocks, MobileNetV2 blocks, stem pieces),
    a 1x1 conv + norm + ReLU bridges a channel change where units in between were skipped, and
    the FCN pixel classifier of :class:`LocalClassifierHead` follows (AugLocal's classifier is
    global pooling + fc; segmentation needs a per-pixel one).

    The segmentor fills in ``following_units`` (a copier of the units after this module's cut),
    ``module_index`` and ``num_local_modules`` for every head class with
    ``takes_following_units = True``.

    Args:
        in_channels: Channels of the local module's output.
        num_classes: Classes.
        following_units: The copier (filled in by the segmentor).
        module_index: This head's local module, 0-based (filled in).
        num_local_modules: K - 1 (filled in).
        depth: Units copied: an int for every module, or ``(first, last)`` for AugLocal's
            pyramid from the first local module to the last.
        channels: Width of the FCN classifier's hidden conv.
        norm_cfg: Normalisation of the bridges and the classifier.
        **kwargs: Any other :class:`LocalClassifierHead` argument.
    """

    takes_following_units = True

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 following_units: Optional[UnitCopier] = None,
                 module_index: int = 0,
                 num_local_modules: int = 1,
                 depth: Union[int, Sequence[int]] = (3, 1),
                 channels: int = 512,
                 norm_cfg: Optional[dict] = dict(type='BN', requires_grad=True),
                 **kwargs):
        if following_units is None:
            raise ConfigError('AugLocalClassifierHead copies the backbone units after its cut: '
                              'build it through InfoProEncoderDecoder (model.local_heads.'
                              'classifier), which fills in following_units')
        if not isinstance(depth, int) and len(depth) != 2:
            raise ConfigError(f'depth takes an int or (first, last), got {depth!r}')
        units = following_units(pyramid_depth(depth, module_index, num_local_modules))
        layers, width = [], in_channels
        for unit, unit_in, unit_out in units:
            if unit_in != width:
                layers.append(ConvModule(width, unit_in, 1, norm_cfg=norm_cfg))
            layers.append(unit)
            width = unit_out
        super().__init__(in_channels=width, num_classes=num_classes, channels=channels,
                         norm_cfg=norm_cfg, **kwargs)
        self.aux_layers = nn.Sequential(*layers)

    def _forward_feature(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The copied units, then the FCN convs of :class:`LocalClassifierHead`."""
        inputs = list(inputs)
        inputs[self.in_index] = self.aux_layers(inputs[self.in_index])
        return super()._forward_feature(inputs)
