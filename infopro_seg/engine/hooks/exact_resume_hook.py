"""Resume an interrupted training run exactly where it stopped: random states and data stream."""
import logging
from typing import List, Optional

from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS

from ...utils.random_state import capture_random_states, restore_random_states
from ..loops import ResumableIterBasedTrainLoop

#: The checkpoint entry this hook writes (plain data: tensors, ints, floats, dicts, lists).
CHECKPOINT_KEY = 'exact_resume'


def rank_entries(entry: dict) -> List[dict]:
    """The per-rank ``dict(random_states=..., samples=...)`` of a checkpoint's entry.

    Args:
        entry: ``checkpoint['exact_resume']``; entries written by one process (a ``random_states``
            and a ``samples`` key, no ``ranks``) read as one rank.

    Returns:
        list: One dict per rank that wrote the checkpoint, in rank order.
    """
    if 'ranks' in entry:
        return list(entry['ranks'])
    return [dict(random_states=entry['random_states'], samples=entry['samples'])]


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Make ``--resume`` continue a run as if it had never been interrupted, on any number of ranks.

    A checkpoint holds the model, optimizer and schedulers; what else decides the next
    iterations is random: dropout (torch's RNG), augmentation (numpy's and python's, in the
    data-loader workers) and the order of the samples. This hook

    - stores, with every checkpoint, every rank's random states (python, numpy, torch, the rank's
      CUDA device) and how many samples each rank has drawn (``checkpoint['exact_resume']``:
      ``sampler_seed`` and ``ranks``, a list of ``dict(random_states, samples)``; plain tensors,
      ints and lists, so the file still loads weights-only). Only rank 0 writes the file: the
      other ranks' entries are gathered when the checkpoint hook announces a save on all ranks
      (``before_save_checkpoint_on_all_ranks``, which
      :class:`~infopro_seg.engine.hooks.FaultTolerantCheckpointHook` calls);
    - on ``--resume``, gives each rank its own entry: the sampler starts after that rank's
      samples (with :class:`~infopro_seg.engine.loops.ResumableIterBasedTrainLoop`, which does
      not load the trained batches again) and the rank's random states are put back just before
      the first resumed iteration, so nothing the resume itself consumed (weight init,
      data-loader start-up) leaks into training. Exact with and without
      ``randomness.diff_rank_seed``;
    - keeps validation from consuming the training run's random states (they are put back after
      each validation), so a run validated between a checkpoint and the next iteration continues
      as the resumed run does.

    Augmentation in the workers needs the
    :class:`~infopro_seg.datasets.samplers.ResumableInfiniteSampler`: it seeds every draw by
    ``(seed, position)``. With mmengine's stock checkpoint hook only rank 0's states are saved,
    and the other ranks resume with them (a warning says so); with another world size than the
    checkpoint's, the same.

    Enable with ``default_hooks = dict(exact_resume=dict(type='ExactResumeHook'))`` (or in
    ``custom_hooks``) and
    ``train_dataloader = dict(sampler=dict(type='ResumableInfiniteSampler', shuffle=True))``
    (both set in the InfoPro configs).
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self.samples = 0  # drawn by this rank so far
        self._loaded: Optional[dict] = None
        self._pending_states: Optional[dict] = None
        self._train_states: Optional[dict] = None
        self._gathered: Optional[tuple] = None  # (iteration, entries of all ranks)

    @staticmethod
    def _sampler(runner):
        loader = runner.train_loop.dataloader
        for sampler in (getattr(loader, 'sampler', None),
                        getattr(getattr(loader, 'batch_sampler', None), 'sampler', None)):
            if callable(getattr(sampler, 'set_start', None)):
                return sampler
        return getattr(loader, 'sampler', None)

    def _own_entry(self) -> dict:
        return dict(random_states=capture_random_states(), samples=self.samples)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep what the checkpoint says (used in :meth:`before_train` if this is a resume)."""
        self._loaded = checkpoint.get(CHECKPOINT_KEY)

    def before_train(self, runner) -> None:
        """On a resume: continue this rank's data stream and schedule its random states."""
        loaded, self._loaded = self._loaded, None
        loop = runner.train_loop
        if loop.iter == 0:  # a fresh run, or load_from (fine-tuning): nothing to continue
            return
        if loaded is None:
            print_log(f'ExactResumeHook: the checkpoint of iteration {loop.iter} has no random '
                      'states (written without this hook): the run continues from it, but not '
                      'as the interrupted run would have', logger='current', level=logging.WARNING)
            self.samples = loop.iter * (loop.dataloader.batch_size or 1)
            return
        entries, rank, world_size = rank_entries(loaded), get_rank(), get_world_size()
        if len(entries) != world_size:
            print_log(f'ExactResumeHook: the checkpoint holds the random states of '
                      f'{len(entries)} rank(s), this run has {world_size}: every rank resumes '
                      "with rank 0's (not as the interrupted run would have)",
                      logger='current', level=logging.WARNING)
        entry = entries[rank] if len(entries) == world_size else entries[0]
        self.samples = int(entry['samples'])
        self._pending_states = entry['random_states']
        sampler = self._sampler(runner)
        if not isinstance(loop, ResumableIterBasedTrainLoop) or \
                not callable(getattr(sampler, 'set_start', None)):
            print_log('ExactResumeHook: without ResumableIterBasedTrainLoop and '
                      'ResumableInfiniteSampler, mmengine replays (loads and augments) the '
                      'trained batches and worker augmentation is not restored',
                      logger='current', level=logging.WARNING)
            return
        if int(loaded['sampler_seed']) != sampler.seed:
            print_log(f'ExactResumeHook: the data stream continues with the checkpoint\'s seed '
                      f'{int(loaded["sampler_seed"])} (the config gives {sampler.seed})',
                      logger='current', level=logging.WARNING)
            sampler.seed = int(loaded['sampler_seed'])
        sampler.set_start(self.samples)
        print_log(f'ExactResumeHook: the data stream resumes at sample {self.samples} of '
                  f'rank {rank}', logger='current')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        """Put back the checkpoint's random states just before the first resumed iteration."""
        if self._pending_states is not None:
            restore_random_states(self._pending_states)
            self._pending_states = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Count the samples drawn (before the checkpoint hook saves)."""
        inputs = data_batch.get('inputs') if isinstance(data_batch, dict) else None
        self.samples += len(inputs) if inputs is not None else \
            (runner.train_loop.dataloader.batch_size or 1)

    def before_save_checkpoint_on_all_ranks(self, runner) -> None:
        """Gather every rank's random states and sample count for the checkpoint rank 0 writes.

        A hook point of :class:`~infopro_seg.engine.hooks.FaultTolerantCheckpointHook`, called on
        every rank just before a save (a collective: all ranks take part).
        """
        entries = all_gather_object(self._own_entry())
        self._gathered = (runner.iter, entries)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Add the ranks' random states and data positions to the checkpoint."""
        gathered, self._gathered = self._gathered, None
        if gathered is not None and gathered[0] == runner.iter:
            entries = gathered[1]
        else:  # a save not announced on all ranks: this rank's own entry only
            entries = [self._own_entry()]
        sampler = self._sampler(runner)
        checkpoint[CHECKPOINT_KEY] = dict(
            ranks=entries, sampler_seed=int(getattr(sampler, 'seed', 0) or 0))

    def before_val(self, runner) -> None:
        """Validation must not consume the training run's random states."""
        self._train_states = capture_random_states()

    def after_val(self, runner) -> None:
        if self._train_states is not None:
            restore_random_states(self._train_states)
            self._train_states = None
