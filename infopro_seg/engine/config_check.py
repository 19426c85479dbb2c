"""Checks of a loaded config that run before the Runner, so a mistake is one line, not a trace
after the config dump.

- :func:`check_component_keys`: every key of a model component (segmentor, backbone, neck,
  decode and auxiliary heads, local heads), a dataset, a pipeline transform and the optimizer is
  an argument of its class, else the closest valid key is named ("did you mean local_loss_weights?"); an unknown
  ``type`` names the closest registered one.
- :func:`check_model_builds`: the model is built once on the meta device (no memory, no weights
  loaded), so a :class:`~infopro_seg.errors.ConfigError` of its build (split points, loss
  weights, checkpointing, local heads) stops the tool before the Runner prints the config.
- :func:`check_optim_wrapper_device`: mmengine's ``AmpOptimWrapper`` without a GPU.
"""
import difflib
import inspect
import logging
import warnings
from typing import Iterator, Optional, Set, Tuple

import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger, print_log
from mmengine.registry import OPTIMIZERS, Registry, init_default_scope
from mmseg.registry import DATASETS, MODELS, TRANSFORMS

from ..errors import ConfigError


def accepted_arguments(cls: type) -> Optional[Set[str]]:
    """The keyword arguments a class's constructor accepts, following ``**kwargs`` up the MRO.

    Args:
        cls: A registered class.

    Returns:
        set or None: The argument names, or ``None`` when a ``**kwargs`` reaches a constructor
        that cannot be read (any key may be valid: nothing can be checked).
    """
    names: Set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        if klass is object:
            return None
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):  # a constructor written in C
            return None
        names.update(p.name for p in parameters
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != 'self')
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names
    return None


def _closest(name: str, candidates) -> str:
    """``"; did you mean X?"`` for the most similar candidate, or an empty string."""
    match = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f'; did you mean {match[0]}?' if match else ''


def _registered_names(registry: Registry) -> Set[str]:
    """Every name a registry (and its parents) can build."""
    names: Set[str] = set()
    while registry is not None:
        names.update(registry.module_dict)
        registry = registry.parent
    return names


def check_component_keys(cfg: dict, registry: Registry, where: str,
                         filled: Tuple[str, ...] = ()) -> None:
    """Refuse a key that the component's class does not take, naming the closest valid key.

    Args:
        cfg: The component's config (with its ``type``).
        registry: The registry it is built from.
        where: Its place in the config, e.g. ``'model.backbone'``.
        filled: Arguments the caller fills in (never the user's mistake).

    Raises:
        ConfigError: An unknown ``type`` or an unknown key.
    """
    kind = cfg.get('type')
    if isinstance(kind, str):
        cls = registry.get(kind)
        if cls is None:
            raise ConfigError(f'{where}.type={kind!r} is not a registered {registry.name}'
                              f'{_closest(kind, _registered_names(registry))}')
    elif isinstance(kind, type):
        cls = kind
    else:
        return
    accepted = accepted_arguments(cls)
    if accepted is None:
        return
    for key in cfg:
        if key == 'type' or key.startswith('_') or key in accepted or key in filled:
            continue
        raise ConfigError(f'{where}.{key}: {cls.__name__} takes no argument {key!r}'
                          f'{_closest(key, accepted)} (valid: {", ".join(sorted(accepted))})')


def _model_components(model: dict) -> Iterator[Tuple[str, dict]]:
    """``(place, config)`` of the segmentor and the parts it builds from the config."""
    yield 'model', model
    for key in ('backbone', 'neck', 'decode_head', 'auxiliary_head'):
        part = model.get(key)
        parts = part if isinstance(part, (list, tuple)) else [part]
        for i, item in enumerate(parts):
            if isinstance(item, dict):
                yield (f'model.{key}[{i}]' if isinstance(part, (list, tuple))
                       else f'model.{key}'), item
    local_heads = model.get('local_heads')
    if isinstance(local_heads, dict):
        for name, head in local_heads.items():
            if isinstance(head, dict):
                yield f'model.local_heads.{name}', head


