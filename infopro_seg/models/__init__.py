from .backbones import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403
from .splits import SPLIT_PRESETS, local_loss_weights, resolve_split_points

__all__ = ['SPLIT_PRESETS', 'local_loss_weights', 'resolve_split_points']
