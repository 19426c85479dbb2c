"""The InfoPro runner: mmengine's Runner, with the config planned before anything is built."""
import copy

from mmengine.runner import Runner
from mmseg.registry import RUNNERS

from ..planning.fit import resolve_config


@RUNNERS.register_module()
class InfoProRunner(Runner):
    """mmengine's :class:`~mmengine.runner.Runner` that resolves the config first.

    :meth:`from_cfg` runs :func:`~infopro_seg.planning.fit.resolve_config` on a copy of the
    config before the Runner builds anything: ``infopro_fit`` (a memory budget) and
    ``split_points='auto'`` become explicit split points, per-module checkpointing and the
    optimizer wrapper, which the model, the optimizer and the work dir's dumped config then hold
    (so ``--resume``, ``tools/test.py`` and publishing use what was chosen). An InfoPro model's
    optimizer wrapper is built by InfoPro's constructor. InfoPro configs select it with
    ``runner_type = 'InfoProRunner'`` (configs/_base_/infopro_runtime.py), so mmseg's own
    ``tools/train.py`` plans them too.
    """

    @classmethod
    def from_cfg(cls, cfg) -> 'InfoProRunner':
        """Resolve a copy of ``cfg`` and build the runner from it."""
        cfg = copy.deepcopy(cfg)
        decision = resolve_config(cfg)
        runner = super().from_cfg(cfg)
        if decision is not None:
            runner.logger.info(decision.describe())
        return runner
