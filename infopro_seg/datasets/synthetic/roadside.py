"""What stands beside a synthetic street: trees, fences, walls, hedges, poles, lights and signs."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .camera import box_silhouette, ellipse_z, ground_quad, rect_x, rect_z
from .palette import class_colour, jitter
from .scene import BARRIERS, GROUND, OBJECTS, Scene, Shape, Side


def add_tree(scene: Scene, layer: int, x: float, z: float, scale: float = 1.0) -> None:
    """Adds a tree: a trunk and an irregular canopy, both labelled vegetation.

    Args:
        scene: The scene.
        layer: Drawing layer (street trees stand among objects, backdrop trees behind buildings).
        x: Lateral position in metres.
        z: Depth in metres.
        scale: Size factor.
    """
    rng, cam = scene.rng, scene.cam
    radius = rng.uniform(1.4, 3.0) * scale
    trunk_h = rng.uniform(1.8, 3.5) * scale
    trunk_w = rng.uniform(0.12, 0.22) * scale
    bark = jitter(rng, (85, 72, 60), 10)
    trunk = rect_z(cam, z, x - trunk_w, x + trunk_w, 0.0, trunk_h + 0.5 * radius)
    leaves = class_colour(rng, 'vegetation', spread=8)
    wobble = rng.uniform(0.8, 1.15, 18)
    canopy = ellipse_z(cam, x, trunk_h + radius, z, radius, radius * rng.uniform(1.0, 1.3),
                       n=18, wobble=wobble)
    scene.add(layer, z,
              scene.shape('vegetation', trunk, bark, texture='blotch'),
              scene.shape('vegetation', canopy, leaves, texture='speckle'))


def add_barriers(scene: Scene) -> None:
    """Adds fences, walls and hedges in front of the building line."""
    rng, cam = scene.rng, scene.cam
    for side in scene.sides.values():
        for _ in range(rng.integers(0, 3)):
            kind = rng.choice(['fence', 'wall', 'hedge'], p=[0.45, 0.35, 0.2])
            z0 = rng.uniform(2.0, 50.0)
            z1 = z0 + rng.uniform(5.0, 25.0)
            x = side.building_line - side.sign * 0.3
            if kind == 'hedge':
                h = rng.uniform(0.8, 1.6)
                box = (min(x, x - side.sign * 0.9), max(x, x - side.sign * 0.9), 0, h, z0, z1)
                pts = box_silhouette(cam, [box])
                scene.add(BARRIERS, z0, scene.shape('vegetation', pts,
                                                    class_colour(rng, 'vegetation'),
                                                    texture='speckle'))
            elif kind == 'wall':
                h = rng.uniform(0.6, 2.2)
                colour = class_colour(rng, 'wall')
                coping = [(rect_x(cam, x, z0, z1, h - 0.15, h), colour * 1.15)]
                scene.add(BARRIERS, z0, scene.shape('wall', rect_x(cam, x, z0, z1, 0, h),
                                                    colour, details=coping))
            else:
                _add_fence(scene, x, z0, z1, rng.uniform(1.0, 1.8))


def _add_fence(scene: Scene, x: float, z0: float, z1: float, height: float) -> None:
    """Adds a see-through fence with posts, rails and bars along the street."""
    rng, cam = scene.rng, scene.cam
    colour = class_colour(rng, 'fence')
    bar = colour * rng.uniform(0.5, 0.75)
    details = [(rect_x(cam, x, z0, z1, height - 0.08, height), bar),
               (rect_x(cam, x, z0, z1, 0.15, 0.22), bar)]
    step = rng.uniform(0.15, 0.3)
    z = z0
    while z < z1 and cam.px_per_m(z) * step > 2.0:
        details.append((rect_x(cam, x, z, z + step * 0.35, 0.0, height), bar))
        z += step
    scene.add(BARRIERS, z0, scene.shape('fence', rect_x(cam, x, z0, z1, 0.0, height), colour,
                                        alpha=rng.uniform(0.65, 0.9), details=details))


def add_street_furniture(scene: Scene) -> None:
    """Adds street trees, lamp posts, sign posts and traffic lights along the kerbs."""
    rng = scene.rng
    for side in scene.sides.values():
        if rng.random() < 0.5:  # a row of street trees
            z = rng.uniform(3.0, 12.0)
            x = side.sidewalk_end - side.sign * rng.uniform(0.6, 1.2)
            soil = class_colour(rng, 'terrain')
            while z < 120.0:
                add_tree(scene, OBJECTS, x, z)
                # An unpaved tree pit (terrain) in the sidewalk around the trunk.
                pit = ground_quad(scene.cam, x - 0.7, x + 0.7, z - 0.7, z + 0.7)
                scene.add(GROUND, 0.0, scene.shape('terrain', pit, soil))
                z += rng.uniform(7.0, 16.0)
        z = rng.uniform(2.0, 15.0)
        while z < 100.0:
            _add_post(scene, side, z)
            z += rng.uniform(12.0, 35.0)


def _add_post(scene: Scene, side: Side, z: float) -> None:
    """Adds one pole with what hangs on it (a lamp arm, a traffic light or a sign)."""
    rng, cam = scene.rng, scene.cam
    kind = rng.choice(['lamp', 'sign', 'light'], p=[0.4, 0.38, 0.22])
    x = side.kerb + side.sign * rng.uniform(0.3, 0.8)
    half = rng.uniform(0.07, 0.14)
    colour = class_colour(rng, 'pole')
    top = {'lamp': rng.uniform(6.0, 9.0), 'sign': rng.uniform(2.6, 3.4),
           'light': rng.uniform(3.2, 4.5)}[kind]
    group = [scene.shape('pole', rect_z(cam, z, x - half, x + half, 0.0, top), colour)]
    if kind == 'lamp':
        reach = x - side.sign * rng.uniform(1.2, 2.5)
        arm = rect_z(cam, z, min(x, reach), max(x, reach), top - 0.12, top)
        group.append(scene.shape('pole', arm, colour))
    elif kind == 'light':
        group.append(_traffic_light(scene, x - side.sign * 0.25, top, z))
    else:
        group.append(_traffic_sign(scene, x, top - rng.uniform(0.1, 0.5), z))
    if kind != 'sign' and rng.random() < 0.35:  # an extra sign lower on the pole
        group.append(_traffic_sign(scene, x, rng.uniform(2.0, 2.6), z - 0.05))
    scene.add(OBJECTS, z, *group)


def _traffic_light(scene: Scene, x: float, top: float, z: float) -> Optional[Shape]:
    """Returns a traffic light head facing the camera with one lit lamp."""
    rng, cam = scene.rng, scene.cam
    w, h = rng.uniform(0.3, 0.4), rng.uniform(0.85, 1.05)
    housing = class_colour(rng, 'traffic light', spread=6)
    lamps = [(220, 40, 30), (235, 170, 20), (40, 200, 90)]
    lit = rng.integers(0, 3)
    details = []
    for i, rgb in enumerate(lamps):
        y = top - h * (i + 0.5) / 3.0
        brightness = 1.0 if i == lit else 0.3
        details.append((ellipse_z(cam, x, y, z, w * 0.32, w * 0.32, n=10),
                        np.asarray(rgb, float) * brightness))
    pts = rect_z(cam, z, x - w / 2, x + w / 2, top - h, top)
    return scene.shape('traffic light', pts, housing, texture='flat', details=details)


def _traffic_sign(scene: Scene, x: float, centre_y: float, z: float) -> Optional[Shape]:
    """Returns a traffic sign facing the camera (round, triangular, square or diamond)."""
    rng, cam = scene.rng, scene.cam
    r = rng.uniform(0.3, 0.42)
    kind = rng.choice(['round', 'triangle', 'square', 'diamond'], p=[0.4, 0.25, 0.25, 0.1])
    corners = {'triangle': [(0.0, 1.0), (0.87, -0.5), (-0.87, -0.5)],
               'diamond': [(0.0, 1.0), (1.0, 0.0), (0.0, -1.0), (-1.0, 0.0)],
               'square': [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)]}.get(kind)

    def face(scale_x: float, scale_y: float) -> np.ndarray:
        if corners is None:
            return ellipse_z(cam, x, centre_y, z, r * scale_x, r * scale_y, n=16)
        return cam.project([(x + r * scale_x * a, centre_y + r * scale_y * b, z)
                            for a, b in corners])

    outline = face(1.0, 1.0)
    inner = face(0.6, 0.3) if kind == 'square' else face(0.68, 0.68)
    white = jitter(rng, (225, 225, 220), 6, (0.9, 1.05))
    if kind == 'diamond':  # priority road: yellow centre on white
        rim, centre = white, jitter(rng, (230, 190, 40), 8)
    elif kind == 'square' or rng.random() < 0.3:  # information or mandatory: blue
        rim, centre = jitter(rng, (30, 70, 170), 10), white
    else:  # prohibition or warning: red rim
        rim, centre = jitter(rng, (200, 30, 30), 10), white
    return scene.shape('traffic sign', outline, rim, texture='flat', details=[(inner, centre)])
