"""Class colours of the synthetic scenes: per-class palettes and random jitter."""
from __future__ import annotations

from typing import Sequence

import numpy as np

Colour = np.ndarray  # RGB, float, 0..255

#: Typical RGB colours of each class; one is drawn per object and then jittered.
PALETTE = {
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
#: Cars lean towards blue tones (the Cityscapes car colour) but any colour is possible.
CAR_WEIGHTS = np.array([0.22, 0.2, 0.16, 0.12, 0.12, 0.1, 0.08])


def jitter(rng: np.random.Generator, rgb: Sequence[float], spread: float = 12.0,
           brightness: tuple = (0.85, 1.15)) -> Colour:
    """Returns ``rgb`` with a random brightness factor and per-channel noise.

    Args:
        rng: Random generator.
        rgb: Base colour.
        spread: Standard deviation of the per-channel noise.
        brightness: Range of the brightness factor.

    Returns:
        The jittered colour, clipped to 0..255.
    """
    base = np.asarray(rgb, dtype=np.float64) * rng.uniform(*brightness)
    return np.clip(base + rng.normal(0.0, spread, 3), 0.0, 255.0)


def class_colour(rng: np.random.Generator, label: str, spread: float = 12.0) -> Colour:
    """Draws a jittered colour from the palette of ``label``."""
    choices = PALETTE[label]
    weights = CAR_WEIGHTS if label == 'car' else None
    return jitter(rng, choices[rng.choice(len(choices), p=weights)], spread)


def random_colour(rng: np.random.Generator, low: float = 25.0, high: float = 225.0) -> Colour:
    """Returns an arbitrary colour (clothing, shop signs)."""
    return rng.uniform(low, high, 3)
