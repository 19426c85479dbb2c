"""The methods a study compares, each a set of config overrides over the study's config."""
from dataclasses import dataclass, field
from typing import Dict, Iterable, Tuple

from mmengine.config import Config


@dataclass(frozen=True)
class Method:
    """One training method: what it is and the config keys it overrides.

    Attributes:
        description: One line for the table's legend.
        overrides: ``{dotted key: value}`` as for ``--cfg-options`` (a dict value carrying
            ``_delete_=True`` replaces the config's value instead of merging into it).
        hooks: Hook configs appended to the config's ``custom_hooks``.
    """
    description: str
    overrides: Dict[str, object] = field(default_factory=dict)
    hooks: Tuple[dict, ...] = ()


#: AugLocal's psi as the study uses it: 3 copied units for local module 1 down to 1 for the last.
AUGLOCAL_PSI = dict(type='AugLocalClassifierHead', depth=(3, 1))

#: The methods known by name. Each applies to any InfoPro config; e2e and greedy are the issue's
#: baselines, the others the local objectives for K >= 3.
METHODS: Dict[str, Method] = {
    'e2e': Method('end-to-end back-propagation (K=1, same network)',
                  {'model.backbone.split_points': []}),
    'greedy': Method('greedy supervised local learning: psi only (lambda1=0, lambda2=1)',
                     {'model.local_loss_weights': [(0.0, 1.0)]}),
    'infopro': Method("InfoPro as the config has it (its w, psi and loss weights)"),
    'infopro-paper': Method(
        "InfoPro with the paper's K>2 schedule: (lambda1, lambda2) linear (5, 0) -> (0.5, 1)",
        {'model.local_loss_weights': dict(_delete_=True, first=(5.0, 0.0), last=(0.5, 1.0))}),
    'infopro-1.5': Method(
        "InfoPro with the K=2 configs' (lambda1, lambda2) = (1.5, 1) on every local module",
        {'model.local_loss_weights': [(1.5, 1.0)]}),
    'infopro-0.5': Method(
        'InfoPro with (lambda1, lambda2) = (0.5, 1) on every local module: a third of the '
        'reconstruction weight',
        {'model.local_loss_weights': [(0.5, 1.0)]}),
    'recon-light': Method(
        'InfoPro with a lighter reconstruction decoder w (widths 8, 4, 4)',
        {'model.local_heads.reconstruction.channels': (8, 4, 4)}),
    'supcon': Method(
        'InfoPro with a supervised-contrastive psi on class-balanced sampled pixels',
        {'model.local_heads.classifier': dict(_delete_=True, type='SupConHead', channels=128,
                                              proj_channels=64, temperature=0.1,
                                              max_pixels_per_class=64)}),
    'auglocal': Method(
        "InfoPro with AugLocal's psi: copies of 3 -> 1 following backbone units, then psi",
        {'model.local_heads.classifier': AUGLOCAL_PSI}),
    'infopro-anneal': Method(
        "InfoPro with its loss weights annealed linearly to greedy's (0, 1) over the run",
        hooks=(dict(type='LocalLossWeightAnnealHook', to=(0.0, 1.0)), )),
    'infopro-anneal-half': Method(
        "InfoPro annealed linearly to greedy's (0, 1) by half of the run, greedy after",
        hooks=(dict(type='LocalLossWeightAnnealHook', to=(0.0, 1.0), end=0.5), )),
    'greedy-auglocal': Method(
        "greedy (lambda1=0) with AugLocal's psi (AugLocal itself)",
        {'model.local_loss_weights': [(0.0, 1.0)],
         'model.local_heads.classifier': AUGLOCAL_PSI}),
}


def check_methods(names: Iterable[str]) -> None:
    """Raise a clear error for unknown method names."""
    unknown = [name for name in names if name not in METHODS]
    if unknown:
        raise ValueError(f'unknown method(s) {unknown}; known: {", ".join(METHODS)}')


def apply_method(cfg: Config, name: str) -> Config:
    """Apply method ``name``'s overrides to ``cfg`` in place and return it."""
    check_methods([name])
    if cfg.model.get('type') != 'InfoProEncoderDecoder':
        raise ValueError(f"the study needs an InfoProEncoderDecoder config, got model type "
                         f"{cfg.model.get('type')!r}")
    method = METHODS[name]
    if method.overrides:
        cfg.merge_from_dict(dict(method.overrides))
    if method.hooks:
        cfg.custom_hooks = list(cfg.get('custom_hooks', None) or []) + [dict(hook)
                                                                        for hook in method.hooks]
    return cfg


def num_modules(cfg: Config) -> object:
    """K of a config: ``len(split_points) + 1``, or ``'auto'`` when the planner chooses."""
    points = cfg.model.backbone.get('split_points', [])
    return 'auto' if isinstance(points, str) else len(points) + 1
