"""People in a synthetic street: pedestrians, riders' bodies and bicycles parked on the sidewalk."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .camera import circle_x, rect_z
from .palette import class_colour, jitter, random_colour
from .scene import OBJECTS, Scene, Shape


def add_people(scene: Scene) -> None:
    """Adds pedestrians on the sidewalks (alone or in small groups) and parked bicycles."""
    rng = scene.rng
    for _ in range(rng.integers(0, 9)):
        side = scene.sides[1 if rng.random() < 0.5 else -1]
        z = 3.0 + 55.0 * rng.random() ** 1.4
        walkway = abs(side.sidewalk_end - side.kerb)
        x = side.kerb + side.sign * rng.uniform(0.6, max(walkway - 0.4, 0.7))
        for k in range(1 if rng.random() < 0.7 else rng.integers(2, 4)):
            # Companions walk beside, away from the kerb.
            xk, zk = x + side.sign * k * rng.uniform(0.4, 0.7), z + rng.uniform(-0.6, 0.6)
            scene.add(OBJECTS, zk, human(scene, 'person', xk, zk))
    for _ in range(rng.integers(0, 3)):
        side = scene.sides[1 if rng.random() < 0.5 else -1]
        _add_parked_bicycle(scene, side.kerb + side.sign * rng.uniform(0.8, 1.6),
                            rng.uniform(4.0, 30.0))


def human(scene: Scene, label: str, x: float, z: float, seat: float = 0.0,
          helmet: bool = False) -> Optional[Shape]:
    """Returns a person or rider silhouette facing (or turned away from) the camera.

    Args:
        scene: The scene.
        label: ``'person'`` or ``'rider'``.
        x: Lateral position in metres.
        z: Depth in metres.
        seat: Height of the feet above the ground (riders sit on a vehicle).
        helmet: Paint the head as a helmet (motorcyclists).

    Returns:
        The shape (not yet added to the scene), or ``None`` if it is invisible.
    """
    rng, cam = scene.rng, scene.cam
    tall = rng.uniform(1.55, 1.9) if label == 'person' else rng.uniform(1.45, 1.65)
    if label == 'person' and rng.random() < 0.12:
        tall = rng.uniform(1.0, 1.3)  # a child
    stretch = rng.uniform(0.9, 1.15)
    legs = rng.uniform(0.0, 0.04) if label == 'person' else rng.uniform(0.06, 0.09)
    arms = rng.uniform(0.0, 0.03) if label == 'person' else rng.uniform(0.05, 0.08)
    outline = _human_outline(rng, legs, arms)
    pts = cam.project([(x + a * tall * stretch, seat + b * tall, z) for a, b in outline])
    trousers = jitter(rng, (45, 48, 66), 18)
    jacket = random_colour(rng)
    head = jitter(rng, (205, 165, 135), 18) if not helmet else random_colour(rng, 10, 240)
    hair = jitter(rng, (60, 45, 35), 15)
    span = tall * 0.5
    details = [(rect_z(cam, z, x - span, x + span, seat + 0.47 * tall, seat + 0.86 * tall),
                jacket),
               (rect_z(cam, z, x - span, x + span, seat + 0.86 * tall, seat + 1.01 * tall),
                head)]
    if not helmet:
        details.append((rect_z(cam, z, x - span, x + span, seat + 0.955 * tall,
                               seat + 1.01 * tall), hair))
    details.append((rect_z(cam, z, x - span, x + span, seat - 0.01, seat + 0.04 * tall),
                    np.array([30.0, 28.0, 28.0])))  # shoes
    return scene.shape(label, pts, trousers, details=details)


def _human_outline(rng: np.random.Generator, leg_spread: float, arm_out: float) -> list:
    """Returns a symmetric human silhouette ``(x, y)`` for a body of height 1 (feet at y = 0).

    The right half is traced from the top of the head down to the crotch and mirrored; the arms
    are separated from the torso by a thin gap, the legs by a wedge.

    Args:
        rng: Random generator.
        leg_spread: How far the feet stand apart (body heights).
        arm_out: How far the hands stand out from the body (body heights).

    Returns:
        The outline vertices.
    """
    shoulder = rng.uniform(0.115, 0.14)
    torso = shoulder - rng.uniform(0.02, 0.03)
    half = [(0.0, 1.0), (0.035, 0.99), (0.058, 0.962), (0.063, 0.93), (0.055, 0.897),
            (0.035, 0.872), (0.038, 0.85), (shoulder, 0.825),
            (shoulder + 0.025 + 0.5 * arm_out, 0.77), (shoulder + 0.02 + arm_out, 0.56),
            (shoulder + arm_out, 0.53), (shoulder - 0.008 + 0.6 * arm_out, 0.70), (torso, 0.72),
            (torso, 0.5), (0.085 + leg_spread, 0.05), (0.095 + leg_spread, 0.0),
            (0.02 + leg_spread, 0.0), (0.018 + 0.8 * leg_spread, 0.43), (0.0, 0.46)]
    mirrored = [(-x, y) for x, y in reversed(half[1:-1])]
    return half + mirrored


def _add_parked_bicycle(scene: Scene, x: float, z: float) -> None:
    """Adds a bicycle parked along the sidewalk, seen from the side: frame and two wheels."""
    rng, cam = scene.rng, scene.cam
    colour = class_colour(rng, 'bicycle')
    tyre = np.array([25.0, 25.0, 28.0])
    frame = [(-0.52, 0.33), (-0.2, 0.92), (0.42, 0.98), (0.52, 0.33), (0.0, 0.28)]
    group = []
    for dz in (-0.52, 0.52):
        hub = circle_x(cam, x, 0.33, z + dz, 0.12, n=10)
        group.append(scene.shape('bicycle', circle_x(cam, x, 0.33, z + dz, 0.33), tyre,
                                 texture='flat', details=[(hub, colour)]))
    group.append(scene.shape('bicycle', cam.project([(x, b, z + a) for a, b in frame]),
                             colour, texture='flat'))
    scene.add(OBJECTS, z - 0.5, *group)
