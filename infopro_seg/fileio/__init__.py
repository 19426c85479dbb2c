"""File I/O: atomic writes, weights-only checkpoint loading, and their hooks into mmengine."""
from .atomic import (atomic_path, atomic_write_bytes, is_stale_temp_file, is_temp_file,
                     remove_temp_files)
from .checkpoint import (CHECKPOINT_GLOBALS, CheckpointError,
                         load_checkpoint_safely, load_from_local_safely)
from .latest_checkpoint import find_latest_checkpoint, is_complete_checkpoint
from .runner_io import ATOMIC_BACKEND, AtomicLocalBackend, safe_checkpoint_loading
from .write_errors import describe_write_error, free_space

__all__ = [
    'atomic_path', 'atomic_write_bytes', 'is_stale_temp_file', 'is_temp_file',
    'remove_temp_files', 'CHECKPOINT_GLOBALS', 'CheckpointError',
    'load_checkpoint_safely', 'load_from_local_safely', 'find_latest_checkpoint',
    'is_complete_checkpoint', 'ATOMIC_BACKEND', 'AtomicLocalBackend', 'safe_checkpoint_loading',
    'describe_write_error', 'free_space'
]
