"""Synthetic street scenes written in the exact on-disk layout of Cityscapes.

The generator builds a small 3-D street (a pin-hole camera above a flat ground plane, a road with
sidewalks, building blocks, street furniture and traffic), projects every object to a polygon and
writes an image and the official polygon JSON per sample. Objects are stored in drawing order
(later ones on top), which is what the official ``json2labelImg`` expects, and the image is
painted from the very same integer polygons, so the ``labelTrainIds`` PNGs derived from the JSON
(see :mod:`infopro_seg.datasets.cityscapes_conversion`) agree with the pixels. Colours are tied to
the class but jittered and overlapping, and textures, shading, shadows, blur and noise are added,
so a network has to use shape and context rather than single pixel colours.

Modules, in dependency order:

- :mod:`.camera`: the pin-hole camera and the projection of boxes, rectangles and ellipses.
- :mod:`.polygons`: clipping to the image and rounding to integer pixel polygons.
- :mod:`.palette`: class colours and their random jitter.
- :mod:`.scene`: shapes, shadows, the street cross-section, lanes and drawing order.
- :mod:`.ground`, :mod:`.buildings`, :mod:`.roadside`, :mod:`.people`, :mod:`.traffic`: the
  parts of the street, each adding its shapes to a :class:`~.scene.Scene`.
- :mod:`.paint`: textures, details, shadows and camera effects.
- :mod:`.render`: one scene from a seed (:func:`render_synthetic_scene`).
- :mod:`.writer`: the Cityscapes folder layout on disk (:func:`generate_synthetic_cityscapes`).

Everything is deterministic for a given seed and the pinned numpy and OpenCV versions.
"""
from .render import render_synthetic_scene
from .writer import (GENERATOR_VERSION, SPLIT_CITIES, generate_synthetic_cityscapes)

__all__ = [
    'GENERATOR_VERSION', 'SPLIT_CITIES', 'generate_synthetic_cityscapes', 'render_synthetic_scene'
]