#: What the InfoPro segmentor fills in for a local head (from the cut and the decode head).
_LOCAL_HEAD_FILLED = ('in_channels', 'in_stride', 'num_classes', 'ignore_index', 'norm_cfg',
                      'align_corners', 'following_units', 'module_index', 'num_local_modules')


def _dataset_leaves(cfg: dict) -> Iterator[dict]:
    """Leaf dataset configs (through RepeatDataset / ConcatDataset)."""
    if isinstance(cfg, (list, tuple)):
        for item in cfg:
            yield from _dataset_leaves(item)
    elif isinstance(cfg, dict):
        inner = cfg.get('dataset', cfg.get('datasets'))
        if inner is not None:
            yield from _dataset_leaves(inner)
        else:
            yield cfg


def check_config_keys(cfg: Config, training: bool) -> None:
    """:func:`check_component_keys` for the model, the datasets and their pipelines, and
    (training) the optimizer.

    Raises:
        ConfigError: The first unknown type or key.
    """
    for where, component in _model_components(cfg.model):
        filled = _LOCAL_HEAD_FILLED if where.startswith('model.local_heads') else ()
        check_component_keys(component, MODELS, where, filled)
    loaders = ['train_dataloader', 'val_dataloader'] if training else ['test_dataloader']
    for loader in loaders:
        for dataset in _dataset_leaves((cfg.get(loader) or {}).get('dataset')):
            check_component_keys(dataset, DATASETS, f'{loader}.dataset')
            for i, transform in enumerate(dataset.get('pipeline') or []):
                if isinstance(transform, dict):
                    check_component_keys(transform, TRANSFORMS,
                                         f'{loader}.dataset.pipeline[{i}]')
    optimizer = (cfg.get('optim_wrapper') or {}).get('optimizer')
    if training and isinstance(optimizer, dict):
        check_component_keys(optimizer, OPTIMIZERS, 'optim_wrapper.optimizer', ('params', ))


def check_model_builds(model_cfg: dict) -> None:
    """Build the model once on the meta device and raise the ConfigError its build raises.

    Nothing is allocated and no weights are loaded (``init_weights`` is not called). A model
    whose split points are ``'auto'`` is skipped (its build plans the cuts). An error that is not
    a :class:`~infopro_seg.errors.ConfigError` is left to the real build: a constructor may do
    what the meta device cannot, and the Runner then reports it with its traceback.

    Raises:
        ConfigError: The model's build refused its config.
    """
    if (model_cfg.get('backbone') or {}).get('split_points') == 'auto':
        return
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        # the real build warns (deprecations) and logs what this one would
        with torch.device('meta'), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            MODELS.build(ConfigDict(model_cfg.to_dict() if hasattr(model_cfg, 'to_dict')
                                    else model_cfg))
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001  (the Runner's real build decides)
        print_log(f'config check: building the model on the meta device failed '
                  f'({type(error).__name__}: {error}); the real build will tell',
                  logger='current', level=logging.DEBUG)
    finally:
        logger.setLevel(level)


def check_optim_wrapper_device(cfg: Config) -> None:
    """Refuse mmengine's ``AmpOptimWrapper`` without a GPU (it asserts one when built).

    Raises:
        ConfigError: ``optim_wrapper.type='AmpOptimWrapper'`` and no CUDA device.
    """
    wrapper = cfg.get('optim_wrapper') or {}
    if wrapper.get('type') == 'AmpOptimWrapper' and not torch.cuda.is_available():
        raise ConfigError(
            "optim_wrapper.type='AmpOptimWrapper' needs a CUDA GPU and none is visible. Fix: "
            'train on a GPU, or for bfloat16 autocast on the CPU use --cfg-options '
            'optim_wrapper.type=DeviceAmpOptimWrapper')


def check_config(cfg: Config, training: bool = True) -> None:
    """Every check of this module, in the config's default scope, before the Runner is built.

    Args:
        cfg: The loaded config (command-line overrides merged).
        training: Check what training builds (optimizer, train and val data) rather than what
            testing builds (test data).

    Raises:
        ConfigError: The first mistake found.
    """
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    check_config_keys(cfg, training)
    if training:
        check_optim_wrapper_device(cfg)
    check_model_builds(cfg.model)
