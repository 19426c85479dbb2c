"""Turns the elements of a synthetic scene into pixels: textures, details, shadows, camera effects.

Every shape is painted from the very integer polygon that goes into the JSON, so the labels
derived from the annotation agree with the image.
"""
from __future__ import annotations

import cv2
import numpy as np

from .polygons import clip_polygon
from .scene import Shade, Shape


def smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Returns smooth random noise (roughly unit scale) with features about ``cell`` pixels big.

    Args:
        rng: Random generator.
        h: Height in pixels.
        w: Width in pixels.
        cell: Feature size in pixels.

    Returns:
        ``float32`` array of shape ``(h, w)``.
    """
    gh, gw = int(np.ceil(h / cell)) + 2, int(np.ceil(w / cell)) + 2
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def texture(rng: np.random.Generator, shape: Shape, x0: int, y0: int, h: int, w: int,
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
        gain = 1.0 + 0.03 * smooth_noise(rng, h, w, 8 * grain)
    elif shape.texture == 'speckle':  # foliage: strong, fine, slightly hue-varying blotches
        gain = (1.0 + 0.28 * smooth_noise(rng, h, w, grain)
                + 0.12 * smooth_noise(rng, h, w, 5 * grain))
        colour = colour * (1.0 + 0.08 * smooth_noise(rng, h, w, 2 * grain))[..., None]
    elif shape.texture == 'sky':
        gain = 1.0 + 0.015 * smooth_noise(rng, h, w, 10 * grain)
        clouds = np.clip(smooth_noise(rng, h, w, 25 * grain) * 1.2 - 0.5, 0.0, 0.8)[..., None]
        colour = colour * (1.0 - clouds) + np.float32(235.0) * clouds
    else:  # 'blotch': stains and wear on roads, walls and paint
        gain = 1.0 + 0.07 * smooth_noise(rng, h, w, 6 * grain) + 0.04 * smooth_noise(
            rng, h, w, grain)
    return (colour * gain[..., None]).astype(np.float32)


def paint_shape(image: np.ndarray, shape: Shape, rng: np.random.Generator, grain: float) -> None:
    """Paints one shape (texture plus clipped details) into ``image`` in place.

    Args:
        image: ``float32`` RGB canvas of shape ``(H, W, 3)``.
        shape: The shape; its polygon lies inside the canvas.
        rng: Random generator.
        grain: Typical texture feature size in pixels.
    """
    x0, y0 = shape.polygon.min(axis=0)
    x1, y1 = shape.polygon.max(axis=0) + 1
    h, w = int(y1 - y0), int(x1 - x0)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [shape.polygon - (x0, y0)], 1)
    patch = texture(rng, shape, int(x0), int(y0), h, w, grain)
    for points, rgb in shape.details:
        local = clip_polygon(np.asarray(points) - (x0, y0), -1.0, -1.0, w, h)
        if len(local) >= 3:
            cv2.fillPoly(patch, [np.rint(local).astype(np.int32)], [float(c) for c in rgb])
    region = image[y0:y1, x0:x1]
    inside = mask.astype(bool)
    if shape.alpha >= 1.0:
        region[inside] = patch[inside]
    else:
        region[inside] = shape.alpha * patch[inside] + (1.0 - shape.alpha) * region[inside]


def paint_shade(image: np.ndarray, shade: Shade) -> None:
    """Darkens the pixels under a shadow polygon in place."""
    x0, y0 = shade.polygon.min(axis=0)
    x1, y1 = shade.polygon.max(axis=0) + 1
    mask = np.zeros((int(y1 - y0), int(x1 - x0)), np.uint8)
    cv2.fillPoly(mask, [shade.polygon - (x0, y0)], 1)
    image[y0:y1, x0:x1][mask.astype(bool)] *= shade.factor


def finish(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Applies camera effects: exposure, colour cast, slight blur and sensor noise.

    Args:
        image: ``float32`` RGB canvas; it is scaled in place.
        rng: Random generator.

    Returns:
        ``uint8`` RGB image.
    """
    height, width = image.shape[:2]
    image *= rng.uniform(0.8, 1.12) * rng.uniform(0.94, 1.06, 3).astype(np.float32)
    sigma = max(0.3, rng.uniform(0.35, 0.8) * width / 1024.0)
    image = cv2.GaussianBlur(image, (0, 0), sigma)
    image += rng.normal(0.0, rng.uniform(2.0, 5.0), image.shape).astype(np.float32)
    return np.clip(image, 0.0, 255.0).round().astype(np.uint8)
