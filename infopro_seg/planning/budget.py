"""The cheapest training configuration (K, which modules recompute, AMP) for a memory budget.

Every candidate is InfoPro with K local modules (K=1: E2E), with or without AMP; for each, the
solver (:func:`~infopro_seg.planning.solver.plan_within`) picks the cuts and checkpoints only the
modules that would not fit without it. Memory is the planner's (the largest module's activations
plus the model state, measured on the meta device, AMP with autocast emulated there).

'Cheapest' is the smallest *estimated time overhead* over E2E among the candidates that fit,
ties going to fp32, then to the smaller peak. The overhead model counts FLOPs measured on the meta
device (:func:`estimated_overhead`); it is an estimate, not a measurement:

- a training step costs about three forward passes (the backward about two);
- the local heads w and psi of every local module are extra work: their forward and backward,
  ``+h/F`` for head FLOPs ``h`` and E2E forward FLOPs ``F``;
- a checkpointed module runs its forward once more in backward: ``+c/(3F)`` for its forward
  FLOPs ``c`` (``+1/3`` with every module checkpointed);
- AMP: 0 (on a GPU with tensor cores mixed precision is usually faster, never slower by much; on
  the CPU bfloat16 autocast can be slower, which this model ignores);
- stepping each module right after its backward (``optim_wrapper.step_each_module``, one
  module's gradients alive at a time): 0 (the same optimizer work, split in K calls).

Ties go to fp32 and to one step per iteration: AMP changes the numerics, and stepping each module
clips gradients per module; both are chosen only where they are needed to fit.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence

from ..utils.memory import GiB
from .profile import profile_model
from .solver import SplitPlan, plan_splits, plan_within

#: The ``amp`` and ``checkpointing`` choices a fit takes.
CHOICES = ('allow', 'never', 'always')


def estimated_overhead(plan: SplitPlan) -> float:
    """Estimated extra time per step over E2E, as a fraction (see the module docstring)."""
    forward = plan.profile.forward_flops
    if not forward:
        return 0.0
    return (plan.local_head_flops + plan.recomputed_flops / 3) / forward


@dataclass
class BudgetCandidate:
    """One (K, AMP): its plan (the fitting one, else the smallest it reaches), whether it fits,
    its estimated overhead."""
    num_modules: int
    amp: bool
    plan: SplitPlan
    fits: bool

    @property
    def step_each_module(self) -> bool:
        return self.plan.step_each_module

    @property
    def overhead(self) -> float:
        return estimated_overhead(self.plan)

    @property
    def peak_bytes(self) -> int:
        """Largest module's activations + model state."""
        return self.plan.peak_with_state_bytes

    @property
    def checkpointed_modules(self) -> List[int]:
        """The 1-based modules that recompute."""
        return [k + 1 for k, flag in enumerate(self.plan.checkpointed) if flag]

    def checkpointing_text(self) -> str:
        """``'-'``, ``'all'`` or the recomputing modules, e.g. ``'2,3'``."""
        modules = self.checkpointed_modules
        if not modules:
            return '-'
        return 'all' if len(modules) == self.num_modules else ','.join(map(str, modules))

    def name(self) -> str:
        """``'K=4 + checkpointing (modules 2,3) + AMP'``."""
        text = self.checkpointing_text()
        cp = '' if text == '-' else (' + checkpointing' if text == 'all'
                                     else f' + checkpointing (modules {text})')
        return f'K={self.num_modules}{cp}' + (' + AMP' if self.amp else '') + (
            ' + step each module' if self.step_each_module else '')


def _choices(value: str, name: str) -> Sequence[bool]:
    if value not in CHOICES:
        raise ValueError(f'{name} must be one of {CHOICES}, got {value!r}')
    return dict(allow=(False, True), never=(False, ), always=(True, ))[value]


