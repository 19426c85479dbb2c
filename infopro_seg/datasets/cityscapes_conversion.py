"""Convert Cityscapes polygon annotations into the ``labelTrainIds`` PNGs that mmseg reads.

mmseg's ``CityscapesDataset`` pairs ``leftImg8bit/**/*_leftImg8bit.png`` with
``gtFine/**/*_gtFine_labelTrainIds.png``. The official data set (and the synthetic one written
by :mod:`infopro_seg.datasets.synthetic`) ships polygons instead, which the official
``cityscapesscripts`` rasterise; this module runs that conversion:

* in parallel worker processes, with a progress bar;
* atomically: each PNG is written to a hidden temporary file in the same folder and renamed
  into place, so an interrupted run never leaves a truncated label under the final name;
* idempotently: a label that is newer than its JSON and a readable PNG is skipped, and the
  temporary files of an interrupted run are removed, so re-running resumes where it stopped;
* defensively: a wrong folder layout is reported before anything is written, and a broken JSON
  is reported by name and counted as failed while the other files are still converted.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Optional, Union

from ..errors import ConfigError
from ..fileio.atomic import atomic_path, remove_temp_files

POLYGON_SUFFIX = '_gtFine_polygons.json'
LABEL_SUFFIX = '_gtFine_labelTrainIds.png'
#: The id images the official evaluation (mmseg's CityscapesMetric, cityscapesscripts' evalPixel
#: LevelSemanticLabeling) compares predictions with: ``(suffix, rasteriser, encoding)``. The
#: official download ships them; they are written only where missing (e.g. a synthetic set).
EVALUATION_OUTPUTS = (('_gtFine_labelIds.png', 'label', 'ids'),
                      ('_gtFine_instanceIds.png', 'instance', 'ids'))

PathLike = Union[str, os.PathLike]

_LAYOUT = ('  {root}/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png\n'
           '  {root}/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_polygons.json')
_HOW_TO_GET = ('Download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from '
               'https://www.cityscapes-dataset.com and unzip both into that folder, or write a '
               'synthetic set with tools/generate_synthetic_cityscapes.py.')


class CityscapesLayoutError(ValueError):
    """The data root does not have the Cityscapes folder layout (nothing has been written)."""


def label_path_for(json_path: PathLike) -> Path:
    """Returns the ``_gtFine_labelTrainIds.png`` path that belongs to a polygon JSON."""
    path = Path(json_path)
    return path.with_name(path.name[:-len(POLYGON_SUFFIX)] + LABEL_SUFFIX)


def find_polygon_files(data_root: PathLike) -> list:
    """Checks the Cityscapes layout and lists all polygon JSONs under ``gtFine``.

    Args:
        data_root: Folder that should contain ``leftImg8bit/`` and ``gtFine/``.

    Returns:
        Sorted list of ``Path`` objects.

    Raises:
        CityscapesLayoutError: The folder is missing, lacks ``leftImg8bit``/``gtFine``, or holds
            no ``*_gtFine_polygons.json``. The message says what is wrong and how to fix it.
    """
    root = Path(data_root)
    if not root.exists():
        raise CityscapesLayoutError(
            f"data root '{root}' does not exist. Pass the folder that contains 'leftImg8bit/' "
            f"and 'gtFine/', laid out as:\n{_LAYOUT.format(root=root)}\n{_HOW_TO_GET}")
    if not root.is_dir():
        raise CityscapesLayoutError(f"data root '{root}' is not a directory.")
    missing = [name for name in ('leftImg8bit', 'gtFine') if not (root / name).is_dir()]
    if missing:
        names = ' and '.join(f"'{name}/'" for name in missing)
        raise CityscapesLayoutError(
            f"'{root}' is not a Cityscapes data root: {names} missing. Expected layout:\n"
            f'{_LAYOUT.format(root=root)}\n{_HOW_TO_GET}')
    files = sorted((root / 'gtFine').rglob(f'*{POLYGON_SUFFIX}'))
    if not files:
        raise CityscapesLayoutError(
            f"no '*{POLYGON_SUFFIX}' files found under '{root / 'gtFine'}'. Expected layout:\n"
            f'{_LAYOUT.format(root=root)}\n{_HOW_TO_GET}')
    return files


def check_labels_converted(data_root: PathLike, seg_map_path: str = 'gtFine') -> None:
    """Refuses a Cityscapes label folder whose polygons have no ``labelTrainIds`` PNG yet.

    mmseg's ``CityscapesDataset`` reads ``*_gtFine_labelTrainIds.png``, which neither the
    official download nor the synthetic generator contains: without the conversion, training
    fails at its first iteration on a missing file. A folder that does not exist is left to the
    caller (it names the folder and where to get the data).

    Args:
        data_root: The dataset's ``data_root`` (the converter's argument).
        seg_map_path: The label folder relative to ``data_root`` (``data_prefix.seg_map_path``).

    Raises:
        ConfigError: Some or all labels are missing; the message names the converter command.
    """
    folder = Path(data_root) / seg_map_path
    if not folder.is_dir():
        return
    polygons = labels = 0
    for path in folder.rglob('*_gtFine_*'):
        polygons += path.name.endswith(POLYGON_SUFFIX)
        labels += path.name.endswith(LABEL_SUFFIX)
    if labels == 0 or labels < polygons:
        found = f'{polygons - labels} of {polygons}' if polygons else 'all'
        raise ConfigError(
            f"{folder}: {found} label images '*{LABEL_SUFFIX}' are missing (Cityscapes ships "
            'polygons; mmseg reads label images). Fix: python tools/dataset_converters/'
            f'cityscapes.py {data_root}')


def _is_up_to_date(label_path: Path, json_path: Path) -> bool:
    """Whether a label exists, is at least as new as its JSON and is a readable PNG."""
    from PIL import Image

    try:
        if label_path.stat().st_mtime_ns < json_path.stat().st_mtime_ns:
            return False
        with Image.open(label_path) as image:
            image.verify()  # checks the chunk CRCs, so a truncated file fails here
            return image.format == 'PNG'
    except Exception:  # missing, unreadable or not an image: convert it again
        return False


def _check_polygon_json(json_path: Path) -> None:
    """Validates a polygon JSON so that errors name the problem, not a stack trace.

    Raises:
        ValueError: The file is not valid JSON or not a Cityscapes polygon annotation.
    """
    from cityscapesscripts.helpers.labels import name2label

    try:
        data = json.loads(json_path.read_text(encoding='utf-8'))
    except UnicodeDecodeError as exc:
        raise ValueError(f'not UTF-8 text ({exc})') from None
    except json.JSONDecodeError as exc:
        raise ValueError(f'invalid JSON ({exc})') from None
    if not isinstance(data, dict):
        raise ValueError('the top level is not a JSON object')
    for key in ('imgHeight', 'imgWidth'):
        if not isinstance(data.get(key), int) or data[key] <= 0:
            raise ValueError(f"'{key}' is missing or not a positive integer")
    objects = data.get('objects')
    if not isinstance(objects, list):
        raise ValueError("'objects' is missing or not a list")
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict) or not isinstance(obj.get('polygon'), list):
            raise ValueError(f"object {index} has no 'polygon' list")
        label = obj.get('label')
        # Like json2labelImg, accept groups ('cargroup') of known labels.
        known = label in name2label or (isinstance(label, str) and label.endswith('group')
                                        and label[:-len('group')] in name2label)
        if not known:
            raise ValueError(f'object {index} has the unknown label {label!r}')
        for point in obj['polygon']:
            if not (isinstance(point, list) and len(point) == 2
                    and all(isinstance(c, (int, float)) for c in point)):
                raise ValueError(f'object {index} ({label}) has a malformed point {point!r}')


def convert_one(json_path: PathLike, force: bool = False) -> tuple:
    """Converts one polygon JSON to its ``labelTrainIds`` PNG (and missing id images), atomically.

    If the JSON is broken, an existing older label is left untouched (and the failure reported).

    Args:
        json_path: Path of a ``*_gtFine_polygons.json``.
        force: Convert even when the label is up to date.

    Returns:
        ``(status, json_path, message)`` with status ``'converted'``, ``'skipped'`` or
        ``'failed'``; the message explains a failure.
    """
    from cityscapesscripts.preparation.json2instanceImg import json2instanceImg
    from cityscapesscripts.preparation.json2labelImg import json2labelImg

    json_path = Path(json_path)
    label_path = label_path_for(json_path)
    stem = json_path.name[:-len(POLYGON_SUFFIX)]
    missing_eval = [(json_path.with_name(stem + suffix), kind, encoding)
                    for suffix, kind, encoding in EVALUATION_OUTPUTS
                    if force or not json_path.with_name(stem + suffix).exists()]
    if not force and not missing_eval and _is_up_to_date(label_path, json_path):
        return 'skipped', str(json_path), ''
    rasterise = dict(label=json2labelImg, instance=json2instanceImg)
    outputs = [(label_path, 'label', 'trainIds')] + missing_eval
    try:
        _check_polygon_json(json_path)
        for out_path, kind, encoding in outputs:
            with atomic_path(out_path) as tmp:
                rasterise[kind](str(json_path), tmp, encoding)
    except (Exception, SystemExit) as exc:  # cityscapesscripts calls sys.exit() on some errors
        message = str(exc) or type(exc).__name__
        return 'failed', str(json_path), message
    return 'converted', str(json_path), ''


def _convert_task(task: tuple) -> tuple:
    """Pool entry point: unpacks ``(json_path, force)`` for :func:`convert_one`."""
    return convert_one(*task)


class _Progress:
    """A progress bar: mmengine's when available, else a plain counter on stderr.

    Args:
        total: Number of tasks.
        enabled: Show anything at all.
    """

    def __init__(self, total: int, enabled: bool) -> None:
        self._bar = None
        self._done = 0
        self._total = total
        self._enabled = enabled
        if enabled:
            try:
                from mmengine.utils import ProgressBar
                self._bar = ProgressBar(total)
            except ImportError:  # a minimal environment: fall back to a text counter
                self._bar = None

    def update(self) -> None:
        """Marks one task as done."""
        self._done += 1
        if not self._enabled:
            return
        if self._bar is not None:
            self._bar.update()
        elif self._done == self._total or self._done % max(1, -(-self._total // 10)) == 0:
            print(f'[convert] {self._done}/{self._total}', file=sys.stderr, flush=True)

    def close(self) -> None:
        """Ends the progress line."""
        if self._enabled and self._bar is not None:
            sys.stdout.write('\n')
            sys.stdout.flush()


def default_nproc() -> int:
    """Returns the default number of worker processes: ``min(4, cpu count)``."""
    return max(1, min(4, os.cpu_count() or 1))


def convert_cityscapes(data_root: PathLike, nproc: Optional[int] = None, force: bool = False,
                       progress: bool = True) -> dict:
    """Writes ``*_gtFine_labelTrainIds.png`` next to every ``*_gtFine_polygons.json``.

    Args:
        data_root: Folder with ``leftImg8bit/`` and ``gtFine/``.
        nproc: Worker processes (default ``min(4, cpu count)``); 1 converts in this process.
        force: Re-convert labels that are up to date.
        progress: Show a progress bar.

    Returns:
        ``{'total', 'converted', 'skipped', 'failed', 'removed_temp', 'failures'}``, where
        ``failures`` is a list of ``(json_path, message)``.

    Raises:
        CityscapesLayoutError: Wrong layout; raised before anything is written.
        ValueError: ``nproc`` is smaller than 1.
    """
    nproc = default_nproc() if nproc is None else nproc
    if nproc < 1:
        raise ValueError(f'nproc must be at least 1, got {nproc}')
    files = find_polygon_files(data_root)
    removed = remove_temp_files(Path(data_root) / 'gtFine')
    tasks = [(str(path), force) for path in files]
    counts = {'converted': 0, 'skipped': 0, 'failed': 0}
    failures = []
    bar = _Progress(len(tasks), progress)

    def record(result: tuple) -> None:
        status, path, message = result
        counts[status] += 1
        if status == 'failed':
            failures.append((path, message))
        bar.update()

    if nproc == 1 or len(tasks) == 1:
        for task in tasks:
            record(_convert_task(task))
    else:
        # fork (where available) avoids re-importing the caller's heavy modules in each worker.
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context('fork' if 'fork' in methods else None)
        with context.Pool(min(nproc, len(tasks))) as pool:
            for result in pool.imap_unordered(_convert_task, tasks, chunksize=4):
                record(result)
    bar.close()
    failures.sort()
    return {'total': len(tasks), **counts, 'removed_temp': removed, 'failures': failures}
