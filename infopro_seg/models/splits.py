"""Where a network is cut into local modules, and how the local losses are weighted.

A *split point* names the last unit of an earlier local module. Units are the pieces of a
backbone that a cut may fall between, as its adapter lists them (``infopro_seg.models.backbones``):
for a ResNet (also ResNeXt, ResNeSt) the stem (the deep stem of ResNetV1c/V1d has three
conv-norm-ReLU units; the max-pool belongs to the last of them) and every residual block; for
MobileNetV2 its first conv (``stem.0``) and every inverted-residual block of ``layer1`` ..
``layer7``. A split point is written as mmseg names the block, or as a ``(stage, block)`` pair with
the same numbers:

- ``'layer3.12'`` or ``(3, 12)``: cut after block 12 (0-based) of ``layer3``, i.e. after its first
  13 blocks. This is the paper's ResNet-101 K=2 cut (Sec. 4.3, Table 5).
- ``'stem'`` (the whole stem), ``'stem.0'`` / ``(0, 0)``: cut inside or after the stem.

Hierarchical transformers (MiT, Swin, MSCAN) name their units by module path, as their state
dict does: ``'layers.2.1.5'`` (MiT: block 5 of stage 2), ``'stages.2.blocks.5'`` (Swin),
``'block3.5'`` (MSCAN), and the patch embeddings ``'layers.1.0'``, ``'patch_embed'``,
``'patch_embed2'``. Any unit name is accepted as written; a name that is no unit is refused with
the valid names listed.

K split points give K + 1 local modules; no split point is ordinary end-to-end training.
"""
import re
from typing import List, Sequence, Tuple, Union

from ..errors import ConfigError

SplitPoint = Union[str, Tuple[int, int], List[int]]

#: Split points used in the paper, by name (usable as ``split_points='paper_r101_k2'``).
SPLIT_PRESETS = {
    # Module 1 = stem + layer1 + layer2 + the first 13 of layer3's 23 blocks.
    'paper_r101_k2': ['layer3.12'],
}

_NAME_PATTERN = re.compile(r'^(stem|layer(\d+))(?:\.(\d+))?$')


def split_point_to_unit_name(split_point: SplitPoint, num_stem_units: int) -> str:
    """Normalise one split point to the unit name it ends on.

    Args:
        split_point: ``'layer3.12'``, ``'stem'``, ``'stem.1'`` or a ``(stage, block)`` pair where
            stage 0 is the stem.
        num_stem_units: How many units the backbone's stem has (1, or 3 for a deep stem).

    Returns:
        str: The unit name, e.g. ``'layer3.12'`` or ``'stem.2'``.
    """
    if isinstance(split_point, (tuple, list)):
        if len(split_point) != 2 or not all(isinstance(v, int) for v in split_point):
            raise ConfigError(
                f'invalid split point {split_point!r}: a pair must be (stage, block) of two '
                "integers, e.g. (3, 12) for 'layer3.12'")
        stage, block = split_point
        return f'stem.{block}' if stage == 0 else f'layer{stage}.{block}'
    if not isinstance(split_point, str):
        raise ConfigError(f'invalid split point {split_point!r}: use a name such as '
                          "'layer3.12' or a (stage, block) pair")
    match = _NAME_PATTERN.match(split_point.strip())
    if match is None:
        raise ConfigError(f"invalid split point {split_point!r}: expected 'stem', 'stem.<i>' "
                          "or 'layer<stage>.<block>', e.g. 'layer3.12'")
    if match.group(1) == 'stem' and match.group(3) is None:
        return f'stem.{num_stem_units - 1}'
    if match.group(3) is None:
        raise ConfigError(f"invalid split point {split_point!r}: name the block after which "
                          f"to cut, e.g. '{split_point}.0'")
    return split_point.strip()


