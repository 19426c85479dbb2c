"""Weights-only checkpoint loading that accepts mmengine's own training checkpoints.

torch >= 2.6 loads weights-only: a file may only name the globals torch allows (tensors,
containers), so nothing in it can run code. A stock mmengine / mmseg training checkpoint names a
few more: numpy arrays and scalars (the message hub's logs) and mmengine's ``HistoryBuffer``,
which pickles its statistics methods through ``getattr(HistoryBuffer, 'mean')``. Allowing
``builtins.getattr`` would reach any attribute of any allowed object, and ``HistoryBuffer``'s own
``__setstate__`` writes the file's entries into a class-level table shared by the whole process.
So :func:`load_checkpoint_safely` maps exactly these names, for one ``torch.load`` call, to
stand-ins of ours:

* ``mmengine.logging.history_buffer.HistoryBuffer`` -> :class:`HistoryBufferRecord`, which only
  checks and keeps the data (two numeric 1-D arrays, a length, the names of the four built-in
  statistics); after loading each record becomes a real ``HistoryBuffer`` built by its
  constructor, which touches no shared state;
* ``builtins.getattr`` -> :func:`history_buffer_statistic`, which looks up one of
  ``HistoryBuffer``'s four statistics methods by name and refuses anything else;
* numpy's array, dtype and scalar rebuilders (both numpy 1.x and 2.x names), plain data.

Any other global refuses the file before it is unpickled, with the names torch lists
(``torch.serialization.get_unsafe_globals_in_checkpoint``). Failures are reported as a
:class:`CheckpointError` whose ``reason`` and message name the true cause (missing file, no
permission, not a checkpoint, truncated or corrupt, foreign code, a device this machine lacks,
out of memory), told apart by exception types and the file's own structure.
"""
import pickle
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

#: The statistics methods HistoryBuffer registers itself (mmengine pickles them by reference).
HISTORY_BUFFER_STATISTICS = {name: getattr(HistoryBuffer, name)
                             for name in ('min', 'max', 'current', 'mean')}


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded; the message names the file, the cause and the fix.

    Attributes:
        reason: One of ``'not_found'``, ``'permission'``, ``'not_a_checkpoint'``,
            ``'truncated'``, ``'corrupt'``, ``'foreign_code'``, ``'device'``,
            ``'out_of_memory'``.
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class RefusedData(pickle.UnpicklingError):
    """Raised by our stand-ins while unpickling: the file asks for more than plain data."""


def history_buffer_statistic(owner: Any, name: Any) -> Callable:
    """What ``builtins.getattr`` means inside a checkpoint: a HistoryBuffer statistics method.

    Args:
        owner: What the file names as the attribute's owner (``HistoryBuffer``, which is
            :class:`HistoryBufferRecord` while loading).
        name: The attribute.

    Returns:
        The statistics method (a plain function value, never called while loading).

    Raises:
        RefusedData: For any other lookup.
    """
    if owner is HistoryBufferRecord and isinstance(name, str) \
            and name in HISTORY_BUFFER_STATISTICS:
        return HISTORY_BUFFER_STATISTICS[name]
    raise RefusedData(f'getattr({getattr(owner, "__name__", type(owner).__name__)}, {name!r}) '
                      '(only the lookup of a HistoryBuffer statistics method is allowed)')


def _numeric_history(value: Any, what: str) -> np.ndarray:
    if not (isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in 'biuf'):
        raise RefusedData(f'HistoryBuffer.{what} is not a 1-D numeric array')
    return value


class HistoryBufferRecord:
    """The data of a pickled mmengine ``HistoryBuffer``, checked, while a checkpoint loads.

    Accepts the two pickled forms: mmengine's own (object + ``__setstate__`` with the
    statistics methods) and the constructor call on plain arrays (older infopro-seg files).
    """

    def __init__(self, log_history: Any = (), count_history: Any = (),
                 max_length: Any = 1000000):
        self.__setstate__(dict(_log_history=np.asarray(log_history),
                               _count_history=np.asarray(count_history),
                               max_length=max_length))

    def __setstate__(self, state: Any) -> None:
        expected = {'_log_history', '_count_history', 'max_length'}
        if not isinstance(state, dict) or not expected <= set(state) <= expected | {
                'statistics_methods'}:
            raise RefusedData('a HistoryBuffer whose state is not (_log_history, '
                              '_count_history, max_length[, statistics_methods])')
        methods = state.get('statistics_methods', {})
        if not isinstance(methods, dict) or any(
                HISTORY_BUFFER_STATISTICS.get(key) is not value
                for key, value in methods.items()):
            raise RefusedData('a HistoryBuffer with statistics methods other than its own '
                              f'{sorted(HISTORY_BUFFER_STATISTICS)}')
        log = _numeric_history(state['_log_history'], '_log_history')
        count = _numeric_history(state['_count_history'], '_count_history')
        max_length = state['max_length']
        if len(log) != len(count) or type(max_length) is not int or max_length < 1:
            raise RefusedData('a HistoryBuffer with inconsistent lengths')
        self.log_history, self.count_history, self.max_length = log, count, max_length

    def to_history_buffer(self) -> HistoryBuffer:
        """The real ``HistoryBuffer``, built by its constructor (no shared state touched)."""
        return HistoryBuffer(self.log_history, self.count_history, self.max_length)


