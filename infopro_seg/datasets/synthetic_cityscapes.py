"""Synthetic street scenes written in the exact on-disk layout of Cityscapes.

The generator builds a small 3-D street (a pin-hole camera above a flat ground plane, a road with
sidewalks, building blocks, street furniture and traffic), projects every object to a polygon and
writes two files per sample, exactly like the real data set::

    leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png      8-bit RGB image
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_polygons.json      official polygon JSON

Objects are stored in drawing order (later ones on top), which is what the official
``json2labelImg`` expects, and the image is painted from the very same integer polygons, so the
``labelTrainIds`` PNGs derived from the JSON (see
:mod:`infopro_seg.datasets.cityscapes_conversion`) agree with the pixels. Colours are tied to the
class but jittered and overlapping, and textures, shading, shadows, blur and noise are added, so a
network has to use shape and context rather than single pixel colours.

Everything is deterministic for a given seed: each sample draws from its own
``numpy.random.Generator`` seeded with ``(seed, split, index)``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import cv2
import numpy as np

from ..fileio.atomic import atomic_write_bytes, remove_temp_files

SPLIT_CITIES = {'train': ('aachen', 'bremen'), 'val': ('frankfurt', 'lindau')}
FRAME_ID = 19  # the annotated frame of every real Cityscapes snippet is frame 000019
IMG_SUFFIX = '_leftImg8bit.png'
POLYGON_SUFFIX = '_gtFine_polygons.json'
MANIFEST_NAME = 'synthetic_cityscapes.json'
# Bump when the scenes change, so an old data set is not silently mixed with new samples.
GENERATOR_VERSION = 1

PathLike = Union[str, os.PathLike]
Colour = np.ndarray  # RGB, float, 0..255

# Drawing layers: everything in a lower layer is painted before everything in a higher one.
_GROUND, _BACKDROP, _BUILDINGS, _BARRIERS, _OBJECTS, _EGO = range(6)
_Z_NEAR = 0.3  # metres; ground strips start here (far below the image bottom)
_Z_FAR = 400.0  # metres; ground strips end here (a pixel or so below the horizon)
_MIN_AREA = 2.0  # pixels; smaller polygons are dropped from both image and JSON

_PALETTE = {
    'road': [(88, 88, 92), (100, 98, 96), (76, 77, 83)],
    'sidewalk': [(152, 144, 140), (168, 160, 150), (136, 133, 136)],
    'terrain': [(112, 140, 72), (142, 136, 92), (124, 150, 86)],
    'vegetation': [(60, 100, 42), (74, 112, 50), (50, 86, 46)],
    'building': [(178, 168, 150), (150, 96, 76), (126, 126, 131), (200, 196, 186),
                 (170, 140, 110), (140, 150, 160)],
    'wall': [(166, 160, 150), (150, 140, 126), (186, 181, 171)],
    'fence': [(116, 121, 123), (130, 100, 70), (96, 110, 96)],
    'pole': [(90, 92, 96), (70, 75, 72), (120, 122, 126)],
    'traffic light': [(36, 36, 33), (46, 50, 46)],
    'car': [(32, 46, 116), (42, 72, 152), (170, 172, 176), (32, 32, 36), (214, 214, 210),
            (150, 30, 30), (100, 100, 106)],
    'truck': [(206, 206, 200), (180, 182, 186), (60, 80, 112), (200, 122, 42)],
    'bus': [(226, 186, 46), (190, 46, 40), (228, 228, 224), (50, 110, 170)],
    'train': [(200, 40, 40), (234, 210, 62), (224, 224, 220)],
    'motorcycle': [(30, 30, 32), (150, 26, 30), (40, 60, 120)],
    'bicycle': [(40, 40, 46), (120, 22, 30), (30, 70, 130), (180, 180, 186)],
}
# Cars lean towards blue tones (the Cityscapes car colour) but any colour is possible.
_CAR_WEIGHTS = np.array([0.22, 0.2, 0.16, 0.12, 0.12, 0.1, 0.08])


# ----------------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class _Camera:
    """A pin-hole camera at ``(0, height, 0)`` looking along +Z with the Y axis pointing up.

    Args:
        focal: Focal length in pixels.
        cx: Column of the principal point (vanishing point of the street).
        cy: Row of the principal point (the horizon).
        height: Camera height above the ground plane in metres.
    """

    focal: float
    cx: float
    cy: float
    height: float

    def project(self, points: np.ndarray) -> np.ndarray:
        """Projects world points ``(X, Y, Z)`` in metres to image points ``(u, v)`` in pixels.

        Args:
            points: Array of shape ``(N, 3)``; all points must lie in front of the camera.

        Returns:
            Array of shape ``(N, 2)``.
        """
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        z = np.maximum(pts[:, 2], 1e-3)
        u = self.cx + self.focal * pts[:, 0] / z
        v = self.cy + self.focal * (self.height - pts[:, 1]) / z
        return np.stack([u, v], axis=1)

    def px_per_m(self, z: float) -> float:
        """Returns how many pixels one metre spans at depth ``z``."""
        return self.focal / max(z, 1e-3)


def _rect_z(cam: _Camera, z: float, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """Projects an upright rectangle facing the camera (constant depth ``z``)."""
    return cam.project([(x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)])


def _rect_x(cam: _Camera, x: float, z0: float, z1: float, y0: float, y1: float) -> np.ndarray:
    """Projects an upright rectangle parallel to the street (constant lateral position ``x``)."""
    return cam.project([(x, y0, z0), (x, y0, z1), (x, y1, z1), (x, y1, z0)])


def _ground_quad(cam: _Camera, x0: float, x1: float, z0: float, z1: float) -> np.ndarray:
    """Projects a rectangle lying on the ground plane."""
    return cam.project([(x0, 0.0, z0), (x1, 0.0, z0), (x1, 0.0, z1), (x0, 0.0, z1)])


def _box_silhouette(cam: _Camera, boxes: Iterable[Sequence[float]]) -> np.ndarray:
    """Returns the convex outline of the projection of one or more axis-aligned boxes.

    Args:
        cam: The camera.
        boxes: Boxes as ``(x0, x1, y0, y1, z0, z1)`` in metres.

    Returns:
        Hull vertices of shape ``(N, 2)``.
    """
    corners = [(x, y, z) for x0, x1, y0, y1, z0, z1 in boxes
               for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)]
    pts = cam.project(np.array(corners)).astype(np.float32)
    return cv2.convexHull(pts).reshape(-1, 2).astype(np.float64)


def _ellipse_z(cam: _Camera, x: float, y: float, z: float, rx: float, ry: float, n: int = 16,
               wobble: Optional[np.ndarray] = None) -> np.ndarray:
    """Projects an upright ellipse facing the camera; ``wobble`` scales each vertex radius."""
    angles = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    scale = np.ones(n) if wobble is None else wobble
    pts = np.stack([x + rx * scale * np.cos(angles), y + ry * scale * np.sin(angles),
                    np.full(n, z)], axis=1)
    return cam.project(pts)


def _circle_x(cam: _Camera, x: float, y: float, z: float, r: float, n: int = 14) -> np.ndarray:
    """Projects a circle in a plane parallel to the street (e.g. a wheel seen from the side)."""
    angles = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    pts = np.stack([np.full(n, x), y + r * np.sin(angles), z + r * np.cos(angles)], axis=1)
    return cam.project(pts)


def _clip_polygon(points: np.ndarray, x_min: float, y_min: float, x_max: float,
                  y_max: float) -> np.ndarray:
    """Clips a polygon to an axis-aligned rectangle (Sutherland-Hodgman).

    Clipping matters for more than tidiness: OpenCV's fixed-point rasteriser overflows for
    coordinates beyond about 32k pixels, which near-camera ground quads easily reach.

    Args:
        points: Polygon vertices of shape ``(N, 2)``.
        x_min: Left bound.
        y_min: Top bound.
        x_max: Right bound.
        y_max: Bottom bound.

    Returns:
        The clipped vertices, shape ``(M, 2)``; ``M < 3`` when nothing is left.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) and pts[:, 0].min() >= x_min and pts[:, 0].max() <= x_max \
            and pts[:, 1].min() >= y_min and pts[:, 1].max() <= y_max:
        return pts  # fast path: most small objects lie fully inside
    poly = [(float(x), float(y)) for x, y in pts]
    for axis, bound, keep_above in ((0, x_min, True), (0, x_max, False),
                                    (1, y_min, True), (1, y_max, False)):
        if len(poly) < 3:
            break
        clipped = []
        prev = poly[-1]
        prev_in = prev[axis] >= bound if keep_above else prev[axis] <= bound
        for cur in poly:
            cur_in = cur[axis] >= bound if keep_above else cur[axis] <= bound
            if cur_in != prev_in:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                cross = [prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])]
                cross[axis] = bound  # exact, so rounding cannot leave the rectangle
                clipped.append((cross[0], cross[1]))
            if cur_in:
                clipped.append(cur)
            prev, prev_in = cur, cur_in
        poly = clipped
    return np.asarray(poly, dtype=np.float64).reshape(-1, 2)


