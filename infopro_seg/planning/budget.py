"""The cheapest training configuration (K, checkpointing, AMP) that fits a memory budget.

Every candidate is InfoPro with K balanced local modules (K=1: E2E), with or without
``model.checkpointing=True`` and with or without AMP; its memory is the planner's (the largest
module's activations plus the model state, measured on the meta device, AMP with autocast
emulated there). 'Cheapest' is the smallest *estimated time overhead* over E2E among the
candidates that fit, ties going to the smaller peak. The overhead model (an estimate, not a
measurement):

- checkpointing recomputes the forward pass of every checkpointed part once in backward; the
  forward is about 1/3 of a step's FLOPs (backward about 2/3), so ``+1/3``
  (:data:`CHECKPOINT_OVERHEAD`);
- every local module after the first adds its local heads w and psi (forward and backward):
  ``+0.06`` per cut (:data:`LOCAL_MODULE_OVERHEAD`; docs/memory.md counts about 6% for R-101-D8's
  K=2 at 512x1024 and about 17% for K=4, from the heads' FLOPs);
- AMP: 0 (on a GPU with tensor cores mixed precision is usually faster, never slower by much; on
  the CPU bfloat16 autocast can be slower, which this model ignores).
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence

from ..utils.memory import GiB
from .profile import MemoryProfile, profile_model
from .solver import SplitPlan, plan_splits

#: Estimated time overhead of checkpointing every part: one more forward, ~1/3 of a step.
CHECKPOINT_OVERHEAD = 1 / 3
#: Estimated time overhead of each local module after the first (its w and psi).
LOCAL_MODULE_OVERHEAD = 0.06


def estimated_overhead(num_modules: int, checkpointing: bool, amp: bool) -> float:
    """Estimated extra time per step over E2E, as a fraction (see the module docstring).

    Args:
        num_modules: K.
        checkpointing: ``model.checkpointing=True``.
        amp: Mixed precision (estimated free).

    Returns:
        float: e.g. ``0.39`` for K=2 with checkpointing.
    """
    del amp  # estimated free on a GPU
    return (CHECKPOINT_OVERHEAD if checkpointing else 0.0) + LOCAL_MODULE_OVERHEAD * (
        num_modules - 1)


@dataclass
class BudgetCandidate:
    """One configuration: its balanced plan, whether it fits, its estimated overhead."""
    num_modules: int
    checkpointing: bool
    amp: bool
    plan: SplitPlan
    fits: bool
    overhead: float

    @property
    def peak_bytes(self) -> int:
        """Largest module's activations + model state."""
        return self.plan.peak_with_state_bytes

    def name(self) -> str:
        """``'K=4 + checkpointing + AMP'``."""
        return f'K={self.num_modules}' + (' + checkpointing' if self.checkpointing else '') + (
            ' + AMP' if self.amp else '')


def budget_candidates(model_cfg: dict, crop_size: Sequence[int], batch_size: int,
                      budget_bytes: int, max_modules: int = 8,
                      optimizer_cfg: Optional[dict] = None,
                      state_factor: Optional[int] = None) -> List[BudgetCandidate]:
    """Every (K, checkpointing, AMP) for K = 1..``max_modules``, planned and costed.

    Args:
        model_cfg: The segmentor config (its own ``checkpointing`` is replaced by each
            candidate's).
        crop_size: ``(H, W)``.
        batch_size: Images per device.
        budget_bytes: Memory available for training.
        max_modules: Largest K (capped at the number of backbone units).
        optimizer_cfg: The config's optimizer (the model-state figure).
        state_factor: Overrides the parameter-sized tensors per parameter.

    Returns:
        list[BudgetCandidate]: Ordered by checkpointing, AMP, then K.
    """
    base = model_cfg.to_dict() if hasattr(model_cfg, 'to_dict') else dict(model_cfg)
    candidates = []
    for checkpointing in (False, True):
        for amp in (False, True):
            profile: MemoryProfile = profile_model(
                dict(base, checkpointing=True if checkpointing else None), crop_size, batch_size,
                'meta', optimizer_cfg, amp=amp)
            if state_factor is not None:
                profile.state_factor = int(state_factor)
            for k in range(1, min(max_modules, profile.num_units) + 1):
                plan = plan_splits(profile, k)
                candidates.append(BudgetCandidate(
                    k, checkpointing, amp, plan, plan.peak_with_state_bytes <= budget_bytes,
                    estimated_overhead(k, checkpointing, amp)))
    return candidates


def cheapest_fitting(candidates: Sequence[BudgetCandidate]) -> Optional[BudgetCandidate]:
    """The fitting candidate with the smallest estimated overhead (ties: smaller peak, then
    smaller K); ``None`` when none fits."""
    fitting = [c for c in candidates if c.fits]
    if not fitting:
        return None
    return min(fitting, key=lambda c: (round(c.overhead, 9), c.peak_bytes, c.num_modules))


def format_candidates(candidates: Sequence[BudgetCandidate],
                      chosen: Optional[BudgetCandidate] = None) -> str:
    """A table: K, checkpointing, AMP, peak (GiB, activations + state), fits, overhead, cuts."""
    lines = [f'{"K":>2}  {"cp":<3}  {"amp":<3}  {"peak GiB":>8}  {"fits":<4}  {"overhead":>8}  '
             'split points']
    for c in candidates:
        mark = '  <-' if c is chosen else ''
        lines.append(f'{c.num_modules:>2}  {"on" if c.checkpointing else "off":<3}  '
                     f'{"on" if c.amp else "off":<3}  {c.peak_bytes / GiB:>8.2f}  '
                     f'{"yes" if c.fits else "no":<4}  {c.overhead:>+7.0%}   '
                     f'{", ".join(c.plan.split_points) or "-"}{mark}')
    return '\n'.join(lines)


def no_fit_message(candidates: Sequence[BudgetCandidate], budget_gb: float) -> str:
    """Why nothing fits: the smallest peak any candidate reaches, and what to change."""
    best = min(candidates, key=lambda c: c.peak_bytes)
    profile = best.plan.profile
    return (f'no configuration (K, checkpointing, AMP) fits a budget of {budget_gb:g} GiB for '
            f'crop {profile.crop_size[0]}x{profile.crop_size[1]}, batch {profile.batch_size}: '
            f'the smallest achievable peak is {best.peak_bytes / GiB:.2f} GiB ({best.name()}, '
            f'split points {best.plan.split_points}: largest module '
            f'{best.plan.peak_bytes / GiB:.2f} GiB of activations + '
            f'{best.plan.state_bytes / GiB:.2f} GiB model state); use a smaller crop or batch, '
            'a larger --max-k, or more memory')


def overhead_model_text() -> str:
    """The overhead model in one line (for the tool's output and help)."""
    return (f'estimated time overhead over E2E: checkpointing +{CHECKPOINT_OVERHEAD:.0%} (one '
            f'more forward, ~1/3 of a step), +{LOCAL_MODULE_OVERHEAD:.0%} per local module after '
            'the first (w and psi), AMP +0% (GPU)')