def _numpy_globals() -> List[Union[Callable, Tuple[Callable, str]]]:
    """numpy's array, dtype and scalar rebuilders, under their numpy 2.x and 1.x names."""
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    dtype_types = {type(np.dtype(code)) for code in
                   '?' + np.typecodes['AllInteger'] + np.typecodes['AllFloat']}
    entries: List[Union[Callable, Tuple[Callable, str]]] = [np.ndarray, np.dtype,
                                                            *sorted(dtype_types, key=str)]
    for name in ('_reconstruct', 'scalar'):
        for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
            entries.append((getattr(multiarray, name), f'{module}.{name}'))
    return entries


#: Everything a checkpoint may name besides what torch allows by default.
CHECKPOINT_GLOBALS = [
    (HistoryBufferRecord, 'mmengine.logging.history_buffer.HistoryBuffer'),
    (history_buffer_statistic, 'builtins.getattr'),
] + _numpy_globals()


@contextmanager
def _only_checkpoint_globals() -> Iterator[None]:
    """Within the block, torch's weights-only unpickler allows exactly CHECKPOINT_GLOBALS.

    Globals that other code added with ``torch.serialization.add_safe_globals`` are set aside
    for the block and restored after it, so the allowance is the same in every process.
    """
    others = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(CHECKPOINT_GLOBALS)
    try:
        yield
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(others)


def _restore_history_buffers(obj: Any, memo: Dict[int, Any]) -> Any:
    """Replace every HistoryBufferRecord in the loaded containers by a real HistoryBuffer."""
    if id(obj) in memo:
        return memo[id(obj)]
    if isinstance(obj, HistoryBufferRecord):
        result = obj.to_history_buffer()
    elif isinstance(obj, dict):
        for key, value in obj.items():
            obj[key] = _restore_history_buffers(value, memo)
        result = obj
    elif isinstance(obj, list):
        obj[:] = [_restore_history_buffers(value, memo) for value in obj]
        result = obj
    elif type(obj) is tuple:
        result = tuple(_restore_history_buffers(value, memo) for value in obj)
    else:
        return obj
    memo[id(obj)] = result
    return result


def _fail(path: Path, reason: str, problem: str, fix: str) -> CheckpointError:
    return CheckpointError(f'checkpoint {path} {problem}; {fix}', reason)


_DOWNLOAD_AGAIN = 'use an earlier checkpoint, or copy or download it again'
#: How a checkpoint in torch's pre-1.6 (non-zip) format begins: the pickled magic number.
_LEGACY_HEADER = pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)[:-1]


def _zip_members(path: Path) -> Set[str]:
    with zipfile.ZipFile(path) as archive:
        return {name.split('/', 1)[-1] for name in archive.namelist()}


def _file_format(path: Path) -> str:
    """``'zip'`` (torch >= 1.6) or ``'legacy'``; raises CheckpointError for anything else."""
    try:
        with open(path, 'rb') as f:
            head = f.read(64)
    except IsADirectoryError:
        raise _fail(path, 'not_a_checkpoint', 'is a folder',
                    'give the checkpoint file inside it (e.g. work_dirs/NAME/iter_N.pth)')
    except PermissionError:
        raise _fail(path, 'permission', 'cannot be read (permission denied)',
                    'ask its owner to make it readable (chmod a+r), or copy it')
    if not head:
        raise _fail(path, 'not_a_checkpoint', 'is empty',
                    f'an interrupted copy or download leaves such a file: {_DOWNLOAD_AGAIN}')
    if head.startswith(b'PK\x03\x04'):
        if not zipfile.is_zipfile(path):
            raise _fail(path, 'truncated', 'is truncated (its zip archive ends before the '
                        'table of contents)', _DOWNLOAD_AGAIN)
        members = _zip_members(path)
        if 'constants.pkl' in members:
            raise _fail(path, 'not_a_checkpoint', 'is a TorchScript archive (a compiled '
                        'model), not a checkpoint', 'give a state_dict checkpoint written by '
                        'torch.save / mmengine (TorchScript loads with torch.jit.load)')
        if 'data.pkl' not in members:
            raise _fail(path, 'not_a_checkpoint', 'is a zip archive but not a PyTorch '
                        'checkpoint (no data.pkl)',
                        'give the .pth file written by torch.save / mmengine')
        return 'zip'
    if head.startswith(_LEGACY_HEADER):
        return 'legacy'
    if head[0] == pickle.PROTO[0]:
        raise _fail(path, 'not_a_checkpoint', 'is a Python pickle, not a PyTorch checkpoint',
                    'give the .pth file written by torch.save / mmengine')
    looks = 'text (an HTML page or an error message saved by a failed download?)' \
        if all(32 <= byte < 127 or byte in b'\t\r\n' for byte in head) else 'unknown bytes'
    raise _fail(path, 'not_a_checkpoint', f'is not a PyTorch checkpoint: it holds {looks}',
                'give the .pth file written by torch.save / mmengine')


