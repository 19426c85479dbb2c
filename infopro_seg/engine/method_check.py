"""Checks of the methods a benchmark or a study is asked to run, before any of them runs.

A method that cannot apply to the config (an InfoPro method on a plain mmseg model, more local
modules than the backbone has units) would otherwise fail in its own process after the others
had run, as a row marked failed.
"""
import warnings
from typing import List, Sequence, Tuple

import torch
from mmengine.config import Config, ConfigDict
from mmseg.registry import MODELS

from ..errors import ConfigError
from ..planning.benchmark.methods import drop_pretrained, method_model_cfg, parse_method


def backbone_unit_names(model_cfg: dict) -> List[str]:
    """The units of an InfoPro backbone config (built once on the meta device, no cuts).

    Args:
        model_cfg: The model config; its ``backbone`` must be an InfoPro backbone.

    Returns:
        list[str]: The unit names in forward order (K can be at most their number).
    """
    backbone = dict(model_cfg['backbone'], split_points=[])
    drop_pretrained(backbone)
    with torch.device('meta'):
        built = MODELS.build(ConfigDict(backbone))
    return list(built.unit_names)


def check_benchmark_methods(cfg: Config, methods: Sequence[str], crop: Tuple[int, int],
                            batch: int) -> None:
    """Refuse, before anything runs, a benchmark method that cannot apply to the config.

    Args:
        cfg: The loaded config (overrides merged), in its default scope.
        methods: Method names (``e2e``, ``with_cp``, ``amp``, ``infopro-kN`` with ``+cp`` /
            ``+amp``).
        crop: A crop the methods run at.
        batch: Images per iteration.

    Raises:
        ConfigError: The first method that cannot run on this config, with the reason and the
            valid choices.
    """
    ks = {method: parse_method(method).k for method in methods
          if parse_method(method).base == 'infopro'}
    if ks and max(ks.values()) > 1 and cfg.model.get('type') == 'InfoProEncoderDecoder':
        units = backbone_unit_names(cfg.model)
        for method, k in ks.items():
            if k > len(units):
                raise ConfigError(
                    f'--methods {method}: K={k} local modules, but '
                    f"{cfg.model.backbone.get('type')} has {len(units)} units to cut between; "
                    f'use infopro-k1 .. infopro-k{len(units)}')
    for method in methods:
        try:
            with warnings.catch_warnings():  # each method's own run shows them
                warnings.simplefilter('ignore')
                method_model_cfg(cfg, method, crop, batch)
        except ValueError as error:
            raise ConfigError(f'--methods {method}: {error}') from None


def check_study_config(cfg: Config) -> None:
    """Refuse a study config that is not an InfoPro model (every method overrides one).

    Raises:
        ConfigError: ``model.type`` is not ``InfoProEncoderDecoder``.
    """
    kind = cfg.model.get('type')
    if kind != 'InfoProEncoderDecoder':
        raise ConfigError(f"the study compares InfoPro methods and needs model.type="
                          f"'InfoProEncoderDecoder', this config has {kind!r}: start from an "
                          'InfoPro config, e.g. configs/study/deeplabv3_r18_k4_synthetic.py')
