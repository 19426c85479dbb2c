"""Image-plane polygon operations: clipping to a rectangle, area, and rounding to pixels."""
from __future__ import annotations

from typing import Optional

import numpy as np

#: Polygons smaller than this many pixels are dropped from both the image and the JSON.
MIN_AREA = 2.0


def clip_polygon(points: np.ndarray, x_min: float, y_min: float, x_max: float,
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


def polygon_area(points: np.ndarray) -> float:
    """Returns the absolute shoelace area of a polygon given as ``(N, 2)`` vertices."""
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def to_pixel_polygon(points: np.ndarray, width: int, height: int) -> Optional[np.ndarray]:
    """Clips a polygon to the image and rounds it to integer pixels like real annotations.

    Args:
        points: Polygon vertices of shape ``(N, 2)`` in image coordinates.
        width: Image width in pixels.
        height: Image height in pixels.

    Returns:
        ``int32`` vertices of shape ``(M, 2)``, or ``None`` when the polygon is (nearly) invisible.
    """
    clipped = clip_polygon(points, 0.0, 0.0, width - 1.0, height - 1.0)
    if len(clipped) < 3:
        return None
    pix = np.rint(clipped).astype(np.int32)
    # Rounding collapses neighbouring vertices; repeated points only bloat the JSON.
    pix = pix[np.any(pix != np.roll(pix, 1, axis=0), axis=1)]
    if len(pix) < 3 or polygon_area(pix) < MIN_AREA:
        return None
    return pix
