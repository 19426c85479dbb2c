"""Which backbone outputs a decode or auxiliary head reads, found by running it on shapes only.

A head's ``in_index`` does not always say everything it reads: mmseg's DeepLab-V3+ head
(``DepthwiseSeparableASPPHead``) also reads ``inputs[0]`` (the ``c1`` low-level feature), and a
user's own head may read anything. Rather than a table of head classes, the InfoPro segmentor
asks the head itself: it runs the head's ``forward`` once on the ``meta`` device (shapes and dtypes
only, nothing allocated, no parameter or buffer touched) on a tuple of placeholder features shaped
like the backbone's outputs, and records which placeholders any operation used.

A head can also declare what it reads: a method ``backbone_inputs(num_outputs) -> positions``
(for heads whose forward cannot run on the meta device) is used instead of the probe.
"""
from typing import Any, Iterable, List, Optional, Sequence, Set

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from ..errors import ConfigError


class HeadInputError(ConfigError):
    """A head cannot run on the backbone outputs it is given (raised when the model is built)."""


class _ReadRecorder(TorchFunctionMode):
    """Records which of ``tensors`` appear in the arguments of any torch operation."""

    def __init__(self, tensors: Sequence[torch.Tensor]):
        super().__init__()
        self._position = {id(t): i for i, t in enumerate(tensors)}
        self.read: Set[int] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        for value in tree_flatten((args, kwargs or {}))[0]:
            position = self._position.get(id(value))
            if position is not None:
                self.read.add(position)
        return func(*args, **(kwargs or {}))


class _Outputs(tuple):
    """The placeholder output tuple: an index past its end names the problem."""

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, int) and not -len(self) <= index < len(self):
            raise HeadInputError(f'it reads backbone output {index}, but the backbone has only '
                                 f'{len(self)} outputs')
        return super().__getitem__(index)


def backbone_outputs_read(head: nn.Module, shapes: Sequence[Sequence[int]],
                          describe: Optional[str] = None, name: str = 'head') -> List[int]:
    """The positions of the backbone's output tuple that ``head.forward`` reads.

    Args:
        head: A decode or auxiliary head (mmseg ``BaseDecodeHead`` or anything whose ``forward``
            takes the backbone's output tuple).
        shapes: ``(N, C, H, W)`` of each backbone output.
        describe: The backbone's outputs in words, for error messages.
        name: How the config calls the head (``decode_head``, ``auxiliary_head[1]``).

    Returns:
        list[int]: Sorted positions (non-negative).

    Raises:
        HeadInputError: The head's forward fails on these shapes (an index past the outputs,
            channels that do not match), naming the head, the outputs and the fix.
    """
    num_outputs = len(shapes)
    declared = getattr(head, 'backbone_inputs', None)
    if callable(declared):
        return sorted({int(p) % num_outputs for p in declared(num_outputs)})
    head_name = f'{name} ({type(head).__name__})'
    outputs = f' ({describe})' if describe else ''
    placeholders = _Outputs(torch.empty(shape, device='meta') for shape in shapes)
    substitutes = {key: torch.empty_like(value, device='meta')
                   for key, value in _named_tensors(head)}
    modes = {module: module.training for module in head.modules()}
    recorder = _ReadRecorder(placeholders)
    try:
        head.eval()  # no batch statistics, no dropout: only the data flow matters here
        # A head may draw random numbers in forward (SegNeXt's NMF bases): the probe leaves the
        # random state as it found it, so a seeded model initialises as mmseg's would.
        with torch.no_grad(), torch.random.fork_rng(devices=[]), recorder:
            torch.func.functional_call(head, substitutes, (placeholders, ))
    except HeadInputError as error:
        raise HeadInputError(
            f'{head_name}: {error}{outputs}. Fix: add the stage it needs to backbone.out_indices '
            'or change the head\'s in_index') from None
    except Exception as error:  # noqa: BLE001  (any failure of a user's head is reported)
        raise HeadInputError(
            f'{head_name} cannot run on the backbone outputs{outputs}: '
            f'{type(error).__name__}: {error}. Fix: make its in_index and in_channels (and '
            'c1_in_channels for DepthwiseSeparableASPPHead) match the backbone level it should '
            'read; a head whose forward cannot run on the meta device can declare what it reads '
            'with a method backbone_inputs(num_outputs) -> positions') from error
    finally:
        for module, training in modes.items():
            module.training = training
    if not recorder.read:
        raise HeadInputError(f'{head_name} reads none of the backbone outputs{outputs}; an InfoPro '
                             'head must read at least one to be placed in a local module')
    return sorted(recorder.read)


def _named_tensors(module: nn.Module) -> Iterable:
    yield from module.named_parameters(remove_duplicate=False)
    yield from module.named_buffers(remove_duplicate=False)
