"""mmengine's iteration-based train loop, resumed without loading the batches already trained."""
from typing import Iterator, Optional

from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop
from mmseg.registry import LOOPS


class _ResumedStream:
    """The loop's data iterator.

    Until :meth:`restart` it is mmengine's own iterator, unchanged. After ``restart(skip)`` the
    next ``skip`` calls (mmengine's advance over the iterations already trained) return ``None``
    at once, and the calls after them load from a fresh iterator over the data loader, created
    only then, so that it starts where the sampler was placed in the meantime (by the loop, and
    by hooks' ``before_train``).
    """

    def __init__(self, iterator: Iterator, dataloader) -> None:
        self.iterator = iterator
        self.dataloader = dataloader
        self.skip = 0
        self.fresh = False

    def restart(self, skip: int) -> None:
        """Answer the next ``skip`` calls without loading, then start over the data loader."""
        self.skip = skip
        self.fresh = True

    def __iter__(self) -> '_ResumedStream':
        return self

    def __next__(self):
        if self.skip > 0:
            self.skip -= 1
            return None
        if self.fresh:
            self.fresh = False
            self.iterator = iter(self.dataloader)  # the sampler is infinite: it never ends
        return next(self.iterator)


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` that does not replay the trained batches when it resumes.

    mmengine resumes an iteration-based run at iteration ``n`` by loading (and augmenting) the
    ``n`` batches already trained and throwing them away, so that the sampler's stream reaches
    where it stopped: hours for a long schedule. When the sampler can start anywhere in its
    stream (it has ``set_start(samples)``, as
    :class:`~infopro_seg.datasets.samplers.ResumableInfiniteSampler` has), this loop starts it
    after the ``n x batch_size`` samples this rank drew and skips those ``n`` batches without
    loading them. A hook's ``before_train`` may place the sampler more exactly (the
    :class:`~infopro_seg.engine.hooks.ExactResumeHook` uses the count and seed saved in the
    checkpoint). With any other sampler the loop is mmengine's, unchanged.

    Select it with ``train_cfg = dict(type='ResumableIterBasedTrainLoop', max_iters=...)``; the
    arguments are those of ``IterBasedTrainLoop``.
    """

    def __init__(self, runner, dataloader, max_iters: int, **kwargs) -> None:
        super().__init__(runner, dataloader, max_iters, **kwargs)
        self.dataloader_iterator = _ResumedStream(self.dataloader_iterator, self.dataloader)

    @property
    def resumable_sampler(self) -> Optional[object]:
        """The data loader's sampler if it can start anywhere (``set_start``), else ``None``."""
        for sampler in (getattr(self.dataloader, 'sampler', None),
                        getattr(getattr(self.dataloader, 'batch_sampler', None), 'sampler', None)):
            if callable(getattr(sampler, 'set_start', None)):
                return sampler
        return None

    def run(self):
        """Train; on a resume, place the sampler and skip the trained batches unloaded."""
        sampler = self.resumable_sampler
        if self.iter > 0 and sampler is not None:
            sampler.set_start(self.iter * (self.dataloader.batch_size or 1))
            self.dataloader_iterator.restart(skip=self.iter)
            print_log(f'{type(self).__name__}: the {self.iter} iterations already trained are '
                      'skipped without loading their batches (the sampler starts after them)',
                      logger='current')
        return super().run()
