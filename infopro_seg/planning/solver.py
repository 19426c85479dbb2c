"""The split solver: what given cuts cost, the balanced cuts for K modules, the K for a budget.

A local module's activation peak is the sum of what its parts keep for backward (its units, the
input it saves again after a cut, the heads its loss trains) plus the largest transient among
them (see :class:`~infopro_seg.planning.profile.MemoryProfile`). :func:`plan_splits` picks the
K-1 cuts that minimise the largest module (the paper's InfoPro*: dynamic programming over unit
boundaries; ties broken by the smallest total), :func:`fit_budget` the smallest K whose largest
module plus the model state fits a memory budget.
"""
import math
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

from ..models.splits import local_loss_weights as expand_loss_weights
from .profile import MemoryProfile
from .report import describe_plan


@dataclass
class SplitPlan:
    """Where to cut, and what every module then costs.

    Attributes:
        split_points: Unit names to cut after (``resolve_split_points`` accepts them).
        cuts: Their unit indices.
        modules: Per module: ``dict(units=(first, last), units_bytes, input_bytes, output_bytes,
            recon_bytes, classifier_bytes, seg_head_bytes, seg_heads, transient_bytes,
            total_bytes, recon_param_bytes, classifier_param_bytes)``.
        state_bytes: Parameters + gradients + optimizer state of the whole model with these local
            heads (constant over time, present in every module).
        profile: The measurements the plan was made from.
    """
    split_points: List[str]
    cuts: List[int]
    modules: List[dict]
    state_bytes: int
    profile: MemoryProfile = field(repr=False)

    @property
    def num_modules(self) -> int:
        """K."""
        return len(self.cuts) + 1

    @property
    def peak_bytes(self) -> int:
        """The largest module's activation bytes: the training peak of activations."""
        return max(module['total_bytes'] for module in self.modules)

    @property
    def peak_with_state_bytes(self) -> int:
        """Largest module plus the model state: what must fit in the device's memory."""
        return self.peak_bytes + self.state_bytes

    def describe(self) -> str:
        """A small table: one line per module, then the peak (for logs and the CLI)."""
        return describe_plan(self)


def _head_presence(profile: MemoryProfile, num_modules: int) -> List[Tuple[bool, bool]]:
    """Which of (w, psi) each local module builds: a loss weight of 0 builds no head."""
    try:
        weights = expand_loss_weights(profile.loss_weights, num_modules - 1)
    except ValueError:
        # The config's weights are for another K: assume both heads (the costlier case).
        weights = [(1.0, 1.0)] * (num_modules - 1)
    return [(w[0] != 0, w[1] != 0) for w in weights]


class _Costs:
    """Module costs from prefix sums over a profile."""

    def __init__(self, profile: MemoryProfile, num_modules: int):
        self.profile = profile
        self.presence = _head_presence(profile, num_modules)
        self.num_modules = num_modules
        self._units = [0]
        self._seg = [0]
        for unit, seg in zip(profile.unit_bytes, profile.seg_head_bytes):
            self._units.append(self._units[-1] + unit)
            self._seg.append(self._seg[-1] + seg)

    def breakdown(self, module: int, start: int, end: int) -> dict:
        """Costs of module ``module`` over units ``[start, end)``."""
        profile = self.profile
        last = module == self.num_modules - 1
        with_recon, with_classifier = (False, False) if last else self.presence[module]
        parts = dict(
            units=(start, end - 1),
            units_bytes=self._units[end] - self._units[start],
            input_bytes=profile.input_bytes[start] if start > 0 else 0,
            # The heads reading the module's output save it, if its last unit did not.
            output_bytes=(profile.output_bytes[end - 1] if with_recon or with_classifier
                          or profile.seg_head_names[end - 1] else 0),
            recon_bytes=profile.recon_bytes[end - 1] if with_recon else 0,
            classifier_bytes=profile.classifier_bytes[end - 1] if with_classifier else 0,
            seg_head_bytes=self._seg[end] - self._seg[start],
            seg_heads=[name for names in profile.seg_head_names[start:end] for name in names],
            recon_param_bytes=profile.recon_param_bytes[end - 1] if with_recon else 0,
            classifier_param_bytes=(profile.classifier_param_bytes[end - 1]
                                    if with_classifier else 0))
        # Transient saves (freed inside a part) add on top of everything kept so far; taking
        # the largest over the module's parts is exact when it comes last (the heads' metric)
        # and an upper bound otherwise.
        extras = profile.unit_extra[start:end] + profile.seg_head_extra[start:end]
        if with_recon:
            extras.append(profile.recon_extra[end - 1])
        if with_classifier:
            extras.append(profile.classifier_extra[end - 1])
        kept = (parts['units_bytes'] + parts['input_bytes'] + parts['output_bytes']
                + parts['recon_bytes'] + parts['classifier_bytes'] + parts['seg_head_bytes'])
        if profile.checkpointed_units:
            parts['transient_bytes'] = self._recompute_peak(start, end, with_recon,
                                                            with_classifier, kept) - kept
        else:
            parts['transient_bytes'] = max(extras)
        parts['total_bytes'] = kept + parts['transient_bytes']
        return parts

    def _recompute_peak(self, start: int, end: int, with_recon: bool, with_classifier: bool,
                        kept: int) -> int:
        """A checkpointed module's peak: its forward (everything kept) or a recomputation.

        Backward runs the heads in the reverse of their creation order (w, psi, the decode
        head, then auxiliary heads), each recomputed while the heads created before it still
        keep their saves; then the units, last first, each recomputed (``unit_extra``) while
        only the inputs of the units up to it are kept.
        """
        profile = self.profile
        heads = []  # (kept, extra) in creation order
        if with_recon:
            heads.append((profile.recon_bytes[end - 1], profile.recon_extra[end - 1]))
        if with_classifier:
            heads.append((profile.classifier_bytes[end - 1], profile.classifier_extra[end - 1]))
        seg_units = [u for u in range(start, end) if profile.seg_head_names[u]]
        seg_units.sort(key=lambda u: 'decode' not in profile.seg_head_names[u])
        heads += [(profile.seg_head_bytes[u], profile.seg_head_extra[u]) for u in seg_units]
        peak, later = kept, 0
        for head_kept, head_extra in reversed(heads):
            peak = max(peak, kept - later + head_extra)
            later += head_kept
        prefix = 0
        for i in range(start, end):
            prefix += profile.unit_bytes[i]
            peak = max(peak, prefix + profile.unit_extra[i])
        return peak

    def total(self, module: int, start: int, end: int) -> int:
        return self.breakdown(module, start, end)['total_bytes']


