"""The accuracy study (issue 12): train several local-learning methods on the same data through
mmengine's Runner, evaluate them, and tabulate mIoU, per-module losses and peak memory.

``tools/analysis_tools/compare_methods.py`` is its command line. Submodules: :mod:`.methods`
(the method table: config overrides), :mod:`.metrics` (an IoU metric that logs per-class IoU),
:mod:`.runs` (data, one run per method and seed, reading its logs, memory), :mod:`.report`
(table, CSV, JSON, plot).
"""
from .methods import METHODS, Method, apply_method

__all__ = ['METHODS', 'Method', 'apply_method']
