"""Data set tools: a synthetic Cityscapes-layout generator and the polygon-to-label conversion."""
from .cityscapes_conversion import CityscapesLayoutError, convert_cityscapes
from .synthetic_cityscapes import generate_synthetic_cityscapes, render_synthetic_scene

__all__ = [
    'CityscapesLayoutError', 'convert_cityscapes', 'generate_synthetic_cityscapes',
    'render_synthetic_scene'
]
