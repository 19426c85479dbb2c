"""Data set tools: the synthetic Cityscapes-layout generator (:mod:`.synthetic`) and the
polygon-to-label conversion (:mod:`.cityscapes_conversion`); no dataset class (mmseg's
``CityscapesDataset`` reads what they write)."""
from .cityscapes_conversion import CityscapesLayoutError, convert_cityscapes
from .synthetic import generate_synthetic_cityscapes, render_synthetic_scene

__all__ = [
    'CityscapesLayoutError', 'convert_cityscapes', 'generate_synthetic_cityscapes',
    'render_synthetic_scene'
]
