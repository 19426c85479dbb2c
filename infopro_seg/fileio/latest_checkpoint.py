"""Find the checkpoint to resume from: the latest one whose write finished."""
import os
import re
import zipfile
from pathlib import Path
from typing import List, Optional, Tuple

from .atomic import is_temp_file

#: The file in which mmengine's CheckpointHook names the last checkpoint it saved.
LAST_CHECKPOINT_FILE = 'last_checkpoint'
_STEP = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


def is_complete_checkpoint(path: os.PathLike) -> bool:
    """Whether ``path`` is a whole PyTorch checkpoint (a zip archive with its table of contents
    and ``data.pkl``), not one whose write stopped part way.

    This reads only the archive's directory (at its end), not the tensors.

    Args:
        path: A file.

    Returns:
        bool: ``False`` also for a missing file, a temporary file of an atomic write, or a
        checkpoint in torch's pre-1.6 format (which has no table of contents to check).
    """
    path = Path(path)
    if is_temp_file(path) or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith('/data.pkl') or name == 'data.pkl'
                       for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _named_in(work_dir: Path) -> Optional[Path]:
    """The checkpoint ``last_checkpoint`` names, if the file is readable and names one."""
    try:
        text = (work_dir / LAST_CHECKPOINT_FILE).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return Path(text) if text else None


def _step(path: Path) -> int:
    match = _STEP.match(path.name)
    return int(match[1]) if match else -1


def find_latest_checkpoint(work_dir: os.PathLike) -> Optional[str]:
    """The latest complete checkpoint of the run in ``work_dir``, or ``None``.

    mmengine resumes from whatever ``last_checkpoint`` names, and mmengine's CheckpointHook
    writes that file with a plain ``open``: a crash or a full disk can leave it empty, or naming
    a checkpoint whose write did not finish. Here the candidates are the file it names and every
    ``iter_N.pth`` / ``epoch_N.pth`` beside it and in ``work_dir``; the one with the highest
    ``N`` that :func:`is_complete_checkpoint` accepts wins (the named one if it has no number),
    so an unfinished write is never picked. Temporary files of atomic writes never are.

    Args:
        work_dir: The run's work dir.

    Returns:
        str or None: The checkpoint's path.
    """
    work_dir = Path(work_dir)
    named = _named_in(work_dir)
    folders = {work_dir} | ({named.parent} if named is not None else set())
    candidates = {path for folder in folders if folder.is_dir()
                  for path in folder.iterdir() if _STEP.match(path.name)}
    if named is not None:
        candidates.add(named)
    ranked: List[Tuple[int, bool, Path]] = sorted(
        ((_step(path), path == named, path) for path in candidates), reverse=True)
    for _, _, path in ranked:
        if is_complete_checkpoint(path):
            return str(path)
    return None
