"""An infinite training sampler that can start anywhere in its stream, with per-sample seeds."""
import logging
from typing import Iterator, List, Optional, Sized

import numpy as np
import torch
from mmengine.dataset import InfiniteSampler
from mmengine.logging import print_log
from mmseg.registry import DATA_SAMPLERS

from ...utils.random_state import seeded_random_state


class SampleIndex(int):
    """A dataset index that also carries the seed of this draw's augmentation.

    It is an ``int`` to the dataset (mmengine's ``BaseDataset`` indexes with it and records it as
    ``sample_idx`` in the data info), and it crosses to the data-loader workers with its seed.
    """

    def __new__(cls, index: int, seed: int) -> 'SampleIndex':
        value = super().__new__(cls, index)
        value.seed = seed
        return value

    def __reduce__(self):
        return SampleIndex, (int(self), self.seed)


class SeededPipeline:
    """Runs a dataset's pipeline under random states seeded by the draw (:class:`SampleIndex`).

    A sample drawn as a :class:`SampleIndex` is augmented with python's, numpy's and torch's
    random states seeded by its seed, whichever process (main or data-loader worker) runs it, and
    the process's own states are left as they were. A plain ``int`` index (validation, another
    sampler) runs the pipeline unchanged.

    Args:
        pipeline: The dataset's pipeline (mmcv ``Compose``), called with the data info.
    """

    def __init__(self, pipeline):
        self.pipeline = pipeline

    @property
    def transforms(self) -> list:
        """The wrapped pipeline's transforms (for tools that list them)."""
        return getattr(self.pipeline, 'transforms', [])

    def __call__(self, results: dict):
        seed = getattr(results.get('sample_idx'), 'seed', None)
        if seed is None:
            return self.pipeline(results)
        with seeded_random_state(seed):
            return self.pipeline(results)

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.pipeline!r})'


def _datasets_with_pipelines(dataset) -> List[object]:
    """``dataset`` and the datasets inside mmengine's wrappers that run a pipeline."""
    if hasattr(dataset, 'pipeline'):
        return [dataset]
    inner = getattr(dataset, 'datasets', None) or [getattr(dataset, 'dataset', None)]
    return [found for item in inner if item is not None
            for found in _datasets_with_pipelines(item)]


@DATA_SAMPLERS.register_module()
class ResumableInfiniteSampler(InfiniteSampler):
    """mmengine's ``InfiniteSampler`` that resumes at a position and seeds every draw.

    Two properties make an interrupted run continue exactly (see
    :class:`~infopro_seg.engine.hooks.ExactResumeHook`, which drives them):

    - The stream is a function of ``(seed, position)``: epoch ``e`` is a permutation drawn from
      ``seed + e``, and :meth:`set_start` moves the start to any position without drawing the
      samples before it (so a resumed run loads none of the data it already trained on).
    - Each draw's augmentation depends on ``(seed, position)`` only: the sampler yields
      :class:`SampleIndex` values with a seed derived from both, and wraps the dataset's pipeline
      in :class:`SeededPipeline`, which runs it under random states seeded that way. The result
      is the same with any number of data-loader workers (0 included) and does not depend on how
      many samples a worker process augmented before.

    Every ``iter()`` starts at the current start position (like mmengine's ``DefaultSampler``
    restarting its epoch), rank ``r`` of ``W`` taking positions ``r, r + W, ...``.

    Args:
        dataset: The dataset; its pipeline (or that of the datasets inside an mmengine dataset
            wrapper) is wrapped in :class:`SeededPipeline` unless ``seed_augmentation=False``.
        shuffle: Shuffle each epoch.
        seed: The stream's seed; ``None`` draws one shared by all ranks (mmengine's Runner passes
            the ``randomness.seed`` of the config).
        seed_augmentation: Seed every draw's augmentation (see above).
    """

    def __init__(self,
                 dataset: Sized,
                 shuffle: bool = True,
                 seed: Optional[int] = None,
                 seed_augmentation: bool = True) -> None:
        super().__init__(dataset, shuffle=shuffle, seed=seed)
        self.start = 0
        if seed_augmentation:
            seeded = _datasets_with_pipelines(dataset)
            for inner in seeded:
                if not isinstance(inner.pipeline, SeededPipeline):
                    inner.pipeline = SeededPipeline(inner.pipeline)
            if not seeded:
                print_log(f'ResumableInfiniteSampler: {type(dataset).__name__} has no pipeline '
                          'to seed per draw; its augmentation depends on the worker processes',
                          logger='current', level=logging.WARNING)

    def set_start(self, samples: int) -> None:
        """Start the next ``iter()`` after ``samples`` draws of this rank.

        Args:
            samples: How many samples this rank has already drawn (iterations x batch size).
        """
        if samples < 0:
            raise ValueError(f'samples must be >= 0, got {samples}')
        self.start = int(samples)

    def _epoch_indices(self, epoch: int) -> List[int]:
        if not self.shuffle:
            return list(range(self.size))
        generator = torch.Generator()
        generator.manual_seed(self.seed + epoch)
        return torch.randperm(self.size, generator=generator).tolist()

    def draw_seed(self, position: int) -> int:
        """The augmentation seed of the draw at global ``position`` (all ranks interleaved)."""
        entropy = [self.seed % 2**64, position]
        return int(np.random.SeedSequence(entropy).generate_state(1)[0])

    def __iter__(self) -> Iterator[SampleIndex]:
        if self.size == 0:
            raise ValueError(f'the training dataset ({type(self.dataset).__name__}) is empty: '
                             'check its data_root and data_prefix')
        position = self.rank + self.start * self.world_size
        epoch, offset = divmod(position, self.size)
        while True:
            indices = self._epoch_indices(epoch)
            while offset < self.size:
                yield SampleIndex(indices[offset], self.draw_seed(position))
                offset += self.world_size
                position += self.world_size
            epoch += 1
            offset -= self.size
