"""The memory and time benchmark: E2E, gradient checkpointing, AMP and InfoPro with K modules.

- :mod:`.methods`: method names and the model/optimizer configs each one trains with;
- :mod:`.measure`: one method at one crop: build, train, count memory, time and model state;
- :mod:`.runner`: every (crop, method) in a fresh process, outputs rewritten after each;
- :mod:`.results`: ratios to E2E, the table, CSV and JSON; :mod:`.plot`: memory against crop.
"""
from .measure import ESTIMATED, MEASURED, measure_method
from .methods import (DEFAULT_METHODS, method_model_cfg, method_name, method_optim_wrapper_cfg,
                      parse_method)
from .results import format_table
from .runner import run_benchmark

__all__ = [
    'ESTIMATED', 'MEASURED', 'measure_method', 'DEFAULT_METHODS',
    'method_model_cfg', 'method_name', 'method_optim_wrapper_cfg', 'parse_method', 'format_table',
    'run_benchmark'
]
