"""The split solver: what given cuts cost, the balanced cuts for K modules, the fit to a budget.

A local module's activation peak is computed from the profile's unit records by
:mod:`~infopro_seg.planning.cost_model`. :func:`plan_splits` picks the K-1 cuts that minimise the
largest module (the paper's InfoPro*: dynamic programming over unit boundaries; ties broken by
the smallest total), :func:`fit_budget` the smallest K whose largest module plus the model state
fits a memory budget, and :func:`plan_within` the cuts *and* the modules to checkpoint that fit
a budget while recomputing as little as possible (only the modules that would not fit without).
"""
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from ..models.splits import local_loss_weights as expand_loss_weights
from .cost_model import module_costs
from .profile import MemoryProfile
from .report import describe_plan


@dataclass
class SplitPlan:
    """Where to cut, which modules recompute, and what every module then costs.

    Attributes:
        split_points: Unit names to cut after (``resolve_split_points`` accepts them).
        cuts: Their unit indices.
        modules: Per module: ``dict(units=(first, last), units_bytes, input_bytes, output_bytes,
            recon_bytes, classifier_bytes, seg_head_bytes, seg_heads, transient_bytes,
            total_bytes, recon_param_bytes, classifier_param_bytes, flops, checkpointed)``.
        state_bytes: Parameters + gradients + optimizer state of the whole model with these local
            heads (constant over time, present in every module).
        profile: The measurements the plan was made from.
        step_each_module: Each module steps right after its backward and frees its gradients
            (``optim_wrapper.step_each_module``): only one module's gradients exist at a time.
    """
    split_points: List[str]
    cuts: List[int]
    modules: List[dict]
    state_bytes: int
    profile: MemoryProfile = field(repr=False)
    step_each_module: bool = False

    @property
    def num_modules(self) -> int:
        """K."""
        return len(self.cuts) + 1

    @property
    def checkpointed(self) -> List[bool]:
        """Per module: whether it recomputes (``model.checkpointing``'s per-module list)."""
        return [module['checkpointed'] for module in self.modules]

    @property
    def peak_bytes(self) -> int:
        """The largest module's activation bytes: the training peak of activations."""
        return max(module['total_bytes'] for module in self.modules)

    @property
    def peak_with_state_bytes(self) -> int:
        """Largest module plus the model state: what must fit in the device's memory.

        Stepping each module, the gradients in the state are those of the module that runs.
        """
        if not self.step_each_module:
            return self.peak_bytes + self.state_bytes
        params = self.state_bytes // self.profile.state_factor
        return self.state_bytes - params + max(
            stepped_module_peak(module) for module in self.modules)

    @property
    def recomputed_flops(self) -> int:
        """Forward FLOPs run a second time in backward (the checkpointed modules')."""
        return sum(module['flops'] for module in self.modules if module['checkpointed'])

    @property
    def local_head_flops(self) -> int:
        """Forward FLOPs of every w and psi (training-only work E2E does not do)."""
        return sum(module['local_head_flops'] for module in self.modules)

    def describe(self) -> str:
        """A small table: one line per module, then the peak (for logs and the CLI)."""
        return describe_plan(self)


def module_grad_bytes(module: dict) -> int:
    """Gradient bytes of one module's parameters (its units and heads)."""
    return module['param_bytes'] + module['recon_param_bytes'] + module['classifier_param_bytes']


def stepped_module_peak(module: dict) -> int:
    """A module's activations and gradients at their highest, when the modules before it have
    stepped and freed theirs (``step_each_module``).

    Its gradients appear in its backward while its saved tensors are freed: while the heads run
    backward, at most everything is still saved and the heads' gradients exist; afterwards the
    heads' saves are gone (what stays, recomputations included, is ``after_heads_bytes``) and at
    most all of the module's gradients exist. The larger of the two bounds the peak.
    """
    head_grads = (module['seg_head_param_bytes'] + module['recon_param_bytes']
                  + module['classifier_param_bytes'])
    return max(module['total_bytes'] + head_grads,
               module['after_heads_bytes'] + module_grad_bytes(module))


def _head_presence(profile: MemoryProfile, num_modules: int) -> List[Tuple[bool, bool]]:
    """Which of (w, psi) each module builds: a loss weight of 0 builds no head; the last module
    builds none."""
    try:
        weights = expand_loss_weights(profile.loss_weights, num_modules - 1)
    except ValueError:
        # The config's weights are for another K: assume both heads (the costlier case).
        weights = [(1.0, 1.0)] * (num_modules - 1)
    return [(w[0] != 0, w[1] != 0) for w in weights] + [(False, False)]


class _Costs:
    """Module costs for one K, each (start, end, presence, checkpointed) computed once."""

    def __init__(self, profile: MemoryProfile, num_modules: int):
        self.profile = profile
        self.presence = _head_presence(profile, num_modules)
        self._cache: Dict[tuple, dict] = {}

    def breakdown(self, module: int, start: int, end: int, checkpointed: bool) -> dict:
        key = (start, end, self.presence[module], checkpointed)
        if key not in self._cache:
            self._cache[key] = module_costs(self.profile, start, end, *self.presence[module],
                                            checkpointed)
        return self._cache[key]


