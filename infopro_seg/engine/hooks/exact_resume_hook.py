"""Resume an interrupted training run exactly where it stopped: random states and data stream."""
import logging
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS

from ...datasets.samplers import ResumableInfiniteSampler
from ...utils.random_state import capture_random_states, restore_random_states

#: The checkpoint entry this hook writes (plain data: tensors, ints, floats, dicts).
CHECKPOINT_KEY = 'exact_resume'


class _FastForward:
    """The train loop's data iterator after a resume: the loop's first ``skip`` calls (mmengine
    "advances the dataloader" over the iterations already trained) return ``None`` at once,
    because the sampler already starts after them; later calls load batches."""

    def __init__(self, skip: int, batches):
        self.skip = skip
        self.batches = batches

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip > 0:
            self.skip -= 1
            return None
        return next(self.batches)


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Make ``--resume`` continue a run as if it had never been interrupted.

    A checkpoint holds the model, optimizer and schedulers; what else decides the next
    iterations is random: dropout (torch's RNG), augmentation (numpy's and python's, in the
    data-loader workers) and the order of the samples. This hook

    - stores, with every checkpoint, the random states of python, numpy, torch and CUDA and how
      many samples this rank has drawn (``checkpoint['exact_resume']``, plain tensors and ints:
      the file still loads weights-only);
    - on ``--resume``, starts the :class:`~infopro_seg.datasets.samplers.ResumableInfiniteSampler`
      at that sample and answers the train loop's skip of the iterations already trained without
      loading them (mmengine would otherwise load and augment every skipped batch), then puts the
      random states back just before the first resumed iteration, so nothing the resume itself
      consumed (weight init, data-loader start-up) leaks into training;
    - keeps validation from consuming the training run's random states (they are put back after
      each validation), so a run validated between a checkpoint and the next iteration continues
      as the resumed run does.

    Augmentation in the workers needs the sampler: it seeds every draw by ``(seed, position)``.
    With another sampler the hook still restores the process's random states and leaves
    mmengine's replay of the skipped batches alone. Only rank 0 writes checkpoints, so under
    ``randomness.diff_rank_seed=True`` the other ranks resume with rank 0's states.

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

    @staticmethod
    def _sampler(runner):
        loader = runner.train_loop.dataloader
        sampler = getattr(loader, 'sampler', None)
        batch_sampler = getattr(loader, 'batch_sampler', None)
        if not isinstance(sampler, ResumableInfiniteSampler) and batch_sampler is not None:
            sampler = getattr(batch_sampler, 'sampler', sampler)
        return sampler

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep what the checkpoint says (used in :meth:`before_train` if this is a resume)."""
        self._loaded = checkpoint.get(CHECKPOINT_KEY)

    def before_train(self, runner) -> None:
        """On a resume: continue the data stream and schedule the random states' restore."""
        loaded, self._loaded = self._loaded, None
        loop = runner.train_loop
        if loop.iter == 0:  # a fresh run, or load_from (fine-tuning): nothing to continue
            return
        if loaded is None:
            print_log(f'ExactResumeHook: the checkpoint of iteration {loop.iter} has no random '
                      'states (written without this hook): the run continues from it, but not '
                      'as the interrupted run would have', logger='current', level=logging.WARNING)
            self.samples = loop.iter * (loop.dataloader.batch_size or 1)
        else:
            self.samples = int(loaded['samples'])
            self._pending_states = loaded['random_states']
        sampler = self._sampler(runner)
        if not (isinstance(sampler, ResumableInfiniteSampler)
                and hasattr(loop, 'dataloader_iterator')):
            print_log('ExactResumeHook: the train loop is not iteration-based with a '
                      'ResumableInfiniteSampler, so mmengine replays (loads and augments) the '
                      'skipped batches and worker augmentation is not restored',
                      logger='current', level=logging.WARNING)
            return
        if loaded is not None and int(loaded['sampler_seed']) != sampler.seed:
            print_log(f'ExactResumeHook: the data stream continues with the checkpoint\'s seed '
                      f'{int(loaded["sampler_seed"])} (the config gives {sampler.seed})',
                      logger='current', level=logging.WARNING)
            sampler.seed = int(loaded['sampler_seed'])
        sampler.set_start(self.samples)
        loop.dataloader_iterator = _FastForward(loop.iter, iter(loop.dataloader))
        print_log(f'ExactResumeHook: the data stream resumes at sample {self.samples} of this '
                  f'rank; the {loop.iter} iterations already trained are skipped without loading',
                  logger='current')

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

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Add the random states and the data position to the checkpoint."""
        sampler = self._sampler(runner)
        checkpoint[CHECKPOINT_KEY] = dict(
            random_states=capture_random_states(), samples=self.samples,
            sampler_seed=int(getattr(sampler, 'seed', 0) or 0))

    def before_val(self, runner) -> None:
        """Validation must not consume the training run's random states."""
        self._train_states = capture_random_states()

    def after_val(self, runner) -> None:
        if self._train_states is not None:
            restore_random_states(self._train_states)
            self._train_states = None
