"""infopro-seg: InfoPro locally supervised learning for mmsegmentation 1.x.

Importing the package registers its models in mmseg's registries (configs use
``custom_imports=dict(imports=['infopro_seg'])``) and makes mmengine's local checkpoint I/O safe on
torch >= 2.6 (weights-only loading with an allow-list, atomic writes).
"""
from .engine import register_safe_checkpoint_io
from .models import *  # noqa: F401,F403
from . import planning  # noqa: F401,E402  (registers the split planner)
from .version import __version__

register_safe_checkpoint_io()

__all__ = ['__version__']
