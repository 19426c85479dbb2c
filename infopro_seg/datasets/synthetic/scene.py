"""What a synthetic scene is made of: labelled shapes, shadows, the street layout and draw order.

A :class:`Scene` holds the camera and the street cross-section of one sample and collects
:class:`Shape` and :class:`Shade` elements in drawing order. The modules :mod:`.ground`,
:mod:`.buildings`, :mod:`.roadside`, :mod:`.traffic` and :mod:`.people` add the elements;
:mod:`.paint` turns them into pixels.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from .camera import Camera
from .palette import Colour
from .polygons import to_pixel_polygon

# Drawing layers: everything in a lower layer is painted before everything in a higher one.
GROUND, BACKDROP, BUILDINGS, BARRIERS, OBJECTS, EGO = range(6)
Z_NEAR = 0.3  # metres; ground strips start here (far below the image bottom)
Z_FAR = 400.0  # metres; ground strips end here (a pixel or so below the horizon)


@dataclass
class Shape:
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
class Shade:
    """An image-only darkening (cast shadow); it has no label and is not stored in the JSON.

    Attributes:
        polygon: Clipped integer polygon in image coordinates.
        factor: Brightness factor of the shaded pixels.
    """

    polygon: np.ndarray
    factor: float


@dataclass
class Side:
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


class Scene:
    """The camera, street layout and queued elements of one street scene.

    Creating a scene draws the camera, the street cross-section (:attr:`sides`) and the lanes
    (:attr:`lanes`, :attr:`divider`) from ``rng``; the scene modules then add elements.

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
        self.cam = Camera(focal=width * rng.uniform(0.75, 0.95),
                          cx=width * rng.uniform(0.45, 0.55),
                          cy=height * rng.uniform(0.40, 0.47),
                          height=rng.uniform(1.1, 1.4))
        self._entries: list = []  # (layer, -depth, order, element)
        self._occupied: list = [(-1.3, 1.3, -5.0, 7.0)]  # footprints; the ego car's lane ahead
        self.sides = self._make_street()
        self.lanes, self.divider = self._make_lanes()

    # -- bookkeeping --------------------------------------------------------------------------

    def shape(self, label: str, points: np.ndarray, colour: Colour, **kwargs) -> Optional[Shape]:
        """Makes a :class:`Shape` clipped to the image, or ``None`` if it is invisible.

        Args:
            label: Cityscapes label name.
            points: Polygon in image coordinates (floats, may exceed the image).
            colour: Base RGB colour.
            **kwargs: Further :class:`Shape` fields.

        Returns:
            The shape, or ``None``.
        """
        polygon = to_pixel_polygon(points, self.width, self.height)
        if polygon is None:
            return None
        return Shape(label, polygon, np.asarray(colour, dtype=np.float64), **kwargs)

    def shade(self, points: np.ndarray, factor: float) -> Optional[Shade]:
        """Makes a :class:`Shade` clipped to the image, or ``None`` if it is invisible."""
        polygon = to_pixel_polygon(points, self.width, self.height)
        return None if polygon is None else Shade(polygon, factor)

    def add(self, layer: int, depth: float, *elements: Optional[Union[Shape, Shade]]) -> None:
        """Queues elements; within a layer farther groups are drawn first (painter's order).

        Args:
            layer: Drawing layer (``GROUND`` ... ``EGO``).
            depth: Depth of the group in metres.
            *elements: Shapes and shades; ``None`` (invisible) entries are skipped.
        """
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
            sides[sign] = Side(sign, kerb, sidewalk_end, sidewalk_end + sign * grass)
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
