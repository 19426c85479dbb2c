"""Atomic file writes: a reader sees the old file or the complete new one, never a partial one.

Every writer in infopro-seg (checkpoints through mmengine's local backend, published models,
generated images and polygons, converted labels) goes through :func:`atomic_path`: it writes a
hidden temporary file beside the target, flushes it to disk, and renames it into place. What an
interrupted run leaves behind is only such a temporary file, which :func:`remove_temp_files`
recognises and deletes when the job is run again.
"""
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, os.PathLike]

#: Marks temporary files: ``.<target name>.<random>.tmp<target suffix>``. The target's suffix is
#: kept last because writers such as cv2 and PIL pick the file format from it.
TEMP_MARK = '.tmp'


def _fsync(path: PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path``.

    The temporary file is fsynced before the rename, so a crash cannot leave a renamed but empty
    file, and it is removed if the block raises (including ``SystemExit``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix=f'{TEMP_MARK}{path.suffix}',
                               dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_bytes(data: bytes, path: PathLike) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as f:
            f.write(data)


def is_temp_file(path: PathLike) -> bool:
    """Whether ``path`` is a temporary file left by :func:`atomic_path`."""
    name = Path(path).name
    return name.startswith('.') and TEMP_MARK in name[1:]


def remove_temp_files(folder: PathLike) -> int:
    """Delete the temporary files an interrupted run left anywhere under ``folder``.

    Returns:
        int: How many were removed.
    """
    removed = 0
    for path in Path(folder).rglob(f'.*{TEMP_MARK}*'):
        if path.is_file() and is_temp_file(path):
            path.unlink()
            removed += 1
    return removed
