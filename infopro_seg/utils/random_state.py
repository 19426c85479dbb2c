"""The process's random states (python, numpy, torch, CUDA) as plain data, and seeded sections.

The states are stored as tensors, ints and floats only, so a checkpoint that holds them still
loads weights-only (no numpy or Python objects to allow-list).
"""
import random
from contextlib import contextmanager
from typing import Dict, Iterator

import numpy as np
import torch


def capture_random_states() -> Dict[str, object]:
    """The current states of python's ``random``, numpy's global RNG, torch's CPU RNG and (when
    CUDA is initialised) the RNG of this process's current CUDA device.

    One process drives one device (one rank per GPU), so only that device's state is this
    process's own; the states of other ranks' devices are theirs to save.

    Returns:
        dict: Plain data (tensors, ints, floats, ``None``); give it to
        :func:`restore_random_states`.
    """
    version, words, gauss_next = random.getstate()
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states = dict(
        python=dict(version=version, state=torch.tensor(words, dtype=torch.int64),
                    gauss_next=gauss_next),
        numpy=dict(keys=torch.from_numpy(keys.astype(np.int64)), position=int(position),
                   has_gauss=int(has_gauss), cached_gaussian=float(cached_gaussian)),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state()
    return states


def restore_random_states(states: Dict[str, object]) -> None:
    """Set the process's random states to ones from :func:`capture_random_states`.

    Args:
        states: As returned by :func:`capture_random_states` (possibly through a checkpoint).
            A CUDA state (one tensor) is restored to the current device when CUDA is in use; a
            list of states (one per device, as older checkpoints hold) is restored when the
            device count matches.
    """
    python = states['python']
    # A resumed checkpoint may have been mapped to the GPU; the RNG setters take CPU data.
    random.setstate((python['version'], tuple(python['state'].tolist()), python['gauss_next']))
    numpy = states['numpy']
    np.random.set_state(('MT19937', numpy['keys'].cpu().numpy().astype(np.uint32),
                         numpy['position'], numpy['has_gauss'], numpy['cached_gaussian']))
    torch.set_rng_state(states['torch'].cpu())
    cuda = states.get('cuda')
    if cuda is None or not torch.cuda.is_available():
        return
    if isinstance(cuda, torch.Tensor):
        torch.cuda.set_rng_state(cuda.cpu())
    elif len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([state.cpu() for state in cuda])


@contextmanager
def seeded_random_state(seed: int) -> Iterator[None]:
    """Run a section with python's, numpy's and torch's (CPU) random states seeded by ``seed``.

    The process's states are put back afterwards, so the section neither depends on nor changes
    what ran before it (e.g. the model's dropout in a single-process data loader).

    Args:
        seed: An int in ``[0, 2**32)``.
    """
    python, numpy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)  # not torch.manual_seed: it would reseed CUDA too
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)
        torch.set_rng_state(cpu)
