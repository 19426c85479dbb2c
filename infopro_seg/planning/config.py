"""What the planning tools read from a full config (not a model config)."""
from typing import List, Optional, Sequence, Tuple

from ..models.splits import SPLIT_PRESETS, resolve_split_points


def model_crop_size(model_cfg: dict) -> Optional[Tuple[int, int]]:
    """The crop a model config pads its batches to: its data preprocessor's ``size``, if any."""
    crop = (model_cfg.get('data_preprocessor') or {}).get('size')
    return (int(crop[0]), int(crop[1])) if crop else None


def config_crop_size(cfg) -> Optional[Tuple[int, int]]:
    """The config's training crop: its ``crop_size``, else the data preprocessor's ``size``.

    Args:
        cfg: A loaded mmengine ``Config``.

    Returns:
        tuple or None: ``(H, W)``, or ``None`` when the config names no crop.
    """
    crop = cfg.get('crop_size')
    return (int(crop[0]), int(crop[1])) if crop else model_crop_size(cfg.model)


def config_batch_size(cfg, default: int = 2) -> int:
    """Images per device in the config's training dataloader (``default`` when it has none)."""
    return int((cfg.get('train_dataloader') or {}).get('batch_size') or default)


def config_optimizer(cfg) -> Optional[dict]:
    """The config's ``optim_wrapper.optimizer`` (``None`` when it has none)."""
    return (cfg.get('optim_wrapper') or {}).get('optimizer')


def config_cuts(cfg, unit_names: Sequence[str]) -> Optional[List[int]]:
    """The unit indices the config's own split points cut after, if it names them (not 'auto').

    Args:
        cfg: A loaded mmengine ``Config``.
        unit_names: The backbone's units (``MemoryProfile.unit_names``).

    Returns:
        list or None: The cuts, or ``None`` for ``'auto'``, no split points or an unknown preset.
    """
    split_points = cfg.model.get('backbone', {}).get('split_points')
    if split_points is None or split_points == 'auto':
        return None
    if isinstance(split_points, str) and split_points not in SPLIT_PRESETS:
        return None
    return resolve_split_points(split_points, unit_names)


def optimizer_state_factor(optimizer_cfg: Optional[dict]) -> int:
    """How many parameter-sized tensors training keeps per parameter.

    Args:
        optimizer_cfg: The config's ``optim_wrapper.optimizer`` (``None``: mmseg's SGD with
            momentum).

    Returns:
        int: 1 (the parameter) + 1 (its gradient) + the optimizer's per-parameter buffers
        (SGD with momentum 1, SGD without 0, Adam/AdamW 2).
    """
    if not optimizer_cfg:
        return 3
    kind = str(optimizer_cfg.get('type', 'SGD')).split('.')[-1].lower()
    if kind == 'sgd':
        return 3 if optimizer_cfg.get('momentum', 0) else 2
    if kind.startswith('adam'):
        return 4
    return 3
