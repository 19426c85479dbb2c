"""Atomic file writes: a reader sees the old file or the complete new one, never a partial one.

Every writer in infopro-seg (checkpoints through the ``atomic_local`` file backend, published
models, generated images and polygons, converted labels) goes through :func:`atomic_path`: it
writes a hidden temporary file beside the target, fsyncs it, renames it into place and fsyncs the
folder, so that neither a crash nor a power cut leaves a truncated file or loses the rename.

The file gets the permissions a plain ``open(path, 'w')`` gives: those of the file it replaces,
or ``0o666`` less the umask for a new one (not ``mkstemp``'s private ``0o600``), so checkpoints
and data in a shared work dir or data root stay readable to the rest of a team.

A temporary file is named ``.<target>.<host>-<pid>-<token>.tmp<suffix>`` (the target's suffix
last: cv2 and PIL pick the image format from it). :func:`remove_temp_files` deletes only the ones
that are provably stale: written on this host by a process that no longer exists, or untouched
for longer than ``max_age`` (a writer on another host sharing the folder). Temporary files of
writers that are still running (another rank, another run on the same data) are left alone.
"""
import errno
import os
import re
import secrets
import socket
import stat
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterator, Optional, Union

PathLike = Union[str, os.PathLike]

#: Marks temporary files; the target's suffix follows it.
TEMP_MARK = '.tmp'
#: A temporary file untouched for this long (seconds) is stale whoever wrote it.
DEFAULT_MAX_AGE = 24 * 3600.0

_TEMP_NAME = re.compile(r'^\.(?P<target>.+)\.(?P<host>[A-Za-z0-9_-]*)-(?P<pid>\d+)-'
                        r'(?P<token>[0-9a-f]{8})' + re.escape(TEMP_MARK) + r'(\.[^.]+)?$')


def _host() -> str:
    """This machine's name, reduced to characters that are safe in a file name."""
    return re.sub(r'[^A-Za-z0-9_-]', '_', socket.gethostname())


def _new_file_mode(path: Path) -> Optional[int]:
    """The mode of the file ``path`` replaces, or ``None`` for a new file (umask applies)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None


def _create_temp_file(path: Path) -> Path:
    """Create an empty temporary file beside ``path``, named for this host and process."""
    mode = _new_file_mode(path)
    while True:
        tmp = path.with_name(f'.{path.name}.{_host()}-{os.getpid()}-{secrets.token_hex(4)}'
                             f'{TEMP_MARK}{path.suffix}')
        try:
            # 0o666 is filtered by the umask, as for open(path, 'w').
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        try:
            if mode is not None:
                os.fchmod(fd, mode)
        finally:
            os.close(fd)
        return tmp


def _fsync_file(path: PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: PathLike) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be fsynced)."""
    if os.name == 'nt':  # Windows cannot open a folder; its renames are journaled
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path``.

    Write the file by name inside the block (``torch.save(obj, tmp)``, ``cv2.imwrite(tmp,
    ...)``). The temporary file is fsynced before the rename and the folder after it; if the
    block raises (``KeyboardInterrupt`` and ``SystemExit`` included) it is removed and ``path``
    is left as it was.

    Args:
        path: The file to write.

    Yields:
        str: The temporary path to write to.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp_file(path)
    try:
        yield str(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(data: bytes, path: PathLike) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as f:
            f.write(data)


def is_temp_file(path: PathLike) -> bool:
    """Whether ``path`` is named like a temporary file of :func:`atomic_path`."""
    return _TEMP_NAME.match(Path(path).name) is not None


def _process_exists(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (conservatively ``True`` when unsure)."""
    if os.name == 'nt':  # os.kill would terminate the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, and belongs to another user
        return True
    return True


def is_stale_temp_file(path: PathLike, max_age: float = DEFAULT_MAX_AGE) -> bool:
    """Whether ``path`` is a temporary file that no running writer will finish.

    Args:
        path: A file.
        max_age: Seconds without a write after which any temporary file is stale.

    Returns:
        bool: ``True`` for a temporary file written on this host by a process that no longer
        exists, or one not modified for ``max_age`` seconds; ``False`` otherwise (also for a
        file that is not a temporary file, or no longer exists).
    """
    match = _TEMP_NAME.match(Path(path).name)
    if match is None:
        return False
    try:
        age = time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return False
    if age > max_age:
        return True
    pid = int(match['pid'])
    if match['host'] != _host() or pid == os.getpid():
        return False
    return not _process_exists(pid)


def remove_temp_files(folder: PathLike, max_age: float = DEFAULT_MAX_AGE) -> int:
    """Delete the stale temporary files that interrupted writers left anywhere under ``folder``.

    Only provably stale files go (see :func:`is_stale_temp_file`); those of writers that are
    still running stay.

    Args:
        folder: The folder to clean.
        max_age: Seconds without a write after which any temporary file is stale.

    Returns:
        int: How many were removed.
    """
    removed = 0
    for path in Path(folder).rglob(f'.*{TEMP_MARK}*'):
        if path.is_file() and is_stale_temp_file(path, max_age):
            with suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed
