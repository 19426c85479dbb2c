"""Safe checkpoint I/O for mmengine on torch >= 2.6.

torch >= 2.6 loads weights-only by default, which rejects mmengine's own checkpoints (their
message hub holds ``HistoryBuffer`` objects with numpy arrays), so ``--resume`` and ``load_from``
break. We do not fall back to full unpickling, which runs arbitrary code from the file. Instead
every local checkpoint is loaded weights-only with an explicit allow-list of the few plain-data
types that mmengine itself writes; anything else in a file is refused with a message saying so.
Foreign weights (ImageNet-pretrained, mmseg model zoo) are plain tensors and load as before.

A ``HistoryBuffer`` pickles its statistics functions through ``getattr``, which no safe loader may
allow (``getattr`` reaches any attribute, e.g. a method that writes files), so we register a
reduction that stores only its data (values, counts, max length): checkpoints written with
infopro-seg imported load weights-only; a stock mmengine training checkpoint is refused with a
clear message (published model-zoo files, which hold weights only, load either way).

Checkpoints are also written atomically (temporary file + rename), so an interrupted save never
leaves a truncated ``iter_N.pth`` or a ``last_checkpoint`` pointing at one.
"""
import copyreg
import hashlib
import os
import os.path as osp
import pickle
import zipfile
from typing import Any, List, Optional

import numpy as np
import torch
from mmengine.fileio import io as file_io
from mmengine.fileio.backends import LocalBackend, register_backend
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from ..utils.atomic import atomic_path, atomic_write_bytes


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded: corrupt, truncated, or not plain data."""


def _numpy_globals() -> List[Any]:
    """The numpy callables and types that pickled numpy arrays and scalars refer to."""
    multiarray = getattr(np, '_core', np.core).multiarray
    dtypes = [type(np.dtype(name)) for name in
              ('float64', 'float32', 'float16', 'int64', 'int32', 'int16', 'int8', 'uint8',
               'bool')]
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype] + dtypes


#: Types mmengine writes into its checkpoints besides tensors and containers.
MMENGINE_CHECKPOINT_GLOBALS = [HistoryBuffer] + _numpy_globals()


def _reduce_history_buffer(buffer: HistoryBuffer):
    """Pickle a HistoryBuffer as its constructor call on plain arrays (no function references)."""
    return HistoryBuffer, (buffer._log_history, buffer._count_history, buffer.max_length)


def load_checkpoint_safely(filename: str, map_location: Optional[Any] = None) -> Any:
    """Load a local checkpoint weights-only, allowing only mmengine's own plain-data types.

    Args:
        filename: Path of the checkpoint.
        map_location: As for :func:`torch.load`.

    Returns:
        The loaded checkpoint (usually a dict).

    Raises:
        FileNotFoundError: No such file.
        CheckpointError: The file is corrupt or truncated, or holds objects other than weights
            and mmengine's bookkeeping; the message names the file and what to do.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} not found: check the path given to '
                                '--resume, load_from or --checkpoint')
    try:
        with torch.serialization.safe_globals(MMENGINE_CHECKPOINT_GLOBALS):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if 'global' not in str(error).lower():  # a byte stream that is no pickle at all
            raise CheckpointError(f'checkpoint {filename} is corrupt, truncated or not a PyTorch checkpoint '
                                  '(it does not unpickle); use an earlier checkpoint or download '
                                  'it again') from error
        detail = str(error).split('WeightsUnpickler error:')[-1].strip().splitlines()[0]
        raise CheckpointError(
            f'checkpoint {filename} holds Python objects that are not weights or mmengine '
            f'bookkeeping, so it is not loaded (infopro-seg never unpickles arbitrary code). '
            f'If you trust the file, re-save its state_dict as plain tensors. Detail: '
            f'{detail}') from error
    except (EOFError, zipfile.BadZipFile, RuntimeError, ValueError) as error:
        raise CheckpointError(
            f'checkpoint {filename} is corrupt or truncated ({type(error).__name__}: '
            f'{str(error).splitlines()[0] if str(error) else "no detail"}); use an earlier '
            'checkpoint or download it again') from error


def load_from_local_safely(filename: str, map_location: Optional[Any] = None) -> Any:
    """mmengine's local-file checkpoint scheme (mmengine logs the name after ``load_from_``)."""
    return load_checkpoint_safely(filename, map_location)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, with writes that are atomic."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write_bytes(obj, filepath)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), filepath)


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` that never leaves a partial file behind."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def register_safe_checkpoint_io() -> None:
    """Route mmengine's local checkpoint loading and file writing through the safe versions."""
    copyreg.pickle(HistoryBuffer, _reduce_history_buffer)
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local_safely, force=True)
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    # Drop local backends created before this call; they are cached per URI prefix.
    for key, backend in list(file_io.backend_instances.items()):
        if type(backend) is LocalBackend:
            del file_io.backend_instances[key]


#: State-dict prefixes of the training-only InfoPro heads (dropped for deployment).
TRAINING_ONLY_PREFIXES = ('local_heads.', )


def publish_checkpoint(src: str, dst: str, add_hash: bool = True) -> str:
    """Make a deployable checkpoint: weights of the plain network only.

    Drops the local heads (w, psi), the optimizer state and the runner's bookkeeping; what is left
    loads with strict key matching into mmseg's own EncoderDecoder of the same architecture.

    Args:
        src: A training checkpoint (loaded weights-only, see :func:`load_checkpoint_safely`).
        dst: Output path (``.pth``).
        add_hash: Append the first 8 hex digits of the file's SHA-256 to its name, as mmseg's
            model zoo does (``name-1a2b3c4d.pth``).

    Returns:
        str: The path written.
    """
    checkpoint = load_checkpoint_safely(src, map_location='cpu')
    state_dict = checkpoint.get('state_dict', checkpoint)
    kept = {key: value for key, value in state_dict.items()
            if not key.startswith(TRAINING_ONLY_PREFIXES)}
    meta = {key: value for key, value in checkpoint.get('meta', {}).items()
            if key in ('mmengine_version', 'dataset_meta', 'iter', 'epoch', 'seed', 'time')}
    atomic_torch_save(dict(meta=meta, state_dict=kept), dst)
    if not add_hash:
        return dst
    with open(dst, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:8]
    final = f'{osp.splitext(dst)[0]}-{digest}.pth'
    os.replace(dst, final)
    return final
