"""Atomic file writes: a reader sees the old file or the complete new one, never a partial one."""
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union


@contextmanager
def atomic_path(path: Union[str, Path]) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step.

    The temporary file keeps ``path``'s suffix (writers such as cv2 and PIL pick the format from
    it) and is removed if the block raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.stem}.', suffix=f'.tmp{path.suffix}',
                               dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_bytes(data: bytes, path: Union[str, Path]) -> None:
    """Write ``data`` to ``path`` atomically (fsync before the rename, so a crash cannot leave
    a renamed but empty file)."""
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
