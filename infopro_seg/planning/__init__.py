"""Memory planning for InfoPro: measure a model, choose its cuts, benchmark training methods.

- :mod:`.meter`: the saved-bytes meter (what a step keeps for backward, by owner);
- :mod:`.meta`: running training steps on the meta device;
- :mod:`.profile`: :func:`profile_model`, the per-unit and per-head costs of a model config;
- :mod:`.solver`: :func:`evaluate_cuts`, :func:`plan_splits` (InfoPro*), :func:`fit_budget`;
- :mod:`.budget`: the cheapest (K, checkpointing, AMP) that fits a memory budget;
- :mod:`.report`: plans as text;
- :mod:`.split_planner`: :class:`SplitPlanner`, registered in mmseg's ``TASK_UTILS``, which the
  segmentor builds to resolve ``split_points='auto'``;
- :mod:`.build`: building a config on one device (SyncBN as BN);
- :mod:`.config`: what the tools read from a full config;
- :mod:`.benchmark`: the memory/time benchmark of E2E, checkpointing, AMP and InfoPro K=N.

Models never import this package; importing ``infopro_seg`` registers the planner.
"""
from .budget import (BudgetCandidate, budget_candidates, cheapest_fitting,
                     estimated_overhead, format_candidates, no_fit_message,
                     overhead_model_text)
from .config import config_batch_size, config_crop_size, config_cuts, config_optimizer
from .meta import meta_masks_select_all
from .meter import SavedBytesMeter
from .profile import MemoryProfile, optimizer_state_factor, profile_model
from .report import budget_message, describe_plan, summarize_plan
from .solver import SplitPlan, evaluate_cuts, fit_budget, naive_cuts, plan_splits
from .split_planner import SplitPlanner

__all__ = [
    'BudgetCandidate', 'budget_candidates', 'cheapest_fitting', 'estimated_overhead',
    'format_candidates', 'no_fit_message', 'overhead_model_text',
    'config_batch_size', 'config_crop_size', 'config_cuts', 'config_optimizer',
    'meta_masks_select_all', 'SavedBytesMeter', 'MemoryProfile', 'optimizer_state_factor',
    'profile_model',
    'budget_message', 'describe_plan', 'summarize_plan', 'SplitPlan', 'evaluate_cuts',
    'fit_budget', 'naive_cuts', 'plan_splits', 'SplitPlanner'
]