def _saved_on(path: Path) -> Set[str]:
    """The devices the file's tensors were saved on (tags such as ``'cuda:0'``)."""
    locations: Set[str] = set()

    def record(storage, location):
        locations.add(location)
        return storage

    try:
        with _only_checkpoint_globals():
            torch.load(path, map_location=record, weights_only=True)
    except Exception:  # the probe only tells devices apart; other faults are reported anyway
        pass
    return locations


def _unusable_devices(path: Path, map_location: Any) -> List[str]:
    """The devices loading would put tensors on that this process cannot use."""
    if map_location is None:
        targets = _saved_on(path)
    elif isinstance(map_location, (str, torch.device)):
        targets = {str(map_location)}
    else:  # a dict or a function: the caller's own mapping
        return []
    unusable = []
    for location in sorted(targets):
        try:
            torch.empty(0, device=location)
        except (RuntimeError, AssertionError, ValueError):  # no such device or no support
            unusable.append(location)
    return unusable


def _corruption(path: Path, error: BaseException, file_format: str) -> CheckpointError:
    """The error for a file that has the right structure but cannot be read back."""
    if file_format == 'legacy':  # no table of contents: a short file reads as corrupt
        return _fail(path, 'corrupt', f'is truncated or corrupt ({_first_line(error)})',
                     _DOWNLOAD_AGAIN)
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, RuntimeError, ValueError):
        bad = None
    where = f' (member {bad} fails its checksum)' if bad else ''
    return _fail(path, 'corrupt', f'is corrupt{where} ({_first_line(error)})', _DOWNLOAD_AGAIN)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f'{type(error).__name__}: {text.splitlines()[0]}' if text else type(error).__name__


def _refusal(error: BaseException) -> Optional[RefusedData]:
    """Our own refusal, if one caused ``error`` (torch re-raises it without its type)."""
    while error is not None:
        if isinstance(error, RefusedData):
            return error
        error = error.__cause__ or error.__context__
    return None


def _foreign_code(path: Path, what: str) -> CheckpointError:
    return _fail(path, 'foreign_code', f'asks to run or build {what}, which is not weights or '
                 'mmengine bookkeeping, so it is refused (nothing from it was run)',
                 'if you trust its author, load it in Python with torch.load(..., '
                 'weights_only=False) and save its state_dict as plain tensors')


def load_checkpoint_safely(filename: Union[str, Path],
                           map_location: Optional[Any] = None) -> Any:
    """Load a local checkpoint weights-only, with mmengine's bookkeeping as plain data.

    Args:
        filename: Path of the checkpoint (``~`` is expanded).
        map_location: As for :func:`torch.load`.

    Returns:
        The loaded checkpoint (usually a dict); message-hub logs are real ``HistoryBuffer``
        objects, as mmengine's ``MessageHub.load_state_dict`` expects.

    Raises:
        CheckpointError: The file cannot be loaded; ``reason`` and the message say why.
    """
    path = Path(filename).expanduser()
    if not path.exists():
        raise _fail(path, 'not_found', 'not found', 'check the path given to --resume, '
                    'load_from or the checkpoint argument')
    file_format = _file_format(path)
    try:
        with _only_checkpoint_globals():
            if file_format == 'zip':
                unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
                if unsafe:
                    raise _foreign_code(path, ', '.join(sorted(unsafe)))
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except CheckpointError:
        raise
    except torch.OutOfMemoryError as error:
        raise _fail(path, 'out_of_memory', f'does not fit in the memory of {map_location!r} '
                    f'({_first_line(error)})', 'free memory on that device (other '
                    "processes, see nvidia-smi) or load it to the CPU (map_location='cpu')"
                    ) from error
    except pickle.UnpicklingError as error:
        refused = _refusal(error)
        if refused is not None:
            raise _foreign_code(path, str(refused)) from error
        if file_format == 'legacy':  # torch lists the globals of zip checkpoints only
            cause = error.__context__ or error  # the unpickler's own error, before torch's text
            raise _foreign_code(path, f'objects torch does not allow ({_first_line(cause)})'
                                ) from error
        raise _corruption(path, error, file_format) from error  # fine globals, damaged pickle
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as error:
        unusable = _unusable_devices(path, map_location)
        if unusable:
            raise _fail(path, 'device', f'would put tensors on {", ".join(unusable)}, which '
                        'this machine cannot use', "load it with map_location='cpu' (or a "
                        'device you have)') from error
        if isinstance(error, EOFError):
            raise _fail(path, 'truncated', 'is truncated (it ends inside its data)',
                        _DOWNLOAD_AGAIN) from error
        raise _corruption(path, error, file_format) from error
    return _restore_history_buffers(checkpoint, {})


def load_from_local_safely(filename: str, map_location: Optional[Any] = None) -> Any:
    """mmengine's checkpoint loader for local paths, weights-only (see
    :func:`load_checkpoint_safely`); mmengine logs it as the ``local_safely`` backend."""
    return load_checkpoint_safely(filename, map_location)
