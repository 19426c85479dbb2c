"""``split_points='auto'``: the registered split planner the segmentor builds, planning once.

A config asks for planned cuts with::

    model = dict(
        backbone=dict(split_points='auto'),
        split_planner=dict(num_modules=2, crop_size=(512, 1024), batch_size=2))

or ``split_planner=dict(budget_gb=8, ...)`` for the smallest K whose largest module plus the model
state fits. :class:`InfoProEncoderDecoder` builds the planner from ``model.split_planner``
through mmseg's ``TASK_UTILS`` registry (so models never import this package) and calls
:meth:`SplitPlanner.plan` once, before its backbone is built.

Planning builds the model a second time (on the meta device, as one module) to measure it. It is
done once per process and configuration (:meth:`SplitPlanner.plan` keeps the last few plans, so a
tool that builds the same model twice plans once), and once per job: when a process group
exists, rank 0 plans and broadcasts the plan (or its error) to the other ranks, which build no
second model. All ranks must therefore build the model together, as mmengine's Runner does.
"""
import copy
import pickle
from collections import OrderedDict
from typing import Optional, Sequence

from mmengine.dist import broadcast_object_list, get_rank, get_world_size
from mmengine.logging import print_log
from mmseg.registry import TASK_UTILS

from ..utils.memory import GiB
from .config import model_crop_size
from .profile import profile_model
from .report import budget_message
from .solver import SplitPlan, fit_budget, plan_splits

#: Plans already made in this process, by configuration (most recent last).
_PLANS: 'OrderedDict[str, SplitPlan]' = OrderedDict()
_MAX_PLANS = 8


def _canonical(value) -> str:
    """A text key for a config: dicts by sorted keys, lists and tuples alike."""
    if isinstance(value, dict):
        return '{' + ', '.join(f'{key!r}: {_canonical(value[key])}'
                               for key in sorted(value, key=str)) + '}'
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(_canonical(item) for item in value) + ']'
    return repr(value)


def _picklable(value) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


@TASK_UTILS.register_module()
class SplitPlanner:
    """Chooses the split points for ``split_points='auto'`` (InfoPro*: memory-balanced modules).

    Args:
        num_modules: K: plan the K-1 cuts that minimise the largest module. Give this or
            ``budget_gb``.
        budget_gb: Plan the smallest K whose largest module plus the model state fits this many
            GiB (``max_modules`` caps the search).
        crop_size: ``(H, W)`` of the training crops (default: the data preprocessor's ``size``).
        batch_size: Images per device (default 2, mmseg's images per GPU).
        device: Where to measure (default ``'meta'``: shapes only, no memory, seconds).
        max_modules: Largest K tried for ``budget_gb``.
        state_factor: Parameter-sized tensors per parameter in the model state (default 3: the
            parameter, its gradient and SGD momentum).
        amp: Plan for mixed precision (autocast emulated on the meta device; set it when the
            config trains with ``AmpOptimWrapper``). ``model.checkpointing`` needs no option:
            the model is measured as the config builds it.
    """

    def __init__(self,
                 num_modules: Optional[int] = None,
                 budget_gb: Optional[float] = None,
                 crop_size: Optional[Sequence[int]] = None,
                 batch_size: int = 2,
                 device: str = 'meta',
                 max_modules: int = 16,
                 state_factor: Optional[int] = None,
                 amp: bool = False,
                 **unknown):
        if unknown:
            raise ValueError(f'split_planner got unknown keys {sorted(unknown)}; it takes '
                             'num_modules or budget_gb, crop_size, batch_size, device, '
                             'max_modules, state_factor, amp')
        if (num_modules is None) == (budget_gb is None):
            raise ValueError("split_points='auto' needs model.split_planner with exactly one of "
                             'num_modules=K or budget_gb=X, e.g. split_planner=dict(num_modules=2, '
                             'crop_size=(512, 1024), batch_size=2)')
        self.num_modules = None if num_modules is None else int(num_modules)
        self.budget_gb = None if budget_gb is None else float(budget_gb)
        self.crop_size = crop_size
        self.batch_size = int(batch_size)
        self.device = device
        self.max_modules = int(max_modules)
        self.state_factor = state_factor
        self.amp = bool(amp)

    def plan(self, model_cfg: dict) -> SplitPlan:
        """The plan for a segmentor config, made once per process and configuration.

        Args:
            model_cfg: The segmentor's arguments (backbone, decode_head, auxiliary_head,
                local_heads, local_loss_weights, train_cfg, data_preprocessor); its split points
                are ignored.

        Returns:
            SplitPlan: The plan; its ``split_points`` go to the backbone.

        Raises:
            ValueError: No crop size is known, or no K fits ``budget_gb``.
        """
        if get_world_size() == 1:
            return self._plan_once(model_cfg)
        # Rank 0 plans; the others receive the plan, or the error to raise in turn.
        payload = [None]
        if get_rank() == 0:
            try:
                payload = [self._plan_once(model_cfg)]
            except Exception as error:
                payload = [error if _picklable(error) else RuntimeError(
                    f'{type(error).__name__}: {error}')]
        broadcast_object_list(payload, src=0)
        if isinstance(payload[0], Exception):
            raise payload[0]
        return payload[0]

    def _plan_once(self, model_cfg: dict) -> SplitPlan:
        key = _canonical((vars(self), model_cfg))
        if key not in _PLANS:
            _PLANS[key] = self._make_plan(model_cfg)
            while len(_PLANS) > _MAX_PLANS:
                _PLANS.popitem(last=False)
        _PLANS.move_to_end(key)
        return copy.deepcopy(_PLANS[key])

    def _make_plan(self, model_cfg: dict) -> SplitPlan:
        crop_size = self.crop_size or model_crop_size(model_cfg)
        if crop_size is None:
            raise ValueError('split_planner needs crop_size=(H, W) (the data preprocessor has no '
                             'size to take it from)')
        print_log(f'InfoPro split planner: measuring the model as one local module at crop '
                  f'{crop_size[0]}x{crop_size[1]}, batch {self.batch_size}, on {self.device}',
                  logger='current')
        profile = profile_model(model_cfg, crop_size, self.batch_size, self.device,
                                amp=self.amp)
        if self.state_factor is not None:
            profile.state_factor = int(self.state_factor)
        if self.num_modules is not None:
            return plan_splits(profile, self.num_modules)
        plan, best = fit_budget(profile, int(self.budget_gb * GiB), self.max_modules)
        if plan is None:
            raise ValueError(budget_message(best, self.budget_gb))
        return plan
