"""What one local module costs, with or without checkpointing, from a profile's unit records.

A module's activation peak is the sum of what its parts keep for backward (its units, the input
it saves again after a cut, the output its heads save, the heads its loss trains) plus the
largest transient among them. Checkpointing changes what is kept and adds recomputations:

- a checkpointed unit keeps only its input; in its module's backward it re-saves its own
  activations while it is recomputed (its plain saves without its input, plus its transient);
- the heads keep what :func:`~infopro_seg.planning.profile.profile_model` measured for them in a
  checkpointed module (their inputs, their losses' saves);
- the module's peak is then the largest of its forward (everything kept) and every
  recomputation in backward order (:func:`_recompute_peak`).

This is the cost model only: the measurements are the profile's
(:class:`~infopro_seg.planning.profile.UnitCost`), the choice of cuts the solver's.
"""
from typing import List, Tuple

from .profile import Cost, MemoryProfile, UnitCost


def module_costs(profile: MemoryProfile, start: int, end: int, with_recon: bool,
                 with_classifier: bool, checkpointed: bool) -> dict:
    """The cost breakdown of the module made of units ``[start, end)``.

    Args:
        profile: The unit records.
        start: First unit.
        end: One past the last unit.
        with_recon: The module trains a w (every module but the last, with a w configured).
        with_classifier: The same for psi.
        checkpointed: The module recomputes what :attr:`MemoryProfile.checkpointing` names.

    Returns:
        dict: ``units=(first, last), units_bytes, input_bytes, output_bytes, recon_bytes,
        classifier_bytes, seg_head_bytes, seg_heads, param_bytes (units and decode/auxiliary
        heads), seg_head_param_bytes, recon_param_bytes, after_heads_bytes (saved once the
        heads' backward is done), classifier_param_bytes, transient_bytes, total_bytes, flops
        (forward, heads included), local_head_flops (w and psi), checkpointed``.
    """
    units = profile.units[start:end]
    last = units[-1]
    recompute_units = checkpointed and bool(profile.checkpointing.get('backbone'))
    unit_costs = [_unit_cost(unit, recompute_units) for unit in units]
    taps = [unit.tap for unit in units]  # stage outputs computed beside the units

    def head(cost) -> Cost:
        return cost.checkpointed if checkpointed else cost.plain

    reads_output = with_recon or with_classifier or bool(last.seg_heads)
    if recompute_units:
        output_bytes = last.output_bytes  # no unit of this module keeps it
    else:
        output_bytes = 0 if last.saves_output else last.output_bytes
    parts = dict(
        units=(start, end - 1),
        units_bytes=sum(cost.kept for cost in unit_costs),
        input_bytes=units[0].cut_input_bytes if start > 0 and not recompute_units else 0,
        output_bytes=output_bytes if reads_output else 0,
        recon_bytes=head(last.recon).kept if with_recon else 0,
        classifier_bytes=head(last.classifier).kept if with_classifier else 0,
        seg_head_bytes=sum(head(unit.seg).kept for unit in units),
        seg_heads=[name for unit in units for name in unit.seg_heads],
        param_bytes=sum(unit.param_bytes + unit.seg.param_bytes for unit in units),
        seg_head_param_bytes=sum(unit.seg.param_bytes for unit in units),
        recon_param_bytes=last.recon.param_bytes if with_recon else 0,
        classifier_param_bytes=last.classifier.param_bytes if with_classifier else 0,
        local_head_flops=((last.recon.flops if with_recon else 0)
                          + (last.classifier.flops if with_classifier else 0)),
        checkpointed=checkpointed)
    parts['flops'] = sum(unit.flops + unit.seg.flops for unit in units) + \
        parts['local_head_flops']
    kept = (parts['units_bytes'] + parts['input_bytes'] + parts['output_bytes']
            + parts['recon_bytes'] + parts['classifier_bytes'] + parts['seg_head_bytes']
            + sum(tap.kept for tap in taps))
    heads = _heads_in_creation_order(units, with_recon, with_classifier, head)
    # What stays saved once the heads' backward is done: the units' saves, or, recomputing,
    # the largest unit recomputation.
    parts['after_heads_bytes'] = kept - sum(kept_head for kept_head, _ in heads)
    if recompute_units:
        parts['after_heads_bytes'] = max(parts['after_heads_bytes'],
                                         _units_recompute_peak(unit_costs))
        parts['transient_bytes'] = _recompute_peak(unit_costs, heads, kept) - kept
    else:
        # Transient saves (freed inside a part) add on top of everything kept so far; taking
        # the largest over the module's parts is exact when it comes last (the heads' metric)
        # and an upper bound otherwise.
        parts['transient_bytes'] = max([cost.extra for cost in unit_costs + taps]
                                       + [head(unit.seg).extra for unit in units]
                                       + [extra for _, extra in heads])
    parts['total_bytes'] = kept + parts['transient_bytes']
    return parts


def _unit_cost(unit: UnitCost, recomputed: bool) -> Cost:
    """What a unit keeps, and its transient: in a checkpointed module it keeps only its input
    and re-saves its own activations (less its input) while recomputed in backward."""
    if not recomputed:
        return unit.forward
    own = unit.forward.kept - (unit.input_bytes if unit.saves_input else 0)
    return Cost(unit.input_bytes, own + unit.forward.extra)


def _heads_in_creation_order(units: List[UnitCost], with_recon: bool, with_classifier: bool,
                             head) -> List[Tuple[int, int]]:
    """``(kept, extra)`` of the module's heads as the segmentor creates them: w, psi, the
    decode head, then the auxiliary heads."""
    last = units[-1]
    heads = []
    if with_recon:
        heads.append((head(last.recon).kept, head(last.recon).extra))
    if with_classifier:
        heads.append((head(last.classifier).kept, head(last.classifier).extra))
    seg_units = sorted((unit for unit in units if unit.seg_heads),
                       key=lambda unit: 'decode' not in unit.seg_heads)
    heads += [(head(unit.seg).kept, head(unit.seg).extra) for unit in seg_units]
    return heads


def _recompute_peak(unit_costs: List[Cost], heads: List[Tuple[int, int]], kept: int) -> int:
    """A checkpointed module's peak: its forward (everything kept) or a recomputation.

    Backward runs the heads in the reverse of their creation order, each recomputed while the
    heads created before it still keep their saves; then the units, last first, each recomputed
    while only the inputs of the units up to it are kept.
    """
    peak, later = kept, 0
    for head_kept, head_extra in reversed(heads):
        peak = max(peak, kept - later + head_extra)
        later += head_kept
    return max(peak, _units_recompute_peak(unit_costs))


def _units_recompute_peak(unit_costs: List[Cost]) -> int:
    """The largest unit recomputation: the inputs kept up to a unit plus its re-saves."""
    peak = prefix = 0
    for cost in unit_costs:
        prefix += cost.kept
        peak = max(peak, prefix + cost.extra)
    return peak
