"""Building blocks along a synthetic street (windows, shops, signs) and trees behind the gaps."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .camera import box_silhouette, rect_x, rect_z
from .palette import Colour, class_colour, jitter, random_colour
from .roadside import add_tree
from .scene import BACKDROP, BUILDINGS, Scene, Side


def add_buildings(scene: Scene) -> None:
    """Adds rows of building blocks along both sides and a block closing the street."""
    rng = scene.rng
    z_end = rng.uniform(110.0, 220.0)
    for side in scene.sides.values():
        z = rng.uniform(-2.0, 6.0)
        while z < z_end:
            if rng.random() < 0.18:  # a gap between blocks, with trees behind
                gap = rng.uniform(4.0, 15.0)
                _add_backdrop_trees(scene, side, z, z + gap)
                z += gap
                continue
            length = rng.uniform(8.0, 30.0)
            _add_block(scene, side, max(z, 0.6), z + length, rng.uniform(7.0, 26.0))
            z += length
    # The street ends in a row of houses (or a wood) far away, covering the vanishing point.
    depth = z_end + rng.uniform(0.0, 30.0)
    if rng.random() < 0.8:
        # Low enough to leave the upper part of the street canyon to the sky.
        cam = scene.cam
        tallest = cam.height + 0.7 * cam.cy * depth / cam.focal
        _add_block(scene, None, depth, depth + 20.0, min(rng.uniform(8.0, 30.0), tallest))
    else:
        _add_backdrop_trees(scene, None, depth, depth + 20.0)


def _add_block(scene: Scene, side: Optional[Side], z0: float, z1: float, height: float) -> None:
    """Adds one building block with windows, a ground floor and sometimes shop signs.

    Args:
        scene: The scene.
        side: Street side, or ``None`` for the block across the far end of the street.
        z0: Near end of the block in metres.
        z1: Far end of the block in metres.
        height: Height in metres.
    """
    rng, cam = scene.rng, scene.cam
    if side is None:
        x0, x1 = -80.0, 80.0
    else:
        inner, outer = side.building_line, side.building_line + side.sign * 15.0
        x0, x1 = min(inner, outer), max(inner, outer)
    colour = class_colour(rng, 'building', spread=14)
    pts = box_silhouette(cam, [(x0, x1, 0.0, height, z0, z1)])
    details = _facade_details(scene, side, x0, x1, z0, z1, height, colour)
    shaded = colour * rng.uniform(0.65, 0.9)  # shading: top a little brighter than bottom
    scene.add(BUILDINGS, z0, scene.shape('building', pts, colour, colour2=shaded,
                                         details=details))


def _facade_details(scene: Scene, side: Optional[Side], x0: float, x1: float, z0: float,
                    z1: float, height: float, colour: Colour) -> list:
    """Returns windows, the ground floor band and shop signs of a building block.

    Args:
        scene: The scene.
        side: Street side, or ``None`` for the block across the far end of the street.
        x0: Left end of the block in metres.
        x1: Right end of the block in metres.
        z0: Near end of the block in metres.
        z1: Far end of the block in metres.
        height: Height in metres.
        colour: Facade colour.

    Returns:
        Image-only details ``[(points, rgb)]``.
    """
    rng, cam = scene.rng, scene.cam
    floor_h = rng.uniform(3.0, 3.6)
    ground_h = rng.uniform(3.4, 4.5)
    spacing = rng.uniform(2.4, 4.0)
    win_w, win_h = spacing * rng.uniform(0.4, 0.6), floor_h * rng.uniform(0.45, 0.6)
    glass = jitter(rng, (52, 62, 78) if rng.random() < 0.7 else (110, 130, 150), 8)
    frame = colour * rng.uniform(0.55, 0.8)
    details = []
    # Two visible faces: the facade along the street and the face towards the camera.
    faces = [('z', z0, x0, x1)]
    if side is not None:
        faces.insert(0, ('x', side.building_line, z0, z1))
    for kind, at, a0, a1 in faces:
        rect = rect_x if kind == 'x' else rect_z
        details.append((rect(cam, at, a0, a1, 0.0, ground_h), frame))
        # Shop windows and doors in the ground floor.
        shop = rng.uniform(2.5, 6.0)
        a = a0 + rng.uniform(0.3, 1.5)
        while a + shop < a1 and cam.px_per_m(at if kind == 'z' else a) * shop > 3.0:
            if rng.random() < 0.75:
                details.append((rect(cam, at, a, a + shop * 0.8, 0.4, ground_h - 0.6),
                                glass * rng.uniform(0.8, 1.4)))
            a += shop
        a = a0 + rng.uniform(0.3, 1.0) * spacing
        while a + win_w < a1:
            near = at if kind == 'z' else a
            if cam.px_per_m(near) * win_h < 1.5:
                break  # the rest of this face is too far away to show windows
            y = ground_h + (floor_h - win_h) * 0.6
            while y + win_h < height - 0.5:
                quad = rect(cam, at, a, a + win_w, y, y + win_h)
                lit = glass * rng.uniform(0.8, 1.25)
                details.append((quad, np.clip(lit, 0, 255)))
                y += floor_h
            if kind == 'x' and rng.random() < 0.15:  # shop sign over the ground floor
                sign = rect_x(cam, at, a, a + win_w * 1.5, ground_h - 1.0, ground_h - 0.3)
                details.append((sign, random_colour(rng)))
            a += spacing
    return details


def _add_backdrop_trees(scene: Scene, side: Optional[Side], z0: float, z1: float) -> None:
    """Adds trees standing behind the building line (visible through gaps)."""
    rng = scene.rng
    z = z0 + rng.uniform(0.0, 3.0)
    while z < z1:
        if side is None:
            x = rng.uniform(-60.0, 60.0)
        else:
            x = side.building_line + side.sign * rng.uniform(2.0, 10.0)
        add_tree(scene, BACKDROP, x, z, scale=rng.uniform(1.0, 1.6))
        z += rng.uniform(3.0, 7.0) if side is not None else rng.uniform(0.5, 2.0)
