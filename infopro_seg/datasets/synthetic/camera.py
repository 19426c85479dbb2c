"""The pin-hole camera of a synthetic street scene and the projection of simple 3-D primitives.

World coordinates are metres: X to the right, Y up from the ground plane, Z away from the camera.
Every helper returns image points ``(u, v)`` in pixels, as an array of shape ``(N, 2)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import cv2
import numpy as np


@dataclass(frozen=True)
class Camera:
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


def rect_z(cam: Camera, z: float, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """Projects an upright rectangle facing the camera (constant depth ``z``)."""
    return cam.project([(x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)])


def rect_x(cam: Camera, x: float, z0: float, z1: float, y0: float, y1: float) -> np.ndarray:
    """Projects an upright rectangle parallel to the street (constant lateral position ``x``)."""
    return cam.project([(x, y0, z0), (x, y0, z1), (x, y1, z1), (x, y1, z0)])


def ground_quad(cam: Camera, x0: float, x1: float, z0: float, z1: float) -> np.ndarray:
    """Projects a rectangle lying on the ground plane."""
    return cam.project([(x0, 0.0, z0), (x1, 0.0, z0), (x1, 0.0, z1), (x0, 0.0, z1)])


def box_silhouette(cam: Camera, boxes: Iterable[Sequence[float]]) -> np.ndarray:
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


def ellipse_z(cam: Camera, x: float, y: float, z: float, rx: float, ry: float, n: int = 16,
              wobble: Optional[np.ndarray] = None) -> np.ndarray:
    """Projects an upright ellipse facing the camera.

    Args:
        cam: The camera.
        x: Lateral position of the centre in metres.
        y: Height of the centre in metres.
        z: Depth in metres.
        rx: Horizontal radius in metres.
        ry: Vertical radius in metres.
        n: Number of vertices.
        wobble: Optional factors of shape ``(n,)`` that scale each vertex radius.

    Returns:
        Vertices of shape ``(n, 2)``.
    """
    angles = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    scale = np.ones(n) if wobble is None else wobble
    pts = np.stack([x + rx * scale * np.cos(angles), y + ry * scale * np.sin(angles),
                    np.full(n, z)], axis=1)
    return cam.project(pts)


def circle_x(cam: Camera, x: float, y: float, z: float, r: float, n: int = 14) -> np.ndarray:
    """Projects a circle in a plane parallel to the street (e.g. a wheel seen from the side)."""
    angles = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    pts = np.stack([np.full(n, x), y + r * np.sin(angles), z + r * np.cos(angles)], axis=1)
    return cam.project(pts)
