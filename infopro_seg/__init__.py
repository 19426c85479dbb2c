"""infopro-seg: InfoPro locally supervised learning for mmsegmentation 1.x.

Importing the package only registers its components (models, the model wrapper, a hook, the
``atomic_local`` file backend) in mmseg's and mmengine's registries; configs import it with
``custom_imports=dict(imports=['infopro_seg'])``. It changes no behaviour of mmengine or torch:
safe checkpoint loading and atomic checkpoint writes are switched on where this project's tools
and configs run (see :mod:`infopro_seg.fileio.runner_io`).
"""
from . import engine, fileio  # noqa: F401  (the model wrapper, the hook, atomic_local)
from .datasets import samplers  # noqa: F401  (registers ResumableInfiniteSampler)
from .models import *  # noqa: F401,F403
from . import planning  # noqa: F401,E402  (registers the split planner)
from .version import __version__

__all__ = ['__version__']