def evaluate_cuts(profile: MemoryProfile, cuts: Sequence[int]) -> SplitPlan:
    """What given cuts cost, module by module.

    Args:
        profile: From :func:`profile_model`.
        cuts: Unit indices to cut after, increasing, each below the last unit.

    Returns:
        SplitPlan: The plan for these cuts.
    """
    cuts = [int(c) for c in cuts]
    if any(b <= a for a, b in zip(cuts, cuts[1:])) or (cuts and not 0 <= cuts[0]) or (
            cuts and cuts[-1] >= profile.num_units - 1):
        raise ValueError(f'cuts must increase and lie in [0, {profile.num_units - 2}], got {cuts}')
    costs = _Costs(profile, len(cuts) + 1)
    bounds = [0] + [c + 1 for c in cuts] + [profile.num_units]
    modules = [costs.breakdown(k, s, e) for k, (s, e) in enumerate(zip(bounds[:-1], bounds[1:]))]
    local_params = sum(m['recon_param_bytes'] + m['classifier_param_bytes'] for m in modules)
    return SplitPlan(split_points=[profile.unit_names[c] for c in cuts], cuts=cuts,
                     modules=modules,
                     state_bytes=(profile.model_param_bytes + local_params) * profile.state_factor,
                     profile=profile)


def _best_cuts(costs: _Costs, n: int, num_modules: int,
               objective: Callable[[int, int], int], bound: Optional[int]) -> Optional[list]:
    """Dynamic programme over unit boundaries.

    ``objective`` combines a prefix's value with the next module's cost (``max`` for the
    min-max pass, ``+`` for the tie-break); modules dearer than ``bound`` are not allowed.
    Returns the cuts, or ``None`` when no split satisfies the bound.
    """
    inf = math.inf
    # best[k][e]: best value of modules 0..k covering units [0, e); parent[k][e]: start of k.
    best = [[inf] * (n + 1) for _ in range(num_modules)]
    parent = [[-1] * (n + 1) for _ in range(num_modules)]
    for k in range(num_modules):
        last = k == num_modules - 1
        # Module k needs at least one unit and must leave one per remaining module.
        ends = [n] if last else range(k + 1, n - (num_modules - 1 - k) + 1)
        for end in ends:
            starts = [0] if k == 0 else range(k, end)
            for start in starts:
                prefix = 0 if k == 0 else best[k - 1][start]
                if prefix == inf:
                    continue
                cost = costs.total(k, start, end)
                if bound is not None and cost > bound:
                    continue
                value = cost if k == 0 else objective(prefix, cost)
                if value < best[k][end]:
                    best[k][end], parent[k][end] = value, start
    if best[num_modules - 1][n] == inf:
        return None
    cuts, end = [], n
    for k in range(num_modules - 1, 0, -1):
        start = parent[k][end]
        cuts.append(start - 1)
        end = start
    return cuts[::-1]


def plan_splits(profile: MemoryProfile, num_modules: int) -> SplitPlan:
    """The K-1 cuts that minimise the largest module's activation memory (InfoPro*).

    Among the splits with the smallest largest module, the one with the smallest sum over
    modules is taken (fewer bytes spent on local heads).

    Args:
        profile: From :func:`profile_model`.
        num_modules: K (1 is end-to-end training).

    Returns:
        SplitPlan: The balanced plan.
    """
    n = profile.num_units
    if not 1 <= num_modules <= n:
        raise ValueError(f'K={num_modules} local modules: K must be between 1 and the number of '
                         f'backbone units ({n})')
    costs = _Costs(profile, num_modules)
    if num_modules == 1:
        return evaluate_cuts(profile, [])
    minmax = _best_cuts(costs, n, num_modules, max, None)
    smallest_peak = max(m['total_bytes'] for m in evaluate_cuts(profile, minmax).modules)
    cuts = _best_cuts(costs, n, num_modules, lambda a, b: a + b, smallest_peak) or minmax
    return evaluate_cuts(profile, cuts)


def naive_cuts(num_units: int, num_modules: int) -> List[int]:
    """Evenly spaced unit indices: the split one would make without measuring."""
    return [round(num_units * k / num_modules) - 1 for k in range(1, num_modules)]


def fit_budget(profile: MemoryProfile, budget_bytes: int,
               max_modules: int = 16) -> Tuple[Optional[SplitPlan], SplitPlan]:
    """The smallest K whose balanced plan (largest module + model state) fits a budget.

    Args:
        profile: From :func:`profile_model`.
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
