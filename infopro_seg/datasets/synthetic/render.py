"""Renders one synthetic street scene: lays the street out, then paints it."""
from __future__ import annotations

from typing import Union

import numpy as np

from .buildings import add_buildings
from .ground import add_ground, add_sky
from .paint import finish, paint_shade, paint_shape
from .people import add_people
from .roadside import add_barriers, add_street_furniture
from .scene import Scene, Shade
from .traffic import add_ego_vehicle, add_traffic

#: The parts of a scene in the order they draw from the random generator. Changing the order
#: changes every scene (bump ``GENERATOR_VERSION`` in :mod:`.writer` then).
SCENE_PARTS = (add_sky, add_ground, add_buildings, add_barriers, add_street_furniture,
               add_traffic, add_people, add_ego_vehicle)


def render_synthetic_scene(seed: Union[int, np.random.Generator], height: int = 256,
                           width: int = 512) -> tuple:
    """Renders one synthetic street scene.

    Args:
        seed: Integer seed or a ``numpy.random.Generator``.
        height: Image height in pixels.
        width: Image width in pixels.

    Returns:
        ``(image, annotation)``: an ``uint8`` RGB array of shape ``(height, width, 3)`` and the
        Cityscapes polygon annotation dict (``imgHeight``, ``imgWidth``, ``objects``).

    Raises:
        ValueError: The image is smaller than 16x16 pixels.
    """
    if height < 16 or width < 16:
        raise ValueError(f'image size must be at least 16x16 pixels, got {height}x{width}')
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    scene = Scene(rng, width, height)
    for add_part in SCENE_PARTS:
        add_part(scene)

    image = np.zeros((height, width, 3), np.float32)
    grain = max(1.0, width / 256.0)
    objects = []
    for element in scene.ordered():
        if isinstance(element, Shade):
            paint_shade(image, element)
            continue
        paint_shape(image, element, rng, grain)
        objects.append({'label': element.label, 'polygon': element.polygon.tolist()})
    annotation = {'imgHeight': height, 'imgWidth': width, 'objects': objects}
    return finish(image, rng), annotation
