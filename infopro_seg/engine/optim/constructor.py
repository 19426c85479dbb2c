"""The optimizer-wrapper constructor of InfoPro configs: mmengine's, with InfoPro's wrappers."""
from typing import Optional

from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

from ...errors import ConfigError

#: mmengine's wrapper types and the InfoPro wrappers that replace them.
INFOPRO_WRAPPERS = {
    'OptimWrapper': 'InfoProOptimWrapper',
    'AmpOptimWrapper': 'InfoProAmpOptimWrapper',
}


def infopro_wrapper_type(wrapper_type: str) -> str:
    """The InfoPro wrapper that stands for ``wrapper_type`` (an InfoPro one stays as it is).

    Raises:
        ConfigError: A wrapper type that InfoPro's training step cannot drive.
    """
    if wrapper_type in INFOPRO_WRAPPERS:
        return INFOPRO_WRAPPERS[wrapper_type]
    if wrapper_type in set(INFOPRO_WRAPPERS.values()) | {'DeviceAmpOptimWrapper'}:
        return wrapper_type
    raise ConfigError(
        f'optim_wrapper.type={wrapper_type!r} cannot drive InfoPro\'s local steps; use one of '
        f'{sorted(INFOPRO_WRAPPERS)} (replaced by their InfoPro versions), '
        f'{sorted(INFOPRO_WRAPPERS.values())} or DeviceAmpOptimWrapper')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class InfoProOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Builds the optimizer as mmengine does (``paramwise_cfg`` included) and the InfoPro version
    of the configured wrapper: ``OptimWrapper`` -> :class:`InfoProOptimWrapper`,
    ``AmpOptimWrapper`` -> :class:`InfoProAmpOptimWrapper`.

    A config keeps mmseg's wrapper types, so ``--amp`` of mmseg's own ``tools/train.py`` (which
    switches ``OptimWrapper`` to ``AmpOptimWrapper``) still works. InfoPro configs set
    ``optim_wrapper = dict(constructor='InfoProOptimWrapperConstructor')``.

    Args:
        optim_wrapper_cfg: As for mmengine's constructor; its ``type`` is mapped.
        paramwise_cfg: As for mmengine's constructor.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        optim_wrapper_cfg = dict(optim_wrapper_cfg)
        optim_wrapper_cfg['type'] = infopro_wrapper_type(
            optim_wrapper_cfg.get('type', 'OptimWrapper'))
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
