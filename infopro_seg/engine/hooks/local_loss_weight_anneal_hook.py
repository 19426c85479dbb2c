"""Move InfoPro's loss weights over the training run: information first, the task at the end."""
import math
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

CURVES = ('linear', 'cosine')


@HOOKS.register_module()
class LocalLossWeightAnnealHook(Hook):
    """Anneal every local module's ``(lambda1, lambda2)`` from the config's to ``to``.

    At K >= 3 the reconstruction loss that keeps early modules from discarding information also
    competes with their task loss, and InfoPro underfits greedy local learning (docs/study.md). This
    hook keeps the config's weights while the features form and moves them, over a fraction of
    the run, to ``to`` (by default greedy local learning, ``(0, 1)``), so the end of the run fits
    the task. The weights are a function of the iteration alone: a resumed run gets the same
    weights as an uninterrupted one, and nothing is stored in checkpoints.

    The heads stay built and run while their weight is 0 (their gradient is then 0): memory is
    that of the config's InfoPro, and each per-module DDP still sees every parameter used.

    Enable with ``custom_hooks = [..., dict(type='LocalLossWeightAnnealHook')]``.

    Args:
        to: The ``(lambda1, lambda2)`` every local module reaches at ``end``. A weight can only
            rise from a non-zero start: a config weight of 0 builds no head for it.
        begin: Fraction of ``max_iters`` at which the weights start to move.
        end: Fraction of ``max_iters`` at which they reach ``to`` (and stay).
        curve: ``'linear'`` or ``'cosine'`` (slow at both ends).
    """

    priority = 'NORMAL'

    def __init__(self,
                 to: Sequence[float] = (0.0, 1.0),
                 begin: float = 0.0,
                 end: float = 1.0,
                 curve: str = 'linear') -> None:
        if len(to) != 2 or any(float(v) < 0 for v in to):
            raise ValueError('LocalLossWeightAnnealHook: to= is one non-negative (lambda1, '
                             f'lambda2) pair, got {to!r}')
        if not 0.0 <= begin < end <= 1.0:
            raise ValueError('LocalLossWeightAnnealHook: begin and end are fractions of the run '
                             f'with 0 <= begin < end <= 1, got begin={begin}, end={end}')
        if curve not in CURVES:
            raise ValueError(f'LocalLossWeightAnnealHook: curve is one of {CURVES}, got '
                             f'{curve!r}')
        self.to = (float(to[0]), float(to[1]))
        self.begin = begin
        self.end = end
        self.curve = curve
        self._start: Optional[list] = None

    @staticmethod
    def _segmentor(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'local_loss_weight') or not hasattr(model, 'loss_weights'):
            raise TypeError('LocalLossWeightAnnealHook needs an InfoProEncoderDecoder model, got '
                            f'{type(model).__name__}; remove the hook from custom_hooks')
        return model

    def before_train(self, runner) -> None:
        model = self._segmentor(runner)
        self._start = [tuple(pair) for pair in model.loss_weights]
        for k, pair in enumerate(self._start):
            for index, (kind, name) in enumerate((('reconstruction', 'lambda1'),
                                                  ('classifier', 'lambda2'))):
                if pair[index] == 0 and self.to[index] > 0:
                    raise ValueError(
                        f'LocalLossWeightAnnealHook cannot raise {name} of local module {k + 1} '
                        f'from 0 to {self.to[index]}: a weight of 0 in model.local_loss_weights '
                        f'builds no {kind} head. Fix: start it above 0 in the config, or give '
                        f'to= a {name} of 0')

    def progress(self, iteration: int, max_iters: int) -> float:
        """How far the weights have moved at ``iteration``: 0 (config) to 1 (``to``)."""
        begin, end = self.begin * max_iters, self.end * max_iters
        fraction = min(1.0, max(0.0, (iteration - begin) / max(end - begin, 1e-12)))
        if self.curve == 'cosine':
            return 0.5 * (1 - math.cos(math.pi * fraction))
        return fraction

    def weights_at(self, iteration: int, max_iters: int) -> list:
        """Every local module's ``(lambda1, lambda2)`` at ``iteration``."""
        t = self.progress(iteration, max_iters)
        return [tuple(s + (e - s) * t for s, e in zip(start, self.to)) for start in self._start]

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        model = self._segmentor(runner)
        weights: list = self.weights_at(runner.iter, runner.max_iters)
        model.loss_weights = weights
        for k, (lambda1, lambda2) in enumerate(weights):
            runner.message_hub.update_scalar(f'train/m{k + 1}.lambda1', lambda1)
            runner.message_hub.update_scalar(f'train/m{k + 1}.lambda2', lambda2)