def _plan(profile: MemoryProfile, costs: _Costs, cuts: Sequence[int],
          checkpointed: Sequence[bool], step_each_module: bool = False) -> SplitPlan:
    bounds = [0] + [c + 1 for c in cuts] + [profile.num_units]
    modules = [dict(costs.breakdown(k, s, e, checkpointed[k]))
               for k, (s, e) in enumerate(zip(bounds[:-1], bounds[1:]))]
    local_params = sum(m['recon_param_bytes'] + m['classifier_param_bytes'] for m in modules)
    return SplitPlan(split_points=[profile.units[c].name for c in cuts], cuts=list(cuts),
                     modules=modules,
                     state_bytes=(profile.model_param_bytes + local_params) * profile.state_factor,
                     profile=profile, step_each_module=step_each_module)


def _checkpointed_list(profile: MemoryProfile, num_modules: int,
                       checkpointed: Union[None, bool, Sequence[bool]]) -> List[bool]:
    if checkpointed is None:
        checkpointed = profile.checkpointed
    if isinstance(checkpointed, bool):
        return [checkpointed] * num_modules
    if len(checkpointed) != num_modules:
        raise ValueError(f'{len(checkpointed)} checkpointing flags for {num_modules} modules')
    return [bool(flag) for flag in checkpointed]


def evaluate_cuts(profile: MemoryProfile, cuts: Sequence[int],
                  checkpointed: Union[None, bool, Sequence[bool]] = None,
                  step_each_module: bool = False) -> SplitPlan:
    """What given cuts cost, module by module.

    Args:
        profile: From :func:`~infopro_seg.planning.profile.profile_model`.
        cuts: Unit indices to cut after, increasing, each below the last unit.
        checkpointed: Which modules recompute: one flag for all, one per module, or ``None``
            for the profiled config's own setting.
        step_each_module: Each module steps right after its backward.

    Returns:
        SplitPlan: The plan for these cuts.
    """
    cuts = [int(c) for c in cuts]
    if any(b <= a for a, b in zip(cuts, cuts[1:])) or (cuts and not 0 <= cuts[0]) or (
            cuts and cuts[-1] >= profile.num_units - 1):
        raise ValueError(f'cuts must increase and lie in [0, {profile.num_units - 2}], got {cuts}')
    num_modules = len(cuts) + 1
    return _plan(profile, _Costs(profile, num_modules), cuts,
                 _checkpointed_list(profile, num_modules, checkpointed), step_each_module)


#: A module's choice in the dynamic programme: ``(value, checkpointed)`` or ``None`` (not
#: allowed).
Choice = Optional[Tuple[tuple, bool]]


def _best_cuts(n: int, num_modules: int, choose: Callable[[int, int, int], Choice],
               combine: Callable[[tuple, tuple], tuple]) -> Optional[Tuple[list, list]]:
    """Dynamic programme over unit boundaries.

    ``choose(k, start, end)`` values module k on units ``[start, end)`` (or refuses it);
    ``combine`` adds a module's value to a prefix's (``max`` for the min-max pass, ``+`` for
    sums). Returns the cuts and the per-module checkpointing flags, or ``None`` when no split
    is allowed.
    """
    inf = (math.inf, )
    # best[k][e]: best value of modules 0..k covering units [0, e); parent: (start, flag).
    best = [[inf] * (n + 1) for _ in range(num_modules)]
    parent: List[List[Optional[Tuple[int, bool]]]] = [
        [None] * (n + 1) for _ in range(num_modules)]
    for k in range(num_modules):
        # Module k needs at least one unit and must leave one per remaining module.
        ends = [n] if k == num_modules - 1 else range(k + 1, n - (num_modules - 1 - k) + 1)
        for end in ends:
            for start in ([0] if k == 0 else range(k, end)):
                prefix = () if k == 0 else best[k - 1][start]
                if prefix == inf:
                    continue
                choice = choose(k, start, end)
                if choice is None:
                    continue
                value = choice[0] if k == 0 else combine(prefix, choice[0])
                if value < best[k][end]:
                    best[k][end], parent[k][end] = value, (start, choice[1])
    if best[num_modules - 1][n] == inf:
        return None
    cuts, flags, end = [], [], n
    for k in range(num_modules - 1, -1, -1):
        start, flag = parent[k][end]
        flags.append(flag)
        if k > 0:
            cuts.append(start - 1)
        end = start
    return cuts[::-1], flags[::-1]


