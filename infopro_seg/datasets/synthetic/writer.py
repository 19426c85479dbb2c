"""Writes rendered scenes to disk in the exact Cityscapes layout, resumably and atomically.

Two files per sample, exactly like the real data set::

    leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png      8-bit RGB image
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_polygons.json      official polygon JSON

plus a manifest with the settings, so that a folder is never silently filled with samples of
different settings. Each sample draws from its own ``numpy.random.Generator`` seeded with
``(seed, split, index)``, so a sample does not depend on how many are requested.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np

from ...fileio.atomic import atomic_write_bytes, remove_temp_files
from .render import render_synthetic_scene

SPLIT_CITIES = {'train': ('aachen', 'bremen'), 'val': ('frankfurt', 'lindau')}
FRAME_ID = 19  # the annotated frame of every real Cityscapes snippet is frame 000019
IMG_SUFFIX = '_leftImg8bit.png'
POLYGON_SUFFIX = '_gtFine_polygons.json'
MANIFEST_NAME = 'synthetic_cityscapes.json'
# Bump when the scenes change, so an old data set is not silently mixed with new samples.
GENERATOR_VERSION = 1

PathLike = Union[str, os.PathLike]


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

    Args:
        root: Output folder.
        old: Settings of the previous run.
        new: Settings of this run.

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