def resolve_split_points(split_points: Union[str, Sequence[SplitPoint]],
                         unit_names: Sequence[str]) -> List[int]:
    """Check split points against a backbone's units and return the index of each cut.

    Args:
        split_points: A preset name from :data:`SPLIT_PRESETS` or a list of split points.
        unit_names: The backbone's units in forward order (``'stem.0'``, ..., ``'layer4.2'``).

    Returns:
        list[int]: For each cut, the index in ``unit_names`` of the last unit before it,
        strictly increasing.

    Raises:
        ConfigError: A split point that names no unit, cuts after the last unit (which would leave
            an empty module), repeats, or is out of order; the message lists the valid names.
    """
    if isinstance(split_points, str):
        if split_points not in SPLIT_PRESETS:
            raise ConfigError(f'unknown split preset {split_points!r}; presets: '
                              f'{sorted(SPLIT_PRESETS)}, or give a list such as ["layer3.12"]')
        split_points = SPLIT_PRESETS[split_points]
    num_stem_units = sum(name.startswith('stem.') for name in unit_names)
    index_of = {name: i for i, name in enumerate(unit_names)}
    valid = _describe_units(unit_names)
    cuts = []
    for split_point in split_points:
        if isinstance(split_point, str) and split_point.strip() in index_of:
            name = split_point.strip()  # any unit name, e.g. a transformer's 'layers.2.1.5'
        elif isinstance(split_point, str) and not _NAME_PATTERN.match(split_point.strip()):
            raise ConfigError(f'invalid split point {split_point!r}: it names no unit of this '
                              f'backbone; valid split points: {valid}')
        else:
            name = split_point_to_unit_name(split_point, num_stem_units)
        if name not in index_of:
            raise ConfigError(f'split point {split_point!r} names no unit of this backbone; '
                              f'valid split points: {valid} (set model.backbone.split_points '
                              'to names from this list)')
        index = index_of[name]
        if index == len(unit_names) - 1:
            raise ConfigError(f'split point {split_point!r} is the last unit of the backbone, '
                              'which would leave the last module empty; valid split points: '
                              f'{valid}')
        if cuts and index <= cuts[-1]:
            raise ConfigError(f'split points must be distinct and in forward order, got '
                              f'{list(split_points)!r}')
        cuts.append(index)
    if len(cuts) >= len(unit_names):
        raise ConfigError(f'K={len(cuts) + 1} local modules is more than the backbone has units '
                          f'({len(unit_names)})')
    return cuts


def _describe_units(unit_names: Sequence[str]) -> str:
    """Summarise the valid split point names of a backbone, e.g. ``stem.0-2, layer1.0-2``."""
    groups = {}
    for name in unit_names[:-1]:
        prefix, _, index = name.rpartition('.')
        if prefix and index.isdigit():
            groups.setdefault(prefix, []).append(int(index))
        else:  # a name without a block number, e.g. Swin's 'patch_embed'
            groups[name] = []
    return ', '.join(prefix if not ids else f'{prefix}.{min(ids)}-{max(ids)}' if len(ids) > 1
                     else f'{prefix}.{ids[0]}' for prefix, ids in groups.items())


def local_loss_weights(weights: Union[Sequence[Sequence[float]], dict],
                       num_local_modules: int) -> List[Tuple[float, float]]:
    """Expand the InfoPro loss weights (lambda1 recon, lambda2 task) to every local module.

    Args:
        weights: Either one ``(lambda1, lambda2)`` pair per local module (all but the last
            module, which is trained by the ordinary decode-head loss), or
            ``dict(first=(l1, l2), last=(l1, l2))`` for a linear schedule from the first to the
            last local module, as the paper does for K > 2 (Appendix, e.g. (5, 0) -> (0.5, 1)).
        num_local_modules: K - 1.

    Returns:
        list[tuple[float, float]]: ``num_local_modules`` pairs.

    Raises:
        ConfigError: Weights that are not pairs of numbers, or one pair too many or too few.
    """
    if isinstance(weights, dict):
        unknown = set(weights) - {'first', 'last'}
        if unknown or 'first' not in weights:
            raise ConfigError("a loss-weight schedule is dict(first=(l1, l2), last=(l1, l2)); "
                              f'got keys {sorted(weights)}')
        first = tuple(float(v) for v in weights['first'])
        last = tuple(float(v) for v in weights.get('last', weights['first']))
        if num_local_modules == 1:
            return [first]
        steps = num_local_modules - 1
        return [tuple(f + (l - f) * i / steps for f, l in zip(first, last))
                for i in range(num_local_modules)]
    try:
        pairs = [tuple(float(v) for v in pair) for pair in weights]
    except (TypeError, ValueError):
        raise ConfigError(f'local_loss_weights takes (lambda1, lambda2) pairs of numbers, e.g. '
                          f'[(1.5, 1.0)], got {weights!r}') from None
    if any(len(pair) != 2 for pair in pairs):
        raise ConfigError(f'each local loss weight is a (lambda1, lambda2) pair, got {weights!r}')
    if len(pairs) == 1 and num_local_modules > 1:
        pairs = pairs * num_local_modules
    if len(pairs) != num_local_modules:
        raise ConfigError(
            f'local_loss_weights has {len(pairs)} (lambda1, lambda2) pairs but the split points '
            f'make {num_local_modules} local module(s) before the last one (K='
            f'{num_local_modules + 1}); give one pair per local module, a single pair for all, '
            'or dict(first=..., last=...)')
    return pairs
