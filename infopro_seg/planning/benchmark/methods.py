"""The benchmark's methods: names, and the model and optimizer configs each one trains with.

A method is ``e2e`` (K=1), ``with_cp`` (E2E with mmseg's ``backbone.with_cp``), ``amp`` (E2E
with mixed precision), ``infopro-kN`` (InfoPro with N local modules: the config's own split
points if it has N-1 of them, else the split planner's for the crop and batch), followed by
``+cp`` (``model.checkpointing=True``: every unit and head of every local module recomputed in
its backward; not with ``with_cp``) and/or ``+amp``, in that order: ``e2e+cp``,
``infopro-k4+cp+amp``, ``with_cp+amp``.
"""
import argparse
import copy
import re
from typing import List, NamedTuple, Optional, Sequence, Tuple

from ...errors import ConfigError
from ...models.splits import SPLIT_PRESETS
from ..profile import profile_model
from ..solver import plan_splits

DEFAULT_METHODS = ('e2e', 'with_cp', 'amp', 'infopro-k2', 'infopro-k3', 'infopro-k4')
_METHOD = re.compile(r'^(?P<base>e2e|with_cp|amp|infopro-k(?P<k>\d+))'
                     r'(?P<cp>\+cp(?P<cp_modules>\d+(?:,\d+)*)?)?(?P<amp>\+amp)?(?P<step>\+step)?$')

#: The optimizer wrapper of a config that names none (mmseg's SGD).
DEFAULT_OPTIM_WRAPPER = dict(type='OptimWrapper',
                             optimizer=dict(type='SGD', lr=0.01, momentum=0.9,
                                            weight_decay=0.0005))


class Method(NamedTuple):
    """A parsed method name (see :func:`parse_method`)."""
    base: str  #: ``'e2e'``, ``'with_cp'`` or ``'infopro'``
    k: int  #: the number of local modules (1 for E2E and with_cp)
    cp: bool  #: ``model.checkpointing`` on
    amp: bool  #: mixed precision
    cp_modules: Tuple[int, ...] = ()  #: the 1-based modules that recompute (empty: all)
    step: bool = False  #: ``optim_wrapper.step_each_module``


def parse_method(name: str) -> Method:
    """Split a method name into its base, K, checkpointing and AMP.

    ``'infopro-k3+cp+amp'`` -> ``Method('infopro', 3, True, True)``; ``'with_cp'`` ->
    ``Method('with_cp', 1, False, False)``; ``'amp'`` -> ``Method('e2e', 1, False, True)``.
    ``+cp2,3`` recomputes only modules 2 and 3 (``model.checkpointing`` per module);
    ``+step`` steps each module right after its backward (``optim_wrapper.step_each_module``),
    e.g. ``'infopro-k4+cp3,4+amp+step'``.

    Args:
        name: The method's name.

    Returns:
        Method: ``(base, k, cp, amp)`` with base ``'e2e'``, ``'with_cp'`` or ``'infopro'``.

    Raises:
        ValueError: An unknown method name, K < 1, or ``+cp`` on ``with_cp`` (two kinds of
            checkpointing of the same blocks).
    """
    match = _METHOD.match(name)
    if match is None:
        raise ConfigError(f'unknown method {name!r}: use e2e, with_cp, amp or infopro-k<N>, '
                          'optionally followed by +cp (or +cp<modules>, e.g. +cp2,3), +amp and '
                          '+step (in that order)')
    base, cp, amp = match.group('base'), bool(match.group('cp')), bool(match.group('amp'))
    if base == 'amp':
        if amp:
            raise ConfigError(f'{name}: amp already means E2E with AMP; write e2e+cp+amp')
        base, amp = 'e2e', True
    if base == 'with_cp' and cp:
        raise ConfigError(f"{name}: with_cp is mmseg's checkpointing of the backbone blocks and "
                          '+cp is model.checkpointing; use one of them (e2e+cp or with_cp)')
    k = int(match.group('k')) if match.group('k') else 1
    if k < 1:
        raise ConfigError(f'{name}: K must be at least 1')
    modules = tuple(int(m) for m in (match.group('cp_modules') or '').split(',') if m)
    if any(not 1 <= m <= k for m in modules):
        raise ConfigError(f'{name}: +cp names modules {list(modules)}, but there are {k}')
    return Method('infopro' if match.group('k') else base, k, cp, amp, modules,
                  bool(match.group('step')))