def budget_candidates(model_cfg: dict, crop_size: Sequence[int], batch_size: int,
                      budget_bytes: int, max_modules: int = 8,
                      optimizer_cfg: Optional[dict] = None,
                      state_factor: Optional[int] = None, amp: str = 'allow',
                      checkpointing: str = 'allow', step_each_module: str = 'never'
                      ) -> List[BudgetCandidate]:
    """Every (K, AMP, step each module) for K = 1..``max_modules``, planned for the budget and
    costed.

    Args:
        model_cfg: The segmentor config (its own ``checkpointing`` says what a checkpointed
            module recomputes; which modules do is the plan's choice).
        crop_size: ``(H, W)``.
        batch_size: Images per device.
        budget_bytes: Memory available for training.
        max_modules: Largest K (capped at the number of backbone units).
        optimizer_cfg: The config's optimizer (the model-state figure).
        state_factor: Overrides the parameter-sized tensors per parameter.
        amp: ``'allow'``, ``'never'`` or ``'always'``.
        checkpointing: ``'allow'`` (modules that need it), ``'never'`` or ``'always'``.
        step_each_module: ``'allow'``, ``'never'`` or ``'always'``.

    Returns:
        list[BudgetCandidate]: Ordered by AMP, step each module, then K.
    """
    base = model_cfg.to_dict() if hasattr(model_cfg, 'to_dict') else dict(model_cfg)
    _choices(checkpointing, 'checkpointing')
    profiles = []
    for with_amp in _choices(amp, 'amp'):
        profile = profile_model(base, crop_size, batch_size, 'meta', optimizer_cfg,
                                amp=with_amp)
        if state_factor is not None:
            profile.state_factor = int(state_factor)
        profiles.append(profile)
    return candidates_for(profiles, budget_bytes, max_modules, checkpointing, step_each_module)


def candidates_for(profiles: Sequence, budget_bytes: int, max_modules: int = 8,
                   checkpointing: str = 'allow', step_each_module: str = 'never'
                   ) -> List[BudgetCandidate]:
    """:func:`budget_candidates` from profiles already measured (one per AMP setting), e.g. to
    plan many budgets from one measurement."""
    candidates = []
    for profile in profiles:
        for stepping in _choices(step_each_module, 'step_each_module'):
            for k in range(1, min(max_modules, profile.num_units) + 1):
                plan = plan_within(profile, k, budget_bytes, checkpointing, stepping)
                fits = plan is not None
                if not fits:  # the smallest peak this K reaches, for the table
                    plan = plan_splits(profile, k, checkpointed=checkpointing != 'never')
                    plan.step_each_module = stepping
                candidates.append(BudgetCandidate(k, profile.amp, plan, fits))
    return candidates


def cheapest_fitting(candidates: Sequence[BudgetCandidate]) -> Optional[BudgetCandidate]:
    """The fitting candidate with the smallest estimated overhead (ties: fp32, then the smaller
    peak, then the smaller K); ``None`` when none fits."""
    fitting = [c for c in candidates if c.fits]
    if not fitting:
        return None
    return min(fitting, key=lambda c: (round(c.overhead, 6), c.amp, c.step_each_module,
                                       c.peak_bytes, c.num_modules))


def format_candidates(candidates: Sequence[BudgetCandidate],
                      chosen: Optional[BudgetCandidate] = None) -> str:
    """A table: K, AMP, checkpointed modules, peak (GiB, activations + state), fits, overhead,
    cuts."""
    stepping = any(c.step_each_module for c in candidates)
    lines = [f'{"K":>2}  {"amp":<3}  ' + ('step  ' if stepping else '')
             + f'{"recompute":<9}  {"peak GiB":>8}  {"fits":<4}  {"overhead":>8}  split points']
    for c in candidates:
        mark = '  <-' if c is chosen else ''
        step = (f'{"each" if c.step_each_module else "once":<4}  ' if stepping else '')
        lines.append(f'{c.num_modules:>2}  {"on" if c.amp else "off":<3}  {step}'
                     f'{c.checkpointing_text():<9}  {c.peak_bytes / GiB:>8.2f}  '
                     f'{"yes" if c.fits else "no":<4}  {c.overhead:>+7.0%}   '
                     f'{", ".join(c.plan.split_points) or "-"}{mark}')
    return '\n'.join(lines)


def no_fit_message(candidates: Sequence[BudgetCandidate], budget_gib: float) -> str:
    """Why nothing fits: the smallest peak any candidate reaches, and what to change."""
    best = min(candidates, key=lambda c: c.peak_bytes)
    profile = best.plan.profile
    return (f'no configuration (K, checkpointing, AMP) fits a budget of {budget_gib:g} GiB for '
            f'crop {profile.crop_size[0]}x{profile.crop_size[1]}, batch {profile.batch_size}: '
            f'the smallest achievable peak is {best.peak_bytes / GiB:.2f} GiB ({best.name()}, '
            f'split points {best.plan.split_points}: largest module '
            f'{best.plan.peak_bytes / GiB:.2f} GiB of activations + '
            f'{best.plan.state_bytes / GiB:.2f} GiB model state); use a smaller crop or batch, '
            'a larger max K, or more memory')


def overhead_model_text() -> str:
    """The overhead model in one line (for the tools' output and help)."""
    return ('estimated time overhead over E2E, from FLOPs measured on the meta device: w and '
            'psi (forward + backward) + 1/3 of every checkpointed module\'s forward share '
            '(recomputed once); AMP +0% (GPU)')
