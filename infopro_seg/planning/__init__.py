"""Memory planning for InfoPro: measure a model, choose its cuts, fit a budget, benchmark.

- :mod:`.meter`: the saved-bytes meter (what a step keeps for backward, by owner);
- :mod:`.meta`: running training steps on the meta device;
- :mod:`.profile`: :func:`profile_model`, one cost record per backbone unit of a model config
  (the model it builds: :mod:`.profiled_model`);
- :mod:`.cost_model`: what a module costs from those records, with or without checkpointing;
- :mod:`.solver`: :func:`evaluate_cuts`, :func:`plan_splits` (InfoPro*), :func:`fit_budget`,
  :func:`plan_within` (cuts and the modules to recompute for a budget);
- :mod:`.budget`: the fastest (K, checkpointing, AMP) that fits a memory budget;
- :mod:`.fit`: the config transform that plans before the model is built
  (:func:`resolve_config`: ``infopro_fit``, ``--fit``, ``split_points='auto'``);
- :mod:`.report`: plans as text;
- :mod:`.build`: building a config on one device (SyncBN as BN);
- :mod:`.config`: what the tools read from a full config;
- :mod:`.benchmark`: the memory/time benchmark of E2E, checkpointing, AMP and InfoPro K=N.

Models never import this package.
"""
from .budget import (BudgetCandidate, budget_candidates, cheapest_fitting,
                     estimated_overhead, format_candidates, no_fit_message,
                     overhead_model_text)
from .config import (config_batch_size, config_crop_size, config_cuts, config_optimizer,
                     optimizer_state_factor)
from .fit import FitDecision, apply_fit, resolve_config, resolved_copy
from .meta import meta_masks_select_all
from .meter import SavedBytesMeter
from .profile import MemoryProfile, UnitCost, profile_model
from .report import budget_message, describe_plan, summarize_plan
from .solver import SplitPlan, evaluate_cuts, fit_budget, naive_cuts, plan_splits, plan_within

__all__ = [
    'BudgetCandidate', 'budget_candidates', 'cheapest_fitting', 'estimated_overhead',
    'format_candidates', 'no_fit_message', 'overhead_model_text',
    'config_batch_size', 'config_crop_size', 'config_cuts', 'config_optimizer',
    'FitDecision', 'apply_fit', 'resolve_config', 'resolved_copy',
    'meta_masks_select_all', 'SavedBytesMeter', 'MemoryProfile', 'UnitCost',
    'optimizer_state_factor', 'profile_model',
    'budget_message', 'describe_plan', 'summarize_plan', 'SplitPlan', 'evaluate_cuts',
    'fit_budget', 'naive_cuts', 'plan_splits', 'plan_within'
]
