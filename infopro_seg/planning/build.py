"""Building a model config on one device, as the planner and the benchmark measure it."""
from typing import Union

import torch
from mmengine.config import ConfigDict
from mmengine.model import revert_sync_batchnorm
from mmseg.registry import MODELS
from torch import nn

from ..errors import ConfigError
from .meta import count_all_pixels_on_meta


def build_on_one_device(cfg: dict, device: Union[str, torch.device]) -> nn.Module:
    """Build a registered component (a segmentor, a head) straight on ``device``, SyncBN as BN.

    One device is measured, so synchronised BatchNorm is converted to BatchNorm after the build
    (mmengine's ``revert_sync_batchnorm``: the same memory and arithmetic on one device, and no
    process group needed to run). On ``meta`` nothing is allocated, even for R-101, and losses
    that count valid pixels average over all of them (:func:`count_all_pixels_on_meta`). Weights are
    not initialised (``init_weights`` is not called): memory and time do not depend on them.

    Args:
        cfg: The component's config, with its ``type``.
        device: Where the parameters are created.

    Returns:
        nn.Module: The component.

    Raises:
        ConfigError: The config uses mmcv's ``MMSyncBN``, which cannot be built without a process
            group.
    """
    if 'MMSyncBN' in repr(cfg) and not torch.distributed.is_initialized():
        raise ConfigError("mmcv's MMSyncBN cannot be built without a process group, and one "
                          'device is measured here: use SyncBN (or BN) in the config')
    with torch.device(device):
        model = MODELS.build(ConfigDict(cfg))
    return for_one_device(model, device)


def for_one_device(module: nn.Module, device: Union[str, torch.device]) -> nn.Module:
    """A module built on ``device`` made measurable there: SyncBN as BN, and on ``meta``
    valid-pixel losses counting all pixels (:func:`count_all_pixels_on_meta`)."""
    module = revert_sync_batchnorm(module)
    return count_all_pixels_on_meta(module) if torch.device(device).type == 'meta' else module