def method_name(name: str) -> str:
    """argparse ``type=`` for a method name: ``name`` if :func:`parse_method` takes it, else an
    argparse error carrying parse_method's message."""
    try:
        parse_method(name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return name


def drop_pretrained(cfg) -> None:
    """No downloads: ``pretrained=None`` and no ``'Pretrained'`` init_cfg anywhere (in place)."""
    if isinstance(cfg, dict):
        for key, value in list(cfg.items()):
            if key == 'pretrained':
                cfg[key] = None
            elif key == 'init_cfg' and isinstance(value, dict) and 'Pretrained' in str(
                    value.get('type', '')):
                cfg[key] = None
            else:
                drop_pretrained(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            drop_pretrained(value)


def _own_num_cuts(model_cfg: dict) -> Optional[int]:
    """How many cuts the config's own split points make (None: 'auto', or unknown)."""
    split_points = model_cfg['backbone'].get('split_points', ())
    if isinstance(split_points, str):
        return len(SPLIT_PRESETS.get(split_points, ())) if split_points in SPLIT_PRESETS else None
    return len(split_points)


def benchmark_model_cfg(cfg, crop: Sequence[int]) -> dict:
    """A plain-dict copy of the config's model as every benchmark builds it: no pretrained
    weights, and crops padded to nothing beyond ``crop``.

    mmseg's data preprocessor pads to its ``size`` or to a multiple of ``size_divisor`` (one or
    the other); a fixed ``size`` becomes the benchmark crop.
    """
    model = copy.deepcopy(cfg.model.to_dict())
    drop_pretrained(model)
    preprocessor = model.get('data_preprocessor')
    if preprocessor is not None and preprocessor.get('size_divisor') is None:
        preprocessor['size'] = tuple(crop)
    return model


def method_model_cfg(cfg, method: str, crop: Sequence[int], batch: int
                     ) -> Tuple[dict, List[str]]:
    """The model config a method trains, and notes about what was changed.

    Args:
        cfg: The loaded config.
        method: A method name (see :func:`parse_method`).
        crop: ``(H, W)``: the data preprocessor pads nothing beyond it.
        batch: Images per iteration (for the split planner).

    Returns:
        tuple: The model config (a plain dict, no pretrained weights) and the notes.

    Raises:
        ValueError: An InfoPro or ``+cp`` method on a config that is not an InfoPro model.
    """
    base, k, cp, amp, cp_modules, _ = parse_method(method)
    model = benchmark_model_cfg(cfg, crop)
    notes = []
    infopro = model.get('type') == 'InfoProEncoderDecoder'
    if cp and not infopro:
        raise ConfigError(f'{method}: +cp is model.checkpointing of an InfoPro model '
                          f"(model.type='InfoProEncoderDecoder'), this one is "
                          f"{model.get('type')!r}")
    if cp:
        model['checkpointing'] = (True if not cp_modules else
                                  [True if m + 1 in cp_modules else None for m in range(k)])
    if base == 'infopro':
        if not infopro:
            raise ConfigError(f'{method} needs an InfoPro config (model.type='
                              f"'InfoProEncoderDecoder'), this one is {model.get('type')!r}")
        if _own_num_cuts(model) == k - 1 and model['backbone'].get('split_points') != 'auto':
            notes.append("the config's split points")
        else:
            weights = model.get('local_loss_weights')
            if isinstance(weights, (list, tuple)) and len(weights) not in (1, k - 1):
                # Written for another K: go linearly from the first pair to the last.
                model['local_loss_weights'] = dict(first=weights[0], last=weights[-1])
                notes.append('loss weights first->last schedule')
            # Planned for the method as trained: checkpointed (model.checkpointing) and AMP.
            flags = ([m + 1 in cp_modules for m in range(k)] if cp_modules else None)
            model['backbone']['split_points'] = plan_splits(
                profile_model(model, crop, batch, 'meta', amp=amp), k, flags).split_points
        model.pop('split_planner', None)
    elif infopro:
        model['backbone']['split_points'] = []
        model.pop('split_planner', None)
    if base == 'with_cp':
        model['backbone']['with_cp'] = True
    return model, notes


def method_optim_wrapper_cfg(cfg, amp: bool, device: str, step: bool = False) -> dict:
    """The optimizer wrapper a method trains with: the config's, with mixed precision for AMP.

    AMP is mmengine's ``AmpOptimWrapper`` (float16 autocast and dynamic loss scaling) on CUDA,
    and its CPU counterpart :class:`~infopro_seg.engine.DeviceAmpOptimWrapper` (bfloat16
    autocast, ``torch.amp.GradScaler('cpu')``) elsewhere, since mmengine's wrapper refuses to be
    built without a GPU.

    Args:
        cfg: The loaded config.
        amp: Whether the method uses mixed precision.
        device: ``'cuda'``, ``'cpu'`` or ``'meta'``.
        step: Step each module right after its backward (``+step``).

    Returns:
        dict: The ``optim_wrapper`` config.
    """
    optim_cfg = copy.deepcopy(cfg.get('optim_wrapper') or DEFAULT_OPTIM_WRAPPER)
    # InfoPro's wrappers (mmengine's own for models trained end to end work alike).
    optim_cfg.setdefault('constructor', 'InfoProOptimWrapperConstructor')
    if step:
        optim_cfg['step_each_module'] = True
    if amp and device == 'cuda':
        optim_cfg.update(type='AmpOptimWrapper', dtype='float16')
        optim_cfg.setdefault('loss_scale', 'dynamic')
    elif amp:
        optim_cfg.update(type='DeviceAmpOptimWrapper', device='cpu', dtype='bfloat16')
        optim_cfg.setdefault('loss_scale', 'dynamic')
    return optim_cfg
