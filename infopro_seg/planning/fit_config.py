"""A fit decision as a ready config: a small diff over the config it was planned for."""
import os.path as osp
from dataclasses import asdict
from typing import Optional

from ..errors import ConfigError
from ..fileio import atomic_write_bytes
from .fit import FitDecision


def fit_config_text(base_config: str, out_path: str, decision: FitDecision,
                    table: Optional[str] = None) -> str:
    """The text of a config that inherits ``base_config`` and sets what ``decision`` chose.

    Args:
        base_config: The config the decision was planned for.
        out_path: Where the config will be written (``_base_`` is relative to it).
        decision: The fit's decision.
        table: The candidates table, kept as a comment.

    Returns:
        str: The config's Python text (data only: literals, no code).
    """
    base = osp.relpath(osp.abspath(base_config), osp.dirname(osp.abspath(out_path)))
    cp = decision.checkpointing
    checkpointing = repr([True if flag else None for flag in cp]) if any(cp) else 'None'
    lines = [f'# {decision.describe()}',
             '# Written by tools/analysis_tools/plan_splits.py --write-config: the planned peak is',
             '# a meta-device estimate (largest module + model state); the headroom covers what',
             '# it leaves out (CUDA context and workspaces, allocator slack, validation).']
    if table:
        lines += ['#'] + [f'# {line}' for line in table.splitlines()]
    lines += [f'_base_ = {base!r}',
              '',
              'model = dict(',
              f'    backbone=dict(split_points={list(decision.split_points)!r}),',
              f'    checkpointing={checkpointing})']
    wrapper = ["constructor='InfoProOptimWrapperConstructor'"]
    if decision.amp:
        wrapper.append("type='AmpOptimWrapper', loss_scale='dynamic'")
    if decision.step_each_module:
        wrapper.append('step_each_module=True')
    lines += [f'optim_wrapper = dict({", ".join(wrapper)})',
              '# Planned already: the fit is not run again.',
              'infopro_fit = None',
              f'infopro_fit_decision = {asdict(decision)!r}', '']
    return '\n'.join(lines)


def write_fit_config(base_config: str, out_path: str, decision: FitDecision,
                     table: Optional[str] = None) -> None:
    """Write :func:`fit_config_text` to ``out_path`` atomically.

    Raises:
        ConfigError: ``out_path`` is the base config itself or not a ``.py`` file.
    """
    if not out_path.endswith('.py'):
        raise ConfigError(f'--write-config {out_path}: a config file ends in .py')
    if osp.abspath(out_path) == osp.abspath(base_config):
        raise ConfigError(f'--write-config {out_path} would overwrite the config it inherits: '
                          'give another path')
    atomic_write_bytes(fit_config_text(base_config, out_path, decision, table).encode(),
                       out_path)
