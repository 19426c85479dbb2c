"""How mmengine's Runner reaches our file I/O, switched on only where this project runs.

Importing infopro-seg changes nothing in mmengine or torch except adding names to registries:

* **Atomic saving** is a file backend registered under its own name, ``atomic_local``. A config
  selects it for checkpoints (and ``last_checkpoint``) with
  ``default_hooks = dict(checkpoint=dict(backend_args=dict(backend='atomic_local')))``;
  ``tools/train.py`` sets this when the config names no backend itself.
* **Safe loading** of local checkpoints (``load_from``, ``--resume``, ``init_cfg``'s
  ``Pretrained``) is mmengine's checkpoint loader for local paths, swapped for
  :func:`~infopro_seg.fileio.checkpoint.load_from_local_safely` only inside
  :func:`safe_checkpoint_loading` (``tools/train.py`` and ``tools/test.py`` run the Runner in
  it) or, from a config run by any other tool, while a run with the ``SafeCheckpointLoadingHook``
  in its ``custom_hooks`` lasts. mmengine's ``load_from_local`` comes back when the block or the
  run ends.
"""
from contextlib import contextmanager
from typing import Iterator

from mmengine.fileio import LocalBackend, register_backend
from mmengine.runner.checkpoint import CheckpointLoader, load_from_local

from .atomic import atomic_write_bytes
from .checkpoint import load_from_local_safely

#: The name configs give ``backend_args`` to write local files atomically.
ATOMIC_BACKEND = 'atomic_local'


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, with writes that are atomic (see ``atomic_path``)."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write_bytes(obj, filepath)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), filepath)


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


#: How many :func:`safe_checkpoint_loading` blocks are open (they nest).
_open_blocks = 0


@contextmanager
def safe_checkpoint_loading() -> Iterator[None]:
    """Within the block, mmengine loads local checkpoints with ``load_from_local_safely``.

    Registration goes through mmengine's public ``CheckpointLoader.register_scheme`` only: the
    block registers our loader for local paths, and the outermost block registers mmengine's own
    ``load_from_local`` back when it ends, also when it raises. Nested blocks are fine.
    """
    global _open_blocks
    local = ''  # mmengine's prefix for local paths (no URL scheme)
    CheckpointLoader.register_scheme(prefixes=local, loader=load_from_local_safely, force=True)
    _open_blocks += 1
    try:
        yield
    finally:
        _open_blocks -= 1
        if _open_blocks == 0:
            CheckpointLoader.register_scheme(prefixes=local, loader=load_from_local, force=True)
