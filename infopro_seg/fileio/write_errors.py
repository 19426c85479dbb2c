"""One-line explanations of a failed write: what happened, where, the free space, the fix."""
import errno
import os
import shutil
from pathlib import Path
from typing import Optional

_FULL = (errno.ENOSPC, getattr(errno, 'EDQUOT', errno.ENOSPC))
_DENIED = (errno.EACCES, errno.EPERM)


def _existing_folder(path: Path) -> Optional[Path]:
    """The nearest folder at or above ``path`` that exists."""
    for folder in (path, *path.parents):
        if folder.is_dir():
            return folder
    return None


def free_space(path: os.PathLike) -> Optional[int]:
    """Bytes free for this user on the file system that holds ``path`` (or its nearest existing
    parent folder); ``None`` when it cannot be told."""
    folder = _existing_folder(Path(path))
    if folder is None:
        return None
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _size(num_bytes: Optional[int]) -> str:
    if num_bytes is None:
        return 'unknown'
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if num_bytes < 1024 or unit == 'GiB':
            return f'{num_bytes:.1f} {unit}' if unit != 'B' else f'{num_bytes} B'
        num_bytes /= 1024
    return f'{num_bytes:.1f} TiB'  # pragma: no cover (the loop returns)


def describe_write_error(error: OSError, path: os.PathLike) -> str:
    """Say in one line why writing ``path`` failed, the free space there and what to do.

    Args:
        error: The error the write raised.
        path: The file that was being written.

    Returns:
        str: e.g. ``'could not write work_dirs/x/iter_8.pth: no space left on device (ENOSPC),
        12.0 MiB free on work_dirs/x; free space there or give another work dir'``.
    """
    path = Path(path)
    folder = _existing_folder(path.parent) or path.parent
    code = errno.errorcode.get(error.errno, str(error.errno))
    if error.errno in _FULL:
        what, fix = 'no space left on device', 'free space there or give another work dir'
    elif error.errno == errno.EROFS:
        what, fix = 'the file system is read-only', 'give a writable work dir'
    elif error.errno in _DENIED:
        what, fix = 'permission denied', (f'make {folder} writable for this user (chmod / '
                                          'chown) or give another work dir')
    else:
        what = (error.strerror or str(error)).lower()
        fix = 'check the storage (e.g. its mount and health) or give another work dir'
    return (f'could not write {path}: {what} ({code}), {_size(free_space(folder))} free on '
            f'{folder}; {fix}')