def _polygon_area(points: np.ndarray) -> float:
    """Returns the absolute shoelace area of a polygon."""
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _to_pixel_polygon(points: np.ndarray, width: int, height: int) -> Optional[np.ndarray]:
    """Clips a polygon to the image and rounds it to integer pixels like real annotations.

    Returns:
        ``int32`` vertices of shape ``(N, 2)``, or ``None`` when the polygon is (nearly) invisible.
    """
    clipped = _clip_polygon(points, 0.0, 0.0, width - 1.0, height - 1.0)
    if len(clipped) < 3:
        return None
    pix = np.rint(clipped).astype(np.int32)
    # Rounding collapses neighbouring vertices; repeated points only bloat the JSON.
    pix = pix[np.any(pix != np.roll(pix, 1, axis=0), axis=1)]
    if len(pix) < 3 or _polygon_area(pix) < _MIN_AREA:
        return None
    return pix


# ------------------------------------------------------------------------------------ shapes


@dataclass
class _Shape:
    """One labelled polygon and how to paint it.

    Attributes:
        label: Official Cityscapes label name.
        polygon: Clipped integer polygon in image coordinates; this is what goes into the JSON.
        colour: Base RGB colour.
        texture: One of ``'flat'``, ``'blotch'``, ``'speckle'``, ``'sky'``.
        colour2: Optional second colour for a vertical gradient from ``colour`` (top) to
            ``colour2`` (bottom) between the rows in ``gradient_rows`` (default: polygon extent).
        gradient_rows: Rows where the gradient starts and ends.
        alpha: Opacity; below 1 the object is see-through (fences).
        details: Image-only decorations ``(points, rgb)`` drawn on top of the texture and clipped
            to the polygon, so they never disagree with the label.
    """

    label: str
    polygon: np.ndarray
    colour: Colour
    texture: str = 'blotch'
    colour2: Optional[Colour] = None
    gradient_rows: Optional[tuple] = None
    alpha: float = 1.0
    details: list = field(default_factory=list)


@dataclass
class _Shade:
    """An image-only darkening (cast shadow); it has no label and is not stored in the JSON."""

    polygon: np.ndarray
    factor: float


@dataclass
class _Side:
    """Cross-section of one side of the street; lateral positions in metres (signed X).

    Attributes:
        sign: -1 for the left side, +1 for the right side.
        kerb: Where the road ends and the sidewalk starts.
        sidewalk_end: Where the sidewalk ends (a grass strip may follow).
        building_line: Where the building facades stand.
    """

    sign: int
    kerb: float
    sidewalk_end: float
    building_line: float


def _jitter(rng: np.random.Generator, rgb: Sequence[float], spread: float = 12.0,
            brightness: tuple = (0.85, 1.15)) -> Colour:
    """Returns ``rgb`` with a random brightness factor and per-channel noise."""
    base = np.asarray(rgb, dtype=np.float64) * rng.uniform(*brightness)
    return np.clip(base + rng.normal(0.0, spread, 3), 0.0, 255.0)


def _class_colour(rng: np.random.Generator, label: str, spread: float = 12.0) -> Colour:
    """Draws a jittered colour from the palette of ``label``."""
    choices = _PALETTE[label]
    weights = _CAR_WEIGHTS if label == 'car' else None
    return _jitter(rng, choices[rng.choice(len(choices), p=weights)], spread)


def _random_colour(rng: np.random.Generator, low: float = 25.0, high: float = 225.0) -> Colour:
    """Returns an arbitrary colour (clothing, shop signs)."""
    return rng.uniform(low, high, 3)


# --------------------------------------------------------------------------------- the scene