def plan_splits(profile: MemoryProfile, num_modules: int,
                checkpointed: Union[None, bool, Sequence[bool]] = None) -> SplitPlan:
    """The K-1 cuts that minimise the largest module's activation memory (InfoPro*).

    Among the splits with the smallest largest module, the one with the smallest sum over
    modules is taken (fewer bytes spent on local heads).

    Args:
        profile: From :func:`~infopro_seg.planning.profile.profile_model`.
        num_modules: K (1 is end-to-end training).
        checkpointed: Which modules recompute: one flag for all, one per module, or ``None``
            for the profiled config's own setting.

    Returns:
        SplitPlan: The balanced plan.
    """
    n = profile.num_units
    if not 1 <= num_modules <= n:
        raise ValueError(f'K={num_modules} local modules: K must be between 1 and the number of '
                         f'backbone units ({n})')
    costs = _Costs(profile, num_modules)
    flags = _checkpointed_list(profile, num_modules, checkpointed)

    def total(k: int, start: int, end: int) -> Choice:
        return (costs.breakdown(k, start, end, flags[k])['total_bytes'], ), flags[k]

    minmax, _ = _best_cuts(n, num_modules, total, max)
    smallest_peak = _plan(profile, costs, minmax, flags).peak_bytes

    def bounded(k: int, start: int, end: int) -> Choice:
        choice = total(k, start, end)
        return choice if choice[0][0] <= smallest_peak else None

    found = _best_cuts(n, num_modules, bounded, lambda a, b: (a[0] + b[0], ))
    return _plan(profile, costs, found[0] if found else minmax, flags)


def plan_within(profile: MemoryProfile, num_modules: int, budget_bytes: int,
                checkpointing: str = 'allow', step_each_module: bool = False
                ) -> Optional[SplitPlan]:
    """The K-1 cuts and the modules to checkpoint that fit a budget at the least recomputation.

    Every module must fit (its activations plus the model state at most ``budget_bytes``),
    plain or checkpointed; a module is checkpointed only where plain it would not fit. Among the
    splits that fit, the one with the least estimated extra work is taken (the FLOPs of w and
    psi, and a third of each checkpointed module's forward: see
    :mod:`~infopro_seg.planning.budget`), then the one with the smallest largest module, then
    the smallest sum of module peaks.

    Args:
        profile: From :func:`~infopro_seg.planning.profile.profile_model`.
        num_modules: K.
        budget_bytes: What the largest module plus the model state may take.
        checkpointing: ``'allow'`` (where needed), ``'never'`` or ``'always'`` (every module).
        step_each_module: Plan for ``optim_wrapper.step_each_module`` (one module's gradients
            at a time).

    Returns:
        SplitPlan or None: The plan, or ``None`` when nothing fits.
    """
    if checkpointing not in ('allow', 'never', 'always'):
        raise ValueError(f"checkpointing must be 'allow', 'never' or 'always', got "
                         f'{checkpointing!r}')
    n = profile.num_units
    if not 1 <= num_modules <= n:
        return None
    costs = _Costs(profile, num_modules)
    # The model state depends on the cuts through the local heads' parameters: bound it by the
    # largest w + psi of any cut, so whatever the DP picks fits.
    head_params = max(unit.recon.param_bytes + unit.classifier.param_bytes
                      for unit in profile.units[:-1]) if n > 1 else 0
    params = profile.model_param_bytes + head_params * (num_modules - 1)
    # Stepping each module, the state holds one module's gradients (added per module below).
    allowed = budget_bytes - params * (profile.state_factor - (1 if step_each_module else 0))
    flags = dict(allow=(False, True), never=(False, ), always=(True, ))[checkpointing]

    def choose(k: int, start: int, end: int) -> Choice:
        options = []
        for flag in flags:
            module = costs.breakdown(k, start, end, flag)
            total = (stepped_module_peak(module) if step_each_module
                     else module['total_bytes'])
            if total <= allowed:
                # The module's extra work over E2E (see planning.budget): its w and psi, and a
                # second forward where it recomputes.
                work = module['local_head_flops'] + (module['flops'] / 3 if flag else 0)
                options.append(((work, total, total), flag))
        return min(options) if options else None

    # The least extra work, then the smallest largest module (the most slack), then the
    # smallest sum.
    found = _best_cuts(n, num_modules, choose,
                       lambda a, b: (a[0] + b[0], max(a[1], b[1]), a[2] + b[2]))
    if found is None:
        return None
    plan = _plan(profile, costs, *found, step_each_module=step_each_module)
    return plan if plan.peak_with_state_bytes <= budget_bytes else None


def naive_cuts(num_units: int, num_modules: int) -> List[int]:
    """Evenly spaced unit indices: the split one would make without measuring."""
    return [round(num_units * k / num_modules) - 1 for k in range(1, num_modules)]


def fit_budget(profile: MemoryProfile, budget_bytes: int,
               max_modules: int = 16) -> Tuple[Optional[SplitPlan], SplitPlan]:
    """The smallest K whose balanced plan (largest module + model state) fits a budget.

    Args:
        profile: From :func:`~infopro_seg.planning.profile.profile_model`.
        budget_bytes: Memory available for training.
        max_modules: Largest K to try (capped at the number of units).

    Returns:
        tuple: The fitting plan (``None`` if no K up to ``max_modules`` fits) and the plan with
        the smallest peak among those tried (to name what is achievable).
    """
    best = None
    for k in range(1, min(max_modules, profile.num_units) + 1):
        plan = plan_splits(profile, k)
        if best is None or plan.peak_with_state_bytes < best.peak_with_state_bytes:
            best = plan
        if plan.peak_with_state_bytes <= budget_bytes:
            return plan, best
    return None, best
