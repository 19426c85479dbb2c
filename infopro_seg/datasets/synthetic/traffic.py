"""Traffic in a synthetic street: parked and moving vehicles, two-wheelers and the ego vehicle."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .camera import box_silhouette, circle_x, ground_quad, rect_x, rect_z
from .palette import class_colour, jitter
from .people import human
from .scene import EGO, OBJECTS, Scene, Side


def add_traffic(scene: Scene) -> None:
    """Adds parked and moving vehicles, a tram, cyclists and motorcyclists."""
    rng = scene.rng
    for side in scene.sides.values():
        if rng.random() < 0.55:
            _add_parking_row(scene, side)
    for _ in range(rng.integers(1, 7)):
        _try_vehicle(scene, 'car', min_z=7.0)
    for _ in range(rng.integers(0, 2) + int(rng.random() < 0.2)):
        _try_vehicle(scene, 'truck', min_z=14.0)
    if rng.random() < 0.35:
        _try_vehicle(scene, 'bus', min_z=14.0)
    if rng.random() < 0.15:
        _try_vehicle(scene, 'train', min_z=16.0)
    for _ in range(rng.integers(0, 3)):
        _try_two_wheeler(scene)


def _add_parking_row(scene: Scene, side: Side) -> None:
    """Adds a row of cars parked along the kerb."""
    rng = scene.rng
    z = rng.uniform(5.0, 14.0)
    end = rng.uniform(30.0, 70.0)
    x = side.kerb - side.sign * rng.uniform(1.0, 1.2)
    while z < end:
        length = rng.uniform(3.9, 4.8)
        if rng.random() < 0.8:
            width = rng.uniform(1.7, 1.9)
            if scene.reserve(x - width / 2, x + width / 2, z, z + length):
                direction = 1 if rng.random() < 0.7 else -1
                _add_vehicle(scene, 'car', x, z, direction, (width, length))
        z += length + rng.uniform(0.6, 3.0)


def _try_vehicle(scene: Scene, kind: str, min_z: float) -> None:
    """Places a vehicle in a random lane at a free spot (a few tries), nearer more likely."""
    rng = scene.rng
    for _ in range(8):
        centre, direction = scene.lanes[rng.integers(len(scene.lanes))]
        if kind == 'train':  # trams run in the middle of the street
            middle = (scene.sides[-1].kerb + scene.sides[1].kerb) / 2.0
            centre, direction = min(scene.lanes, key=lambda lane: abs(lane[0] - middle))
        z = min_z + 90.0 * rng.random() ** 1.6
        x = centre + rng.uniform(-0.3, 0.3)
        width, length = _vehicle_size(rng, kind)
        if scene.reserve(x - width / 2, x + width / 2, z, z + length):
            _add_vehicle(scene, kind, x, z, direction, (width, length))
            return


def _vehicle_size(rng: np.random.Generator, kind: str) -> tuple:
    """Returns a random ``(width, length)`` in metres for a vehicle of class ``kind``."""
    sizes = {'car': ((1.7, 1.9), (3.9, 4.8)), 'truck': ((2.3, 2.5), (6.0, 9.0)),
             'bus': ((2.5, 2.55), (11.0, 13.0)), 'train': ((2.4, 2.65), (25.0, 32.0))}
    (w0, w1), (l0, l1) = sizes[kind]
    return rng.uniform(w0, w1), rng.uniform(l0, l1)


def _add_vehicle(scene: Scene, kind: str, x: float, z: float, direction: int,
                 size: Optional[tuple] = None) -> None:
    """Adds a car, truck, bus or tram with its shadow.

    Args:
        scene: The scene.
        kind: Cityscapes label of the vehicle.
        x: Lateral position of its centre in metres.
        z: Depth of its nearest face in metres.
        direction: +1 driving away from the camera, -1 oncoming.
        size: ``(width, length)`` in metres; drawn at random when ``None``.
    """
    rng, cam = scene.rng, scene.cam
    width, length = size if size is not None else _vehicle_size(rng, kind)
    height = {'car': (1.4, 1.6), 'truck': (2.8, 3.6), 'bus': (3.0, 3.3),
              'train': (3.3, 3.6)}[kind]
    height = rng.uniform(*height)
    x0, x1, z1 = x - width / 2, x + width / 2, z + length
    if kind == 'car':
        body = height * rng.uniform(0.55, 0.65)
        a, b = (0.18, 0.7) if direction > 0 else (0.3, 0.8)
        boxes = [(x0, x1, 0.0, body, z, z1),
                 (x0 + 0.12, x1 - 0.12, body, height, z + a * length, z + b * length)]
    elif kind == 'train':  # a rounded roof
        boxes = [(x0, x1, 0.0, height - 0.3, z, z1), (x0 + 0.3, x1 - 0.3, 0.0, height, z, z1)]
    else:
        boxes = [(x0, x1, 0.0, height, z, z1)]
    colour = class_colour(rng, kind, spread=10)
    details = _vehicle_details(scene, kind, x0, x1, z, z1, height, direction, boxes)
    shadow = scene.shade(ground_quad(cam, x0 - 0.2, x1 + 0.2, z - 0.3, z1), 0.55)
    shape = scene.shape(kind, box_silhouette(cam, boxes), colour, texture='flat',
                        colour2=colour * rng.uniform(0.65, 0.85), details=details)
    scene.add(OBJECTS, z, shadow, shape)


def _vehicle_details(scene: Scene, kind: str, x0: float, x1: float, z0: float, z1: float,
                     height: float, direction: int, boxes: list) -> list:
    """Returns windows, lights, wheels, plates and bumpers of a vehicle (image only).

    Args:
        scene: The scene.
        kind: Cityscapes label of the vehicle.
        x0: Left side in metres.
        x1: Right side in metres.
        z0: Nearest face in metres.
        z1: Farthest face in metres.
        height: Height in metres.
        direction: +1 driving away from the camera, -1 oncoming.
        boxes: The boxes ``(x0, x1, y0, y1, z0, z1)`` of its silhouette.

    Returns:
        Image-only details ``[(points, rgb)]``.
    """
    rng, cam = scene.rng, scene.cam
    dark = jitter(rng, (28, 32, 40), 6)
    tyre = np.array([22.0, 22.0, 24.0])
    details = []
    # The side facing the camera axis is visible when the vehicle is off-centre.
    side_x = x1 if x1 < 0 else (x0 if x0 > 0 else None)
    if side_x is not None:
        if kind == 'car':
            cabin = boxes[1]
            details.append((rect_x(cam, side_x, cabin[4] + 0.1, cabin[5] - 0.1,
                                   cabin[2] + 0.05, height - 0.07), dark))
        elif kind in ('bus', 'train'):
            details.append((rect_x(cam, side_x, z0 + 0.6, z1 - 0.6, 1.1, height - 0.6), dark))
            for door in np.arange(z0 + 2.5, z1 - 1.5, rng.uniform(5.0, 7.0)):
                door_quad = rect_x(cam, side_x, door, door + 1.2, 0.3, height - 0.5)
                details.append((door_quad, dark * 1.3))
        for wheel_z in (z0 + 0.9, z1 - 0.9):
            details.append((circle_x(cam, side_x, 0.34, wheel_z, 0.34), tyre))
    # The face towards the camera: rear when driving away, front when oncoming.
    w = x1 - x0
    details.append((rect_z(cam, z0, x0, x1, 0.0, 0.22), dark))  # bumper and wheels
    if kind == 'car':
        body = boxes[0][3]
        cabin = boxes[1]
        details.append((rect_z(cam, cabin[4], cabin[0] + 0.08, cabin[1] - 0.08,
                               body + 0.04, height - 0.07), dark))
        lamp_y = body * 0.78
    elif kind in ('bus', 'train'):
        top = height - (0.5 if direction < 0 else 0.9)
        details.append((rect_z(cam, z0, x0 + 0.12, x1 - 0.12, 1.0 if direction < 0 else 1.8,
                               top), dark))
        if direction < 0:  # destination display
            details.append((rect_z(cam, z0, x0 + 0.4, x1 - 0.4, top + 0.05, top + 0.3),
                            np.array([250.0, 160.0, 40.0])))
        lamp_y = 0.55
    else:
        if direction < 0:
            details.append((rect_z(cam, z0, x0 + 0.1, x1 - 0.1, height * 0.55,
                                   height * 0.88), dark))
        else:  # rear doors
            mid = (x0 + x1) / 2
            details.append((rect_z(cam, z0, mid - 0.02, mid + 0.02, 0.5, height - 0.1), dark))
        lamp_y = 0.5
    lamp = np.array([200.0, 25.0, 25.0]) if direction > 0 else np.array([240.0, 235.0, 210.0])
    for lx in (x0 + 0.08, x1 - 0.08 - 0.15 * w):
        details.append((rect_z(cam, z0, lx, lx + 0.15 * w, lamp_y - 0.07, lamp_y + 0.07),
                        lamp))
    mid = (x0 + x1) / 2
    details.append((rect_z(cam, z0, mid - 0.26, mid + 0.26, 0.3, 0.42),
                    np.array([225.0, 225.0, 220.0])))
    return details


def _try_two_wheeler(scene: Scene) -> None:
    """Places a cyclist or motorcyclist (seen from behind) near a kerb or in a lane."""
    rng = scene.rng
    for _ in range(8):
        side = scene.sides[1 if rng.random() < 0.6 else -1]
        if rng.random() < 0.6:
            x = side.kerb - side.sign * rng.uniform(0.6, 1.2)
        else:
            x = scene.lanes[rng.integers(len(scene.lanes))][0]
        z = 6.0 + 50.0 * rng.random() ** 1.5
        if scene.reserve(x - 0.4, x + 0.4, z, z + 1.9):
            motor = rng.random() < 0.45
            _add_two_wheeler(scene, x, z, motor)
            return


def _add_two_wheeler(scene: Scene, x: float, z: float, motor: bool) -> None:
    """Adds a bicycle or motorcycle seen from behind, with its rider on top."""
    rng, cam = scene.rng, scene.cam
    if motor:
        label = 'motorcycle'
        local = [(-0.08, 0), (0.08, 0), (0.08, 0.42), (0.22, 0.48), (0.24, 0.85), (0.12, 0.95),
                 (0.38, 1.0), (0.38, 1.08), (-0.38, 1.08), (-0.38, 1.0), (-0.12, 0.95),
                 (-0.24, 0.85), (-0.22, 0.48), (-0.08, 0.42)]
    else:
        label = 'bicycle'
        bar = rng.uniform(0.25, 0.32)
        local = [(-0.03, 0), (0.03, 0), (0.03, 0.62), (0.05, 0.7), (0.05, 0.92), (bar, 0.95),
                 (bar, 1.0), (-bar, 1.0), (-bar, 0.95), (-0.05, 0.92), (-0.05, 0.7),
                 (-0.03, 0.62)]
    pts = cam.project([(x + a, b, z) for a, b in local])
    colour = class_colour(rng, label)
    details = []
    if motor:
        details.append((rect_z(cam, z, x - 0.08, x + 0.08, 0.75, 0.82),
                        np.array([210.0, 30.0, 30.0])))
    vehicle = scene.shape(label, pts, colour, details=details)
    rider = human(scene, 'rider', x, z - 0.25, seat=0.45 if motor else 0.35, helmet=motor)
    scene.add(OBJECTS, z, vehicle, rider)


def add_ego_vehicle(scene: Scene) -> None:
    """Adds the bonnet of the recording car at the bottom ('ego vehicle': ignored label)."""
    rng, w, h = scene.rng, scene.width, scene.height
    if rng.random() < 0.15:
        return
    rise = h * rng.uniform(0.05, 0.09)
    xs = np.linspace(0.0, w - 1.0, 17)
    ys = h - 1.0 - rise * (1.0 - 0.55 * ((xs - scene.cam.cx) / (w / 2.0)) ** 2)
    pts = np.concatenate([np.stack([xs, ys], 1), [(w - 1.0, h - 1.0), (0.0, h - 1.0)]])
    paint = jitter(rng, (40, 42, 48), 10)
    scene.add(EGO, 0.0, scene.shape('ego vehicle', pts, paint * 1.6, colour2=paint,
                                    texture='flat'))