class _SceneBuilder:
    """Builds the polygons of one street scene in drawing order.

    Args:
        rng: Random generator of this sample.
        width: Image width in pixels.
        height: Image height in pixels.
    """

    def __init__(self, rng: np.random.Generator, width: int, height: int) -> None:
        self.rng = rng
        self.width = width
        self.height = height
        # Lengths scale with the width, so any resolution shows the same scene.
        self.cam = _Camera(focal=width * rng.uniform(0.75, 0.95),
                           cx=width * rng.uniform(0.45, 0.55),
                           cy=height * rng.uniform(0.40, 0.47),
                           height=rng.uniform(1.1, 1.4))
        self._entries: list = []  # (layer, -depth, order, element)
        self._occupied: list = [(-1.3, 1.3, -5.0, 7.0)]  # footprints; the ego car's lane ahead
        self.sides = self._make_street()
        self.lanes, self.divider = self._make_lanes()

    # -- bookkeeping --------------------------------------------------------------------------

    def shape(self, label: str, points: np.ndarray, colour: Colour, **kwargs) -> Optional[_Shape]:
        """Makes a :class:`_Shape` clipped to the image, or ``None`` if it is invisible."""
        polygon = _to_pixel_polygon(points, self.width, self.height)
        if polygon is None:
            return None
        return _Shape(label, polygon, np.asarray(colour, dtype=np.float64), **kwargs)

    def shade(self, points: np.ndarray, factor: float) -> Optional[_Shade]:
        """Makes a :class:`_Shade` clipped to the image, or ``None`` if it is invisible."""
        polygon = _to_pixel_polygon(points, self.width, self.height)
        return None if polygon is None else _Shade(polygon, factor)

    def add(self, layer: int, depth: float, *elements: Optional[Union[_Shape, _Shade]]) -> None:
        """Queues elements; within a layer farther groups are drawn first (painter's order)."""
        for element in elements:
            if element is not None:
                self._entries.append((layer, -depth, len(self._entries), element))

    def reserve(self, x0: float, x1: float, z0: float, z1: float) -> bool:
        """Reserves a ground footprint for a vehicle; returns ``False`` if it would collide."""
        for a0, a1, b0, b1 in self._occupied:
            if x0 < a1 + 0.3 and x1 > a0 - 0.3 and z0 < b1 + 1.0 and z1 > b0 - 1.0:
                return False
        self._occupied.append((x0, x1, z0, z1))
        return True

    def ordered(self) -> list:
        """Returns all elements in drawing order."""
        return [entry[3] for entry in sorted(self._entries, key=lambda e: e[:3])]

    # -- layout -------------------------------------------------------------------------------

    def _make_street(self) -> dict:
        """Draws the street cross-section: road, sidewalks, optional grass, building lines."""
        rng = self.rng
        sides = {}
        for sign in (-1, 1):
            kerb = sign * rng.uniform(3.5, 7.5)
            sidewalk_end = kerb + sign * rng.uniform(2.5, 5.0)
            grass = rng.uniform(1.5, 4.0) if rng.random() < 0.5 else 0.0
            sides[sign] = _Side(sign, kerb, sidewalk_end, sidewalk_end + sign * grass)
        return sides

    def _make_lanes(self) -> tuple:
        """Splits the road into lanes; returns ``[(centre, direction)]`` and the divider X.

        Direction +1 drives away from the camera (rear visible), -1 comes towards it.
        """
        left, right = self.sides[-1].kerb, self.sides[1].kerb
        count = max(1, int((right - left) // 3.0))
        lane_w = (right - left) / count
        centres = left + lane_w * (np.arange(count) + 0.5)
        # Lanes left of the ego lane carry oncoming traffic on two-way streets.
        ego_lane = int(np.clip((0.0 - left) // lane_w, 0, count - 1))
        two_way = count >= 2 and ego_lane >= 1 and self.rng.random() < 0.8
        split = ego_lane if two_way else 0
        lanes = [(float(c), -1 if i < split else 1) for i, c in enumerate(centres)]
        return lanes, (left + split * lane_w if two_way else None)

    # -- background ---------------------------------------------------------------------------

    def add_sky(self) -> None:
        """Adds the sky: a clear-blue or overcast gradient with clouds down to the horizon."""
        rng, cam = self.rng, self.cam
        if rng.random() < 0.7:
            top, bottom = _jitter(rng, (72, 124, 198), 10), _jitter(rng, (176, 198, 226), 8)
        else:
            top, bottom = _jitter(rng, (168, 173, 180), 8), _jitter(rng, (208, 210, 214), 6)
        rows = cam.cy + 2.0
        pts = np.array([(0, 0), (self.width - 1, 0), (self.width - 1, rows), (0, rows)], float)
        self.add(_GROUND, 0.0, self.shape('sky', pts, top, texture='sky', colour2=bottom,
                                          gradient_rows=(0.0, cam.cy)))

    def add_ground(self) -> None:
        """Adds terrain, sidewalks (with kerbs and paving joints), grass strips and the road."""
        rng, cam, w, h = self.rng, self.cam, self.width, self.height
        base = np.array([(0, cam.cy), (w - 1, cam.cy), (w - 1, h - 1), (0, h - 1)], float)
        self.add(_GROUND, 0.0, self.shape('terrain', base, _class_colour(rng, 'terrain')))
        for side in self.sides.values():
            self._add_sidewalk(side)
        for side in self.sides.values():
            if side.building_line != side.sidewalk_end:
                self._add_grass(side)
        self._add_road()
        for side in self.sides.values():
            if rng.random() < 0.45:  # shadow cast by the buildings across sidewalk and road
                reach = side.kerb - side.sign * rng.uniform(-1.0, 4.0)
                z0 = rng.uniform(_Z_NEAR, 25.0)
                pts = _ground_quad(cam, side.building_line, reach, z0, z0 + rng.uniform(10, 80))
                self.add(_GROUND, 0.0, self.shade(pts, rng.uniform(0.55, 0.75)))

    def _add_sidewalk(self, side: _Side) -> None:
        """Adds one sidewalk; it runs a little past the building line to show in gaps."""
        rng, cam = self.rng, self.cam
        colour = _class_colour(rng, 'sidewalk')
        outer = side.building_line + side.sign * 3.0
        details = [(_ground_quad(cam, side.kerb, side.kerb + side.sign * 0.25, _Z_NEAR, _Z_FAR),
                    np.clip(colour * 1.18, 0, 255))]
        step = rng.uniform(1.2, 2.5)
        z = rng.uniform(0.5, 2.0)
        joint = colour * rng.uniform(0.7, 0.85)
        # Paving joints across the sidewalk, until they are closer than 3 px.
        while z < _Z_FAR and cam.px_per_m(z) * step * cam.height / z > 3.0:
            details.append((_ground_quad(cam, side.kerb, outer, z, z + 0.06), joint))
            z += step
        pts = _ground_quad(cam, side.kerb, outer, _Z_NEAR, _Z_FAR)
        self.add(_GROUND, 0.0, self.shape('sidewalk', pts, colour, details=details))

    def _add_grass(self, side: _Side) -> None:
        """Adds a grass strip (terrain) between sidewalk and buildings, broken by driveways."""
        rng, cam = self.rng, self.cam
        colour = _class_colour(rng, 'terrain')
        z = _Z_NEAR
        while z < 150.0:
            length = rng.uniform(8.0, 60.0)
            pts = _ground_quad(cam, side.sidewalk_end, side.building_line, z, z + length)
            self.add(_GROUND, 0.0, self.shape('terrain', pts, colour, texture='blotch'))
            z += length + rng.uniform(3.0, 8.0)

    def _add_road(self) -> None:
        """Adds the road with lane markings, an optional crosswalk and asphalt patches."""
        rng, cam = self.rng, self.cam
        left, right = self.sides[-1].kerb, self.sides[1].kerb
        colour = _class_colour(rng, 'road', spread=6.0)
        paint = _jitter(rng, (215, 215, 205), 6, (0.85, 1.05))
        details = []
        for _ in range(rng.integers(0, 4)):  # repaired asphalt
            x0, z0 = rng.uniform(left, right), rng.uniform(4.0, 40.0)
            quad = _ground_quad(cam, x0, x0 + rng.uniform(0.8, 3.0), z0, z0 + rng.uniform(1, 6))
            details.append((quad, colour * rng.uniform(0.75, 0.9)))
        lane_w = (right - left) / len(self.lanes)
        for i in range(1, len(self.lanes)):
            x = left + i * lane_w
            solid = self.divider is not None and abs(x - self.divider) < 1e-6 and rng.random() < 0.5
            details += self._lane_line(x, solid, paint)
        if rng.random() < 0.5:  # edge lines next to the kerbs
            details += self._lane_line(left + 0.35, True, paint)
            details += self._lane_line(right - 0.35, True, paint)
        if rng.random() < 0.3:  # zebra crossing
            z0 = rng.uniform(7.0, 30.0)
            x = left
            while x < right:
                details.append((_ground_quad(cam, x, x + 0.5, z0, z0 + 3.5), paint))
                x += 1.0
        pts = _ground_quad(cam, left, right, _Z_NEAR, _Z_FAR)
        self.add(_GROUND, 0.0, self.shape('road', pts, colour, details=details))

    def _lane_line(self, x: float, solid: bool, paint: Colour) -> list:
        """Returns the painted quads of a solid or dashed lane line at lateral position ``x``."""
        if solid:
            return [(_ground_quad(self.cam, x - 0.07, x + 0.07, _Z_NEAR, _Z_FAR), paint)]
        quads = []
        z = self.rng.uniform(0.0, 9.0)
        while z < 150.0:
            quads.append((_ground_quad(self.cam, x - 0.07, x + 0.07, z, z + 3.0), paint))
            z += 9.0
        return quads

    # -- buildings and backdrop ---------------------------------------------------------------

    def add_buildings(self) -> None:
        """Adds rows of building blocks along both sides and a block closing the street."""
        rng = self.rng
        z_end = rng.uniform(110.0, 220.0)
        for side in self.sides.values():
            z = rng.uniform(-2.0, 6.0)
            while z < z_end:
                if rng.random() < 0.18:  # a gap between blocks, with trees behind
                    gap = rng.uniform(4.0, 15.0)
                    self._add_backdrop_trees(side, z, z + gap)
                    z += gap
                    continue
                length = rng.uniform(8.0, 30.0)
                self._add_block(side, max(z, 0.6), z + length, rng.uniform(7.0, 26.0))
                z += length
        # The street ends in a row of houses (or a wood) far away, covering the vanishing point.
        depth = z_end + rng.uniform(0.0, 30.0)
        if rng.random() < 0.8:
            # Low enough to leave the upper part of the street canyon to the sky.
            cam = self.cam
            tallest = cam.height + 0.7 * cam.cy * depth / cam.focal
            self._add_block(None, depth, depth + 20.0, min(rng.uniform(8.0, 30.0), tallest))
        else:
            self._add_backdrop_trees(None, depth, depth + 20.0)

    def _add_block(self, side: Optional[_Side], z0: float, z1: float, height: float) -> None:
        """Adds one building block with windows, a ground floor and sometimes shop signs.

        Args:
            side: Street side, or ``None`` for the block across the far end of the street.
            z0: Near end of the block in metres.
            z1: Far end of the block in metres.
            height: Height in metres.
        """
        rng, cam = self.rng, self.cam
        if side is None:
            x0, x1 = -80.0, 80.0
        else:
            inner, outer = side.building_line, side.building_line + side.sign * 15.0
            x0, x1 = min(inner, outer), max(inner, outer)
        colour = _class_colour(rng, 'building', spread=14)
        pts = _box_silhouette(cam, [(x0, x1, 0.0, height, z0, z1)])
        details = self._facade_details(side, x0, x1, z0, z1, height, colour)
        shaded = colour * rng.uniform(0.65, 0.9)  # shading: top a little brighter than bottom
        self.add(_BUILDINGS, z0, self.shape('building', pts, colour, colour2=shaded,
                                            details=details))

    def _facade_details(self, side: Optional[_Side], x0: float, x1: float, z0: float, z1: float,
                        height: float, colour: Colour) -> list:
        """Returns windows, the ground floor band and shop signs of a building block."""
        rng, cam = self.rng, self.cam
        floor_h = rng.uniform(3.0, 3.6)
        ground_h = rng.uniform(3.4, 4.5)
        spacing = rng.uniform(2.4, 4.0)
        win_w, win_h = spacing * rng.uniform(0.4, 0.6), floor_h * rng.uniform(0.45, 0.6)
        glass = _jitter(rng, (52, 62, 78) if rng.random() < 0.7 else (110, 130, 150), 8)
        frame = colour * rng.uniform(0.55, 0.8)
        details = []
        # Two visible faces: the facade along the street and the face towards the camera.
        faces = [('z', z0, x0, x1)]
        if side is not None:
            faces.insert(0, ('x', side.building_line, z0, z1))
        for kind, at, a0, a1 in faces:
            rect = _rect_x if kind == 'x' else _rect_z
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
                    sign = _rect_x(cam, at, a, a + win_w * 1.5, ground_h - 1.0, ground_h - 0.3)
                    details.append((sign, _random_colour(rng)))
                a += spacing
        return details

    def _add_backdrop_trees(self, side: Optional[_Side], z0: float, z1: float) -> None:
        """Adds trees standing behind the building line (visible through gaps)."""
        rng = self.rng
        z = z0 + rng.uniform(0.0, 3.0)
        while z < z1:
            if side is None:
                x = rng.uniform(-60.0, 60.0)
            else:
                x = side.building_line + side.sign * rng.uniform(2.0, 10.0)
            self._add_tree(_BACKDROP, x, z, scale=rng.uniform(1.0, 1.6))
            z += rng.uniform(3.0, 7.0) if side is not None else rng.uniform(0.5, 2.0)

    def _add_tree(self, layer: int, x: float, z: float, scale: float = 1.0) -> None:
        """Adds a tree: a trunk and an irregular canopy, both labelled vegetation."""
        rng, cam = self.rng, self.cam
        radius = rng.uniform(1.4, 3.0) * scale
        trunk_h = rng.uniform(1.8, 3.5) * scale
        trunk_w = rng.uniform(0.12, 0.22) * scale
        bark = _jitter(rng, (85, 72, 60), 10)
        trunk = _rect_z(cam, z, x - trunk_w, x + trunk_w, 0.0, trunk_h + 0.5 * radius)
        leaves = _class_colour(rng, 'vegetation', spread=8)
        wobble = rng.uniform(0.8, 1.15, 18)
        canopy = _ellipse_z(cam, x, trunk_h + radius, z, radius, radius * rng.uniform(1.0, 1.3),
                            n=18, wobble=wobble)
        self.add(layer, z,
                 self.shape('vegetation', trunk, bark, texture='blotch'),
                 self.shape('vegetation', canopy, leaves, texture='speckle'))

    # -- barriers and street furniture --------------------------------------------------------

    def add_barriers(self) -> None:
        """Adds fences, walls and hedges in front of the building line."""
        rng, cam = self.rng, self.cam
        for side in self.sides.values():
            for _ in range(rng.integers(0, 3)):
                kind = rng.choice(['fence', 'wall', 'hedge'], p=[0.45, 0.35, 0.2])
                z0 = rng.uniform(2.0, 50.0)
                z1 = z0 + rng.uniform(5.0, 25.0)
                x = side.building_line - side.sign * 0.3
                if kind == 'hedge':
                    h = rng.uniform(0.8, 1.6)
                    box = (min(x, x - side.sign * 0.9), max(x, x - side.sign * 0.9), 0, h, z0, z1)
                    pts = _box_silhouette(cam, [box])
                    self.add(_BARRIERS, z0, self.shape('vegetation', pts,
                                                       _class_colour(rng, 'vegetation'),
                                                       texture='speckle'))
                elif kind == 'wall':
                    h = rng.uniform(0.6, 2.2)
                    colour = _class_colour(rng, 'wall')
                    coping = [(_rect_x(cam, x, z0, z1, h - 0.15, h), colour * 1.15)]
                    self.add(_BARRIERS, z0, self.shape('wall', _rect_x(cam, x, z0, z1, 0, h),
                                                       colour, details=coping))
                else:
                    self._add_fence(x, z0, z1, rng.uniform(1.0, 1.8))

    def _add_fence(self, x: float, z0: float, z1: float, height: float) -> None:
        """Adds a see-through fence with posts, rails and bars."""
        rng, cam = self.rng, self.cam
        colour = _class_colour(rng, 'fence')
        bar = colour * rng.uniform(0.5, 0.75)
        details = [(_rect_x(cam, x, z0, z1, height - 0.08, height), bar),
                   (_rect_x(cam, x, z0, z1, 0.15, 0.22), bar)]
        step = rng.uniform(0.15, 0.3)
        z = z0
        while z < z1 and cam.px_per_m(z) * step > 2.0:
            details.append((_rect_x(cam, x, z, z + step * 0.35, 0.0, height), bar))
            z += step
        self.add(_BARRIERS, z0, self.shape('fence', _rect_x(cam, x, z0, z1, 0.0, height), colour,
                                           alpha=rng.uniform(0.65, 0.9), details=details))

    def add_street_furniture(self) -> None:
        """Adds street trees, lamp posts, sign posts and traffic lights along the kerbs."""
        rng = self.rng
        for side in self.sides.values():
            if rng.random() < 0.5:  # a row of street trees
                z = rng.uniform(3.0, 12.0)
                x = side.sidewalk_end - side.sign * rng.uniform(0.6, 1.2)
                soil = _class_colour(rng, 'terrain')
                while z < 120.0:
                    self._add_tree(_OBJECTS, x, z)
                    # An unpaved tree pit (terrain) in the sidewalk around the trunk.
                    pit = _ground_quad(self.cam, x - 0.7, x + 0.7, z - 0.7, z + 0.7)
                    self.add(_GROUND, 0.0, self.shape('terrain', pit, soil))
                    z += rng.uniform(7.0, 16.0)
            z = rng.uniform(2.0, 15.0)
            while z < 100.0:
                self._add_post(side, z)
                z += rng.uniform(12.0, 35.0)

    def _add_post(self, side: _Side, z: float) -> None:
        """Adds one pole with what hangs on it (a lamp arm, a traffic light or a sign)."""
        rng, cam = self.rng, self.cam
        kind = rng.choice(['lamp', 'sign', 'light'], p=[0.4, 0.38, 0.22])
        x = side.kerb + side.sign * rng.uniform(0.3, 0.8)
        half = rng.uniform(0.07, 0.14)
        colour = _class_colour(rng, 'pole')
        top = {'lamp': rng.uniform(6.0, 9.0), 'sign': rng.uniform(2.6, 3.4),
               'light': rng.uniform(3.2, 4.5)}[kind]
        group = [self.shape('pole', _rect_z(cam, z, x - half, x + half, 0.0, top), colour)]
        if kind == 'lamp':
            reach = x - side.sign * rng.uniform(1.2, 2.5)
            arm = _rect_z(cam, z, min(x, reach), max(x, reach), top - 0.12, top)
            group.append(self.shape('pole', arm, colour))
        elif kind == 'light':
            group.append(self._traffic_light(x - side.sign * 0.25, top, z))
        else:
            group.append(self._traffic_sign(x, top - rng.uniform(0.1, 0.5), z))
        if kind != 'sign' and rng.random() < 0.35:  # an extra sign lower on the pole
            group.append(self._traffic_sign(x, rng.uniform(2.0, 2.6), z - 0.05))
        self.add(_OBJECTS, z, *group)

    def _traffic_light(self, x: float, top: float, z: float) -> Optional[_Shape]:
        """Returns a traffic light head facing the camera with one lit lamp."""
        rng, cam = self.rng, self.cam
        w, h = rng.uniform(0.3, 0.4), rng.uniform(0.85, 1.05)
        housing = _class_colour(rng, 'traffic light', spread=6)
        lamps = [(220, 40, 30), (235, 170, 20), (40, 200, 90)]
        lit = rng.integers(0, 3)
        details = []
        for i, rgb in enumerate(lamps):
            y = top - h * (i + 0.5) / 3.0
            brightness = 1.0 if i == lit else 0.3
            details.append((_ellipse_z(cam, x, y, z, w * 0.32, w * 0.32, n=10),
                            np.asarray(rgb, float) * brightness))
        pts = _rect_z(cam, z, x - w / 2, x + w / 2, top - h, top)
        return self.shape('traffic light', pts, housing, texture='flat', details=details)

    def _traffic_sign(self, x: float, centre_y: float, z: float) -> Optional[_Shape]:
        """Returns a traffic sign facing the camera (round, triangular, square or diamond)."""
        rng, cam = self.rng, self.cam
        r = rng.uniform(0.3, 0.42)
        kind = rng.choice(['round', 'triangle', 'square', 'diamond'], p=[0.4, 0.25, 0.25, 0.1])
        corners = {'triangle': [(0.0, 1.0), (0.87, -0.5), (-0.87, -0.5)],
                   'diamond': [(0.0, 1.0), (1.0, 0.0), (0.0, -1.0), (-1.0, 0.0)],
                   'square': [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)]}.get(kind)

        def face(scale_x: float, scale_y: float) -> np.ndarray:
            if corners is None:
                return _ellipse_z(cam, x, centre_y, z, r * scale_x, r * scale_y, n=16)
            return cam.project([(x + r * scale_x * a, centre_y + r * scale_y * b, z)
                                for a, b in corners])

        outline = face(1.0, 1.0)
        inner = face(0.6, 0.3) if kind == 'square' else face(0.68, 0.68)
        white = _jitter(rng, (225, 225, 220), 6, (0.9, 1.05))
        if kind == 'diamond':  # priority road: yellow centre on white
            rim, centre = white, _jitter(rng, (230, 190, 40), 8)
        elif kind == 'square' or rng.random() < 0.3:  # information or mandatory: blue
            rim, centre = _jitter(rng, (30, 70, 170), 10), white
        else:  # prohibition or warning: red rim
            rim, centre = _jitter(rng, (200, 30, 30), 10), white
        return self.shape('traffic sign', outline, rim, texture='flat', details=[(inner, centre)])

    # -- traffic ------------------------------------------------------------------------------

    def add_traffic(self) -> None:
        """Adds parked and moving vehicles, a tram, cyclists and motorcyclists."""
        rng = self.rng
        for side in self.sides.values():
            if rng.random() < 0.55:
                self._add_parking_row(side)
        for _ in range(rng.integers(1, 7)):
            self._try_vehicle('car', min_z=7.0)
        for _ in range(rng.integers(0, 2) + int(rng.random() < 0.2)):
            self._try_vehicle('truck', min_z=14.0)
        if rng.random() < 0.35:
            self._try_vehicle('bus', min_z=14.0)
        if rng.random() < 0.15:
            self._try_vehicle('train', min_z=16.0)
        for _ in range(rng.integers(0, 3)):
            self._try_two_wheeler()

    def _add_parking_row(self, side: _Side) -> None:
        """Adds a row of cars parked along the kerb."""
        rng = self.rng
        z = rng.uniform(5.0, 14.0)
        end = rng.uniform(30.0, 70.0)
        x = side.kerb - side.sign * rng.uniform(1.0, 1.2)
        while z < end:
            length = rng.uniform(3.9, 4.8)
            if rng.random() < 0.8:
                width = rng.uniform(1.7, 1.9)
                if self.reserve(x - width / 2, x + width / 2, z, z + length):
                    direction = 1 if rng.random() < 0.7 else -1
                    self._add_vehicle('car', x, z, direction, (width, length))
            z += length + rng.uniform(0.6, 3.0)

    def _try_vehicle(self, kind: str, min_z: float) -> None:
        """Places a vehicle in a random lane at a free spot (a few tries), nearer more likely."""
        rng = self.rng
        for _ in range(8):
            centre, direction = self.lanes[rng.integers(len(self.lanes))]
            if kind == 'train':  # trams run in the middle of the street
                middle = (self.sides[-1].kerb + self.sides[1].kerb) / 2.0
                centre, direction = min(self.lanes, key=lambda lane: abs(lane[0] - middle))
            z = min_z + 90.0 * rng.random() ** 1.6
            x = centre + rng.uniform(-0.3, 0.3)
            width, length = self._vehicle_size(kind)
            if self.reserve(x - width / 2, x + width / 2, z, z + length):
                self._add_vehicle(kind, x, z, direction, (width, length))
                return

    def _vehicle_size(self, kind: str) -> tuple:
        """Returns a random ``(width, length)`` in metres."""
        rng = self.rng
        sizes = {'car': ((1.7, 1.9), (3.9, 4.8)), 'truck': ((2.3, 2.5), (6.0, 9.0)),
                 'bus': ((2.5, 2.55), (11.0, 13.0)), 'train': ((2.4, 2.65), (25.0, 32.0))}
        (w0, w1), (l0, l1) = sizes[kind]
        return rng.uniform(w0, w1), rng.uniform(l0, l1)

    def _add_vehicle(self, kind: str, x: float, z: float, direction: int,
                     size: Optional[tuple] = None) -> None:
        """Adds a car, truck, bus or tram with its shadow; ``z`` is its nearest face."""
        rng, cam = self.rng, self.cam
        width, length = size if size is not None else self._vehicle_size(kind)
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
        colour = _class_colour(rng, kind, spread=10)
        details = self._vehicle_details(kind, x0, x1, z, z1, height, direction, boxes)
        shadow = self.shade(_ground_quad(cam, x0 - 0.2, x1 + 0.2, z - 0.3, z1), 0.55)
        shape = self.shape(kind, _box_silhouette(cam, boxes), colour, texture='flat',
                           colour2=colour * rng.uniform(0.65, 0.85), details=details)
        self.add(_OBJECTS, z, shadow, shape)

    def _vehicle_details(self, kind: str, x0: float, x1: float, z0: float, z1: float,
                         height: float, direction: int, boxes: list) -> list:
        """Returns windows, lights, wheels, plates and bumpers of a vehicle (image only)."""
        rng, cam = self.rng, self.cam
        dark = _jitter(rng, (28, 32, 40), 6)
        tyre = np.array([22.0, 22.0, 24.0])
        details = []
        # The side facing the camera axis is visible when the vehicle is off-centre.
        side_x = x1 if x1 < 0 else (x0 if x0 > 0 else None)
        if side_x is not None:
            if kind == 'car':
                cabin = boxes[1]
                details.append((_rect_x(cam, side_x, cabin[4] + 0.1, cabin[5] - 0.1,
                                        cabin[2] + 0.05, height - 0.07), dark))
            elif kind in ('bus', 'train'):
                details.append((_rect_x(cam, side_x, z0 + 0.6, z1 - 0.6, 1.1, height - 0.6), dark))
                for door in np.arange(z0 + 2.5, z1 - 1.5, rng.uniform(5.0, 7.0)):
                    door_quad = _rect_x(cam, side_x, door, door + 1.2, 0.3, height - 0.5)
                    details.append((door_quad, dark * 1.3))
            for wheel_z in (z0 + 0.9, z1 - 0.9):
                details.append((_circle_x(cam, side_x, 0.34, wheel_z, 0.34), tyre))
        # The face towards the camera: rear when driving away, front when oncoming.
        w = x1 - x0
        details.append((_rect_z(cam, z0, x0, x1, 0.0, 0.22), dark))  # bumper and wheels
        if kind == 'car':
            body = boxes[0][3]
            cabin = boxes[1]
            details.append((_rect_z(cam, cabin[4], cabin[0] + 0.08, cabin[1] - 0.08,
                                    body + 0.04, height - 0.07), dark))
            lamp_y = body * 0.78
        elif kind in ('bus', 'train'):
            top = height - (0.5 if direction < 0 else 0.9)
            details.append((_rect_z(cam, z0, x0 + 0.12, x1 - 0.12, 1.0 if direction < 0 else 1.8,
                                    top), dark))
            if direction < 0:  # destination display
                details.append((_rect_z(cam, z0, x0 + 0.4, x1 - 0.4, top + 0.05, top + 0.3),
                                np.array([250.0, 160.0, 40.0])))
            lamp_y = 0.55
        else:
            if direction < 0:
                details.append((_rect_z(cam, z0, x0 + 0.1, x1 - 0.1, height * 0.55,
                                        height * 0.88), dark))
            else:  # rear doors
                mid = (x0 + x1) / 2
                details.append((_rect_z(cam, z0, mid - 0.02, mid + 0.02, 0.5, height - 0.1), dark))
            lamp_y = 0.5
        lamp = np.array([200.0, 25.0, 25.0]) if direction > 0 else np.array([240.0, 235.0, 210.0])
        for lx in (x0 + 0.08, x1 - 0.08 - 0.15 * w):
            details.append((_rect_z(cam, z0, lx, lx + 0.15 * w, lamp_y - 0.07, lamp_y + 0.07),
                            lamp))
        mid = (x0 + x1) / 2
        details.append((_rect_z(cam, z0, mid - 0.26, mid + 0.26, 0.3, 0.42),
                        np.array([225.0, 225.0, 220.0])))
        return details

    def _try_two_wheeler(self) -> None:
        """Places a cyclist or motorcyclist (seen from behind) near a kerb or in a lane."""
        rng = self.rng
        for _ in range(8):
            side = self.sides[1 if rng.random() < 0.6 else -1]
            if rng.random() < 0.6:
                x = side.kerb - side.sign * rng.uniform(0.6, 1.2)
            else:
                x = self.lanes[rng.integers(len(self.lanes))][0]
            z = 6.0 + 50.0 * rng.random() ** 1.5
            if self.reserve(x - 0.4, x + 0.4, z, z + 1.9):
                motor = rng.random() < 0.45
                self._add_two_wheeler(x, z, motor)
                return

    def _add_two_wheeler(self, x: float, z: float, motor: bool) -> None:
        """Adds a bicycle or motorcycle seen from behind, with its rider on top."""
        rng, cam = self.rng, self.cam
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
        colour = _class_colour(rng, label)
        details = []
        if motor:
            details.append((_rect_z(cam, z, x - 0.08, x + 0.08, 0.75, 0.82),
                            np.array([210.0, 30.0, 30.0])))
        vehicle = self.shape(label, pts, colour, details=details)
        rider = self._human('rider', x, z - 0.25, seat=0.45 if motor else 0.35, helmet=motor)
        self.add(_OBJECTS, z, vehicle, rider)

    # -- people -------------------------------------------------------------------------------

    def add_people(self) -> None:
        """Adds pedestrians on the sidewalks (alone or in small groups) and parked bicycles."""
        rng = self.rng
        for _ in range(rng.integers(0, 9)):
            side = self.sides[1 if rng.random() < 0.5 else -1]
            z = 3.0 + 55.0 * rng.random() ** 1.4
            walkway = abs(side.sidewalk_end - side.kerb)
            x = side.kerb + side.sign * rng.uniform(0.6, max(walkway - 0.4, 0.7))
            for k in range(1 if rng.random() < 0.7 else rng.integers(2, 4)):
                # Companions walk beside, away from the kerb.
                xk, zk = x + side.sign * k * rng.uniform(0.4, 0.7), z + rng.uniform(-0.6, 0.6)
                self.add(_OBJECTS, zk, self._human('person', xk, zk))
        for _ in range(rng.integers(0, 3)):
            side = self.sides[1 if rng.random() < 0.5 else -1]
            self._add_parked_bicycle(side.kerb + side.sign * rng.uniform(0.8, 1.6),
                                     rng.uniform(4.0, 30.0))

    def _human(self, label: str, x: float, z: float, seat: float = 0.0,
               helmet: bool = False) -> Optional[_Shape]:
        """Returns a person or rider silhouette facing (or turned away from) the camera.

        Args:
            label: ``'person'`` or ``'rider'``.
            x: Lateral position in metres.
            z: Depth in metres.
            seat: Height of the feet above the ground (riders sit on a vehicle).
            helmet: Paint the head as a helmet (motorcyclists).
        """
        rng, cam = self.rng, self.cam
        tall = rng.uniform(1.55, 1.9) if label == 'person' else rng.uniform(1.45, 1.65)
        if label == 'person' and rng.random() < 0.12:
            tall = rng.uniform(1.0, 1.3)  # a child
        stretch = rng.uniform(0.9, 1.15)
        legs = rng.uniform(0.0, 0.04) if label == 'person' else rng.uniform(0.06, 0.09)
        arms = rng.uniform(0.0, 0.03) if label == 'person' else rng.uniform(0.05, 0.08)
        outline = _human_outline(rng, legs, arms)
        pts = cam.project([(x + a * tall * stretch, seat + b * tall, z) for a, b in outline])
        trousers = _jitter(rng, (45, 48, 66), 18)
        jacket = _random_colour(rng)
        head = _jitter(rng, (205, 165, 135), 18) if not helmet else _random_colour(rng, 10, 240)
        hair = _jitter(rng, (60, 45, 35), 15)
        span = tall * 0.5
        details = [(_rect_z(cam, z, x - span, x + span, seat + 0.47 * tall, seat + 0.86 * tall),
                    jacket),
                   (_rect_z(cam, z, x - span, x + span, seat + 0.86 * tall, seat + 1.01 * tall),
                    head)]
        if not helmet:
            details.append((_rect_z(cam, z, x - span, x + span, seat + 0.955 * tall,
                                    seat + 1.01 * tall), hair))
        details.append((_rect_z(cam, z, x - span, x + span, seat - 0.01, seat + 0.04 * tall),
                        np.array([30.0, 28.0, 28.0])))  # shoes
        return self.shape(label, pts, trousers, details=details)

    def _add_parked_bicycle(self, x: float, z: float) -> None:
        """Adds a bicycle parked along the sidewalk, seen from the side: frame and two wheels."""
        rng, cam = self.rng, self.cam
        colour = _class_colour(rng, 'bicycle')
        tyre = np.array([25.0, 25.0, 28.0])
        frame = [(-0.52, 0.33), (-0.2, 0.92), (0.42, 0.98), (0.52, 0.33), (0.0, 0.28)]
        group = []
        for dz in (-0.52, 0.52):
            hub = _circle_x(cam, x, 0.33, z + dz, 0.12, n=10)
            group.append(self.shape('bicycle', _circle_x(cam, x, 0.33, z + dz, 0.33), tyre,
                                    texture='flat', details=[(hub, colour)]))
        group.append(self.shape('bicycle', cam.project([(x, b, z + a) for a, b in frame]),
                                colour, texture='flat'))
        self.add(_OBJECTS, z - 0.5, *group)

    # -- ego vehicle --------------------------------------------------------------------------

    def add_ego_vehicle(self) -> None:
        """Adds the bonnet of the recording car at the bottom ('ego vehicle': ignored label)."""
        rng, w, h = self.rng, self.width, self.height
        if rng.random() < 0.15:
            return
        rise = h * rng.uniform(0.05, 0.09)
        xs = np.linspace(0.0, w - 1.0, 17)
        ys = h - 1.0 - rise * (1.0 - 0.55 * ((xs - self.cam.cx) / (w / 2.0)) ** 2)
        pts = np.concatenate([np.stack([xs, ys], 1), [(w - 1.0, h - 1.0), (0.0, h - 1.0)]])
        paint = _jitter(rng, (40, 42, 48), 10)
        self.add(_EGO, 0.0, self.shape('ego vehicle', pts, paint * 1.6, colour2=paint,
                                       texture='flat'))


def _human_outline(rng: np.random.Generator, leg_spread: float, arm_out: float) -> list:
    """Returns a symmetric human silhouette ``(x, y)`` for a body of height 1 (feet at y = 0).

    The right half is traced from the top of the head down to the crotch and mirrored; the arms
    are separated from the torso by a thin gap, the legs by a wedge.
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


# ---------------------------------------------------------------------------------- painting


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Returns smooth random noise (roughly unit scale) with features about ``cell`` pixels big."""
    gh, gw = int(np.ceil(h / cell)) + 2, int(np.ceil(w / cell)) + 2
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _texture(rng: np.random.Generator, shape: _Shape, x0: int, y0: int, h: int, w: int,
             grain: float) -> np.ndarray:
    """Paints the base texture of a shape over its bounding box.

    Args:
        rng: Random generator.
        shape: The shape.
        x0: Left column of the bounding box.
        y0: Top row of the bounding box.
        h: Box height.
        w: Box width.
        grain: Typical texture feature size in pixels (grows with the image size).

    Returns:
        ``float32`` RGB patch of shape ``(h, w, 3)``.
    """
    colour = np.broadcast_to(shape.colour.astype(np.float32), (h, w, 3))
    if shape.colour2 is not None:
        top, bottom = shape.gradient_rows or (y0, y0 + h - 1)
        rows = np.arange(y0, y0 + h, dtype=np.float32)
        t = np.clip((rows - top) / max(bottom - top, 1.0), 0.0, 1.0)[:, None, None]
        colour = colour * (1.0 - t) + shape.colour2.astype(np.float32) * t
    if shape.texture == 'flat':
        gain = 1.0 + 0.03 * _smooth_noise(rng, h, w, 8 * grain)
    elif shape.texture == 'speckle':  # foliage: strong, fine, slightly hue-varying blotches
        gain = (1.0 + 0.28 * _smooth_noise(rng, h, w, grain)
                + 0.12 * _smooth_noise(rng, h, w, 5 * grain))
        colour = colour * (1.0 + 0.08 * _smooth_noise(rng, h, w, 2 * grain))[..., None]
    elif shape.texture == 'sky':
        gain = 1.0 + 0.015 * _smooth_noise(rng, h, w, 10 * grain)
        clouds = np.clip(_smooth_noise(rng, h, w, 25 * grain) * 1.2 - 0.5, 0.0, 0.8)[..., None]
        colour = colour * (1.0 - clouds) + np.float32(235.0) * clouds
    else:  # 'blotch': stains and wear on roads, walls and paint
        gain = 1.0 + 0.07 * _smooth_noise(rng, h, w, 6 * grain) + 0.04 * _smooth_noise(
            rng, h, w, grain)
    return (colour * gain[..., None]).astype(np.float32)


def _paint_shape(image: np.ndarray, shape: _Shape, rng: np.random.Generator, grain: float) -> None:
    """Paints one shape (texture plus clipped details) into ``image`` in place."""
    x0, y0 = shape.polygon.min(axis=0)
    x1, y1 = shape.polygon.max(axis=0) + 1
    h, w = int(y1 - y0), int(x1 - x0)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [shape.polygon - (x0, y0)], 1)
    patch = _texture(rng, shape, int(x0), int(y0), h, w, grain)
    for points, rgb in shape.details:
        local = _clip_polygon(np.asarray(points) - (x0, y0), -1.0, -1.0, w, h)
        if len(local) >= 3:
            cv2.fillPoly(patch, [np.rint(local).astype(np.int32)], [float(c) for c in rgb])
    region = image[y0:y1, x0:x1]
    inside = mask.astype(bool)
    if shape.alpha >= 1.0:
        region[inside] = patch[inside]
    else:
        region[inside] = shape.alpha * patch[inside] + (1.0 - shape.alpha) * region[inside]


def _paint_shade(image: np.ndarray, shade: _Shade) -> None:
    """Darkens the pixels under a shadow polygon in place."""
    x0, y0 = shade.polygon.min(axis=0)
    x1, y1 = shade.polygon.max(axis=0) + 1
    mask = np.zeros((int(y1 - y0), int(x1 - x0)), np.uint8)
    cv2.fillPoly(mask, [shade.polygon - (x0, y0)], 1)
    image[y0:y1, x0:x1][mask.astype(bool)] *= shade.factor


def _finish(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Applies camera effects: exposure, colour cast, slight blur and sensor noise.

    Returns:
        ``uint8`` RGB image.
    """
    height, width = image.shape[:2]
    image *= rng.uniform(0.8, 1.12) * rng.uniform(0.94, 1.06, 3).astype(np.float32)
    sigma = max(0.3, rng.uniform(0.35, 0.8) * width / 1024.0)
    image = cv2.GaussianBlur(image, (0, 0), sigma)
    image += rng.normal(0.0, rng.uniform(2.0, 5.0), image.shape).astype(np.float32)
    return np.clip(image, 0.0, 255.0).round().astype(np.uint8)


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
    """
    if height < 16 or width < 16:
        raise ValueError(f'image size must be at least 16x16 pixels, got {height}x{width}')
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    scene = _SceneBuilder(rng, width, height)
    scene.add_sky()
    scene.add_ground()
    scene.add_buildings()
    scene.add_barriers()
    scene.add_street_furniture()
    scene.add_traffic()
    scene.add_people()
    scene.add_ego_vehicle()

    image = np.zeros((height, width, 3), np.float32)
    grain = max(1.0, width / 256.0)
    objects = []
    for element in scene.ordered():
        if isinstance(element, _Shade):
            _paint_shade(image, element)
            continue
        _paint_shape(image, element, rng, grain)
        objects.append({'label': element.label, 'polygon': element.polygon.tolist()})
    annotation = {'imgHeight': height, 'imgWidth': width, 'objects': objects}
    return _finish(image, rng), annotation


# ----------------------------------------------------------------------------------- writing


def _sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Returns the generator of one sample; independent of how many samples are requested."""
    split_code = sorted(SPLIT_CITIES).index(split)
    return np.random.default_rng(np.random.SeedSequence([seed, split_code, index]))


def _sample_plan(split: str, count: int) -> list:
    """Returns ``[(index, city, stem)]`` for ``count`` samples spread over the split's cities."""
    cities = SPLIT_CITIES[split]
    plan = []
    for index in range(count):
        city = cities[index % len(cities)]
        plan.append((index, city, f'{city}_{index // len(cities):06d}_{FRAME_ID:06d}'))
    return plan


def _sample_paths(root: Path, split: str, city: str, stem: str) -> tuple:
    """Returns the image and polygon JSON paths of one sample."""
    return (root / 'leftImg8bit' / split / city / f'{stem}{IMG_SUFFIX}',
            root / 'gtFine' / split / city / f'{stem}{POLYGON_SUFFIX}')


def _encode_png(image: np.ndarray) -> bytes:
    """Encodes an RGB image as PNG bytes."""
    ok, buffer = cv2.imencode('.png', cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError('OpenCV could not encode a PNG image')
    return buffer.tobytes()


def _check_manifest(root: Path, params: dict, overwrite: bool) -> Optional[dict]:
    """Refuses to mix samples of different settings in one folder.

    Args:
        root: Output folder.
        params: Settings of this run.
        overwrite: Whether the caller allows replacing existing data.

    Returns:
        The settings of the previous run in ``root``, or ``None``.

    Raises:
        ValueError: ``root`` holds data of other settings (or unknown data) and ``overwrite`` is
            false.
    """
    manifest = root / MANIFEST_NAME
    if manifest.is_file():
        old = json.loads(manifest.read_text(encoding='utf-8'))
        if old != params and not overwrite:
            raise ValueError(
                f"'{root}' holds a synthetic set generated with {old}, but {params} was requested. "
                'Pass overwrite=True (--overwrite) to regenerate it, or choose another directory.')
        return old
    occupied = [name for name in ('leftImg8bit', 'gtFine')
                if (root / name).is_dir() and any((root / name).iterdir())]
    if occupied and not overwrite:
        raise ValueError(
            f"'{root}' already contains {' and '.join(occupied)} data that this generator did not "
            'write (no manifest). Choose an empty directory, or pass overwrite=True '
            '(--overwrite) to write the synthetic set into it anyway.')
    return None


def _remove_stale_samples(root: Path, old: dict, new: dict) -> int:
    """Deletes samples of a previous run that the new settings no longer produce.

    Derived files next to the polygons (e.g. ``_gtFine_labelTrainIds.png``) go too, so the folder
    does not end up with labels or images that have no partner.

    Returns:
        The number of files removed.
    """
    removed = 0
    for split in SPLIT_CITIES:
        keep = {stem for _, _, stem in _sample_plan(split, new.get(f'num_{split}', 0))}
        for _, city, stem in _sample_plan(split, old.get(f'num_{split}', 0)):
            if stem in keep:
                continue
            image, polygons = _sample_paths(root, split, city, stem)
            for path in [image, *polygons.parent.glob(f'{stem}_gtFine_*')]:
                if path.exists():
                    path.unlink()
                    removed += 1
    return removed


def generate_synthetic_cityscapes(out_dir: PathLike, num_train: int = 40, num_val: int = 10,
                                  height: int = 256, width: int = 512, seed: int = 0,
                                  overwrite: bool = False) -> dict:
    """Writes a synthetic data set in the exact Cityscapes layout (images and polygon JSONs).

    Label PNGs are not written: convert the polygons with
    :func:`infopro_seg.datasets.cityscapes_conversion.convert_cityscapes`, as for real data.

    Args:
        out_dir: Data root; ``leftImg8bit/`` and ``gtFine/`` are created inside.
        num_train: Number of training samples (cities ``aachen`` and ``bremen``).
        num_val: Number of validation samples (cities ``frankfurt`` and ``lindau``).
        height: Image height in pixels (at least 16).
        width: Image width in pixels (at least 16).
        seed: Seed; the same seed and size always give byte-identical files.
        overwrite: Regenerate existing samples. Without it, complete samples are skipped, and
            a folder holding data of other settings is refused.

    Returns:
        Summary with ``out_dir``, ``num_train``, ``num_val``, ``height``, ``width``, ``seed``,
        ``written`` and ``skipped`` (samples), ``removed`` (stale files deleted), and the lists
        ``images`` and ``annotations`` (paths as strings, train first).

    Raises:
        ValueError: Invalid arguments, or ``out_dir`` holds other data and ``overwrite`` is false.
    """
    if num_train < 0 or num_val < 0:
        raise ValueError(
            f'sample counts must be >= 0, got num_train={num_train}, num_val={num_val}')
    if height < 16 or width < 16:
        raise ValueError(f'image size must be at least 16x16 pixels, got {height}x{width}')
    root = Path(out_dir)
    params = {'generator': 'infopro_seg synthetic cityscapes', 'version': GENERATOR_VERSION,
              'seed': int(seed), 'height': int(height), 'width': int(width),
              'num_train': int(num_train), 'num_val': int(num_val)}
    old = _check_manifest(root, params, overwrite)
    removed = _remove_stale_samples(root, old, params) if old and old != params else 0
    if old != params:  # written before the samples, so an interrupted run can be resumed
        atomic_write_bytes(json.dumps(params, indent=2).encode('utf-8'), root / MANIFEST_NAME)
    removed += sum(remove_temp_files(root / folder) for folder in ('leftImg8bit', 'gtFine'))

    written = skipped = 0
    images, annotations = [], []
    for split, count in (('train', num_train), ('val', num_val)):
        for index, city, stem in _sample_plan(split, count):
            image_path, json_path = _sample_paths(root, split, city, stem)
            images.append(str(image_path))
            annotations.append(str(json_path))
            missing = [p for p in (image_path, json_path) if overwrite or not p.exists()]
            if not missing:
                skipped += 1
                continue
            image, annotation = render_synthetic_scene(_sample_rng(seed, split, index), height,
                                                       width)
            if json_path in missing:
                text = json.dumps(annotation, separators=(',', ':'))
                atomic_write_bytes(text.encode('utf-8'), json_path)
            if image_path in missing:
                atomic_write_bytes(_encode_png(image), image_path)
            written += 1
    return {'out_dir': str(root), 'num_train': num_train, 'num_val': num_val, 'height': height,
            'width': width, 'seed': seed, 'written': written, 'skipped': skipped,
            'removed': removed, 'images': images, 'annotations': annotations}
