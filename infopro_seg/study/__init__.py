"""The accuracy study: train several local-learning methods on the same data through
mmengine's Runner, evaluate them, and tabulate mIoU, per-module losses and peak memory.

``tools/analysis_tools/compare_methods.py`` is its command line. Submodules: :mod:`.methods`
(the method table: config overrides), :mod:`.metrics` (an IoU metric that logs per-class IoU),
:mod:`.runs` (one run per method and seed: its config, its logs, memory), :mod:`.training`
(training a run in this process or a fresh one), :mod:`.study` (the loop over methods and
seeds), :mod:`.report` (table, CSV, JSON, plot).
"""
from .methods import METHODS, Method, apply_method

__all__ = ['METHODS', 'Method', 'apply_method']
