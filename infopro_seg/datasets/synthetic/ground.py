"""The sky and the ground of a synthetic street: terrain, sidewalks, grass strips and the road."""
from __future__ import annotations

import numpy as np

from .camera import ground_quad
from .palette import Colour, class_colour, jitter
from .scene import GROUND, Z_FAR, Z_NEAR, Scene, Side


def add_sky(scene: Scene) -> None:
    """Adds the sky: a clear-blue or overcast gradient with clouds down to the horizon."""
    rng, cam = scene.rng, scene.cam
    if rng.random() < 0.7:
        top, bottom = jitter(rng, (72, 124, 198), 10), jitter(rng, (176, 198, 226), 8)
    else:
        top, bottom = jitter(rng, (168, 173, 180), 8), jitter(rng, (208, 210, 214), 6)
    rows = cam.cy + 2.0
    pts = np.array([(0, 0), (scene.width - 1, 0), (scene.width - 1, rows), (0, rows)], float)
    scene.add(GROUND, 0.0, scene.shape('sky', pts, top, texture='sky', colour2=bottom,
                                       gradient_rows=(0.0, cam.cy)))


def add_ground(scene: Scene) -> None:
    """Adds terrain, sidewalks (with kerbs and paving joints), grass strips and the road."""
    rng, cam, w, h = scene.rng, scene.cam, scene.width, scene.height
    base = np.array([(0, cam.cy), (w - 1, cam.cy), (w - 1, h - 1), (0, h - 1)], float)
    scene.add(GROUND, 0.0, scene.shape('terrain', base, class_colour(rng, 'terrain')))
    for side in scene.sides.values():
        _add_sidewalk(scene, side)
    for side in scene.sides.values():
        if side.building_line != side.sidewalk_end:
            _add_grass(scene, side)
    _add_road(scene)
    for side in scene.sides.values():
        if rng.random() < 0.45:  # shadow cast by the buildings across sidewalk and road
            reach = side.kerb - side.sign * rng.uniform(-1.0, 4.0)
            z0 = rng.uniform(Z_NEAR, 25.0)
            pts = ground_quad(cam, side.building_line, reach, z0, z0 + rng.uniform(10, 80))
            scene.add(GROUND, 0.0, scene.shade(pts, rng.uniform(0.55, 0.75)))


def _add_sidewalk(scene: Scene, side: Side) -> None:
    """Adds one sidewalk; it runs a little past the building line to show in gaps."""
    rng, cam = scene.rng, scene.cam
    colour = class_colour(rng, 'sidewalk')
    outer = side.building_line + side.sign * 3.0
    details = [(ground_quad(cam, side.kerb, side.kerb + side.sign * 0.25, Z_NEAR, Z_FAR),
                np.clip(colour * 1.18, 0, 255))]
    step = rng.uniform(1.2, 2.5)
    z = rng.uniform(0.5, 2.0)
    joint = colour * rng.uniform(0.7, 0.85)
    # Paving joints across the sidewalk, until they are closer than 3 px.
    while z < Z_FAR and cam.px_per_m(z) * step * cam.height / z > 3.0:
        details.append((ground_quad(cam, side.kerb, outer, z, z + 0.06), joint))
        z += step
    pts = ground_quad(cam, side.kerb, outer, Z_NEAR, Z_FAR)
    scene.add(GROUND, 0.0, scene.shape('sidewalk', pts, colour, details=details))


def _add_grass(scene: Scene, side: Side) -> None:
    """Adds a grass strip (terrain) between sidewalk and buildings, broken by driveways."""
    rng, cam = scene.rng, scene.cam
    colour = class_colour(rng, 'terrain')
    z = Z_NEAR
    while z < 150.0:
        length = rng.uniform(8.0, 60.0)
        pts = ground_quad(cam, side.sidewalk_end, side.building_line, z, z + length)
        scene.add(GROUND, 0.0, scene.shape('terrain', pts, colour, texture='blotch'))
        z += length + rng.uniform(3.0, 8.0)


def _add_road(scene: Scene) -> None:
    """Adds the road with lane markings, an optional crosswalk and asphalt patches."""
    rng, cam = scene.rng, scene.cam
    left, right = scene.sides[-1].kerb, scene.sides[1].kerb
    colour = class_colour(rng, 'road', spread=6.0)
    paint = jitter(rng, (215, 215, 205), 6, (0.85, 1.05))
    details = []
    for _ in range(rng.integers(0, 4)):  # repaired asphalt
        x0, z0 = rng.uniform(left, right), rng.uniform(4.0, 40.0)
        quad = ground_quad(cam, x0, x0 + rng.uniform(0.8, 3.0), z0, z0 + rng.uniform(1, 6))
        details.append((quad, colour * rng.uniform(0.75, 0.9)))
    lane_w = (right - left) / len(scene.lanes)
    for i in range(1, len(scene.lanes)):
        x = left + i * lane_w
        solid = scene.divider is not None and abs(x - scene.divider) < 1e-6 and rng.random() < 0.5
        details += _lane_line(scene, x, solid, paint)
    if rng.random() < 0.5:  # edge lines next to the kerbs
        details += _lane_line(scene, left + 0.35, True, paint)
        details += _lane_line(scene, right - 0.35, True, paint)
    if rng.random() < 0.3:  # zebra crossing
        z0 = rng.uniform(7.0, 30.0)
        x = left
        while x < right:
            details.append((ground_quad(cam, x, x + 0.5, z0, z0 + 3.5), paint))
            x += 1.0
    pts = ground_quad(cam, left, right, Z_NEAR, Z_FAR)
    scene.add(GROUND, 0.0, scene.shape('road', pts, colour, details=details))


def _lane_line(scene: Scene, x: float, solid: bool, paint: Colour) -> list:
    """Returns the painted quads ``[(points, rgb)]`` of a solid or dashed lane line at ``x``."""
    if solid:
        return [(ground_quad(scene.cam, x - 0.07, x + 0.07, Z_NEAR, Z_FAR), paint)]
    quads = []
    z = scene.rng.uniform(0.0, 9.0)
    while z < 150.0:
        quads.append((ground_quad(scene.cam, x - 0.07, x + 0.07, z, z + 3.0), paint))
        z += 9.0
    return quads
