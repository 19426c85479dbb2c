"""Data-parallel InfoPro training: one DistributedDataParallel sync unit per local module.

mmengine wraps a distributed model in one ``DistributedDataParallel`` (DDP). That does not fit
InfoPro: a training step runs K separate forward/backward passes, one per local module, while a
DDP expects each of its forwards to be followed by one backward that reaches all of its
parameters. mmengine's ``MMDistributedDataParallel.train_step`` would compute all losses in one
forward and back-propagate their sum (InfoPro's gradients, none of its memory saving; the
segmentor's ``loss()`` warns when it is used that way, naming this wrapper); one DDP
entered once per local module would need ``find_unused_parameters=True`` (a graph traversal
after every forward, as the reference code did) and would all-reduce every bucket K times per
iteration, K-1 of them for parameters that the module did not touch.

:class:`InfoProDistributedDataParallel` instead wraps each local module (a backbone part plus the
heads its loss trains, see :class:`~infopro_seg.models.segmentors.local_module.LocalModule`) in
its own DDP. Every parameter belongs to exactly one local module, so each gradient is all-reduced
exactly once per iteration, by its module's DDP, during that module's own backward (bucket by
bucket, overlapping with the rest of that backward, as DDP does for a whole model), and no
parameter is ever "unused" by the backward that its DDP waits for. DDP waits for a module's last
bucket when its backward ends, so module k's gradients are final before module k+1 runs.
"""
from typing import Any, Dict, List, Optional, Sequence, Set, Union

import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapper
from mmengine.registry import MODEL_WRAPPERS
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def _trainable(module: nn.Module) -> Dict[int, nn.Parameter]:
    """The parameters of ``module`` that receive gradients, by identity."""
    return {id(param): param for param in module.parameters() if param.requires_grad}


@MODEL_WRAPPERS.register_module()
class InfoProDistributedDataParallel(nn.Module):
    """Distributed data-parallel wrapper for InfoPro segmentors: one DDP per local module.

    Use it through the config: ``model_wrapper_cfg = dict(type='InfoProDistributedDataParallel')``
    (set in ``configs/_base_/infopro_runtime.py``, which every InfoPro config inherits).
    mmengine's Runner then builds it with ``module=model`` after moving the model to its device
    and converting BN to SyncBN (``sync_bn``); the local modules are built here, afterwards, so
    they see the converted layers.

    The segmentor stays ``self.module``: mmengine's hooks, optimizer constructor and checkpoints
    use ``model.module`` for any registered wrapper, so checkpoint keys are the segmentor's own.
    The per-module DDP objects are not registered as sub-modules (they only reference the
    segmentor's modules), so the wrapper's ``state_dict`` is the segmentor's under ``module.``.

    A model without ``local_modules()`` (a plain mmseg segmentor, e.g. an end-to-end baseline
    built from an InfoPro config) falls back to mmengine's :class:`MMDistributedDataParallel`
    over the whole model, so an inherited ``model_wrapper_cfg`` never blocks it.

    Args:
        module: The segmentor to train, already on its device.
        device_ids: The CUDA device of this process, as for DDP. Defaults to the device of the
            segmentor's parameters; ignored (``None``) for a CPU model, which DDP requires.
        broadcast_buffers: Broadcast rank 0's buffers (BN running statistics) at every forward.
            Off by default, as in mmengine: SyncBN keeps the statistics identical anyway.
        find_unused_parameters: Passed to each DDP. Keep it ``False`` (the default): every
            parameter of a local module receives a gradient from that module's loss. Set it only
            for a custom head with parameters that some iterations do not use.
        **ddp_kwargs: Any other ``DistributedDataParallel`` argument (e.g.
            ``gradient_as_bucket_view=True`` to save one copy of the gradients,
            ``bucket_cap_mb``), given to every per-module DDP.

    Raises:
        RuntimeError: If ``torch.distributed`` is not initialised.
        ValueError: If a trainable parameter belongs to no local module or to several (it would
            be synchronised never or twice, and the replicas would silently drift apart).
    """

    def __init__(self,
                 module: nn.Module,
                 device_ids: Optional[Sequence[int]] = None,
                 broadcast_buffers: bool = False,
                 find_unused_parameters: bool = False,
                 **ddp_kwargs):
        super().__init__()
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError('InfoProDistributedDataParallel needs an initialised '
                               'torch.distributed process group (launch with --launcher '
                               'pytorch or slurm); a single-process run needs no wrapper')
        self.module = module
        ddp_args = dict(device_ids=self._device_ids(module, device_ids),
                        broadcast_buffers=broadcast_buffers,
                        find_unused_parameters=find_unused_parameters, **ddp_kwargs)
        # Plain lists, not nn.ModuleList: registering the DDP objects would duplicate every
        # parameter under a second name in this wrapper's state_dict and parameters().
        self.ddp_modules: List[DistributedDataParallel] = []
        self._local_modules: Optional[List[nn.Module]] = None
        if not callable(getattr(module, 'local_modules', None)):
            self.ddp_modules.append(MMDistributedDataParallel(module=module, **ddp_args))
            return
        local_modules = module.local_modules()
        self._check_partition(module, local_modules)
        self._local_modules = []
        # Every rank builds the DDPs in the same order: each constructor runs collectives
        # (rank 0's parameters and buffers of that module are broadcast to all ranks).
        for local in local_modules:
            ddp = DistributedDataParallel(local, **ddp_args) if _trainable(local) else None
            if ddp is not None:
                self.ddp_modules.append(ddp)
            self._local_modules.append(local if ddp is None else ddp)

    @staticmethod
    def _device_ids(module: nn.Module,
                    device_ids: Optional[Sequence[int]]) -> Optional[List[int]]:
        """DDP's ``device_ids``: the model's CUDA device, ``None`` for CPU (and other) models."""
        param = next(module.parameters(), None)
        device = param.device if param is not None else torch.device('cpu')
        if device.type != 'cuda':
            # mmengine passes device_ids=[LOCAL_RANK] to DDP-like wrappers even for CPU runs;
            # DDP rejects device_ids for a CPU module.
            return None
        return list(device_ids) if device_ids is not None else [device.index]

    @staticmethod
    def _check_partition(module: nn.Module, local_modules: Sequence[nn.Module]) -> None:
        """Every trainable parameter must be in exactly one local module (synced exactly once)."""
        names = {id(param): name for name, param in module.named_parameters()}
        seen: Set[int] = set()
        shared = []
        for local in local_modules:
            params = _trainable(local)
            shared += [names.get(key, '?') for key in params.keys() & seen]
            seen |= params.keys()
        missing = [names[key] for key in _trainable(module).keys() - seen]
        if shared or missing:
            raise ValueError('every trainable parameter must belong to exactly one local module '
                             f'to be all-reduced once per iteration; in several: {shared[:5]}, '
                             f'in none: {missing[:5]}')

    @property
    def num_sync_units(self) -> int:
        """How many DDP instances synchronise gradients (K, less modules with nothing to train)."""
        return len(self.ddp_modules)

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapper) -> Dict[str, torch.Tensor]:
        """One training iteration with each local module's gradients all-reduced by its DDP.

        The segmentor enters ``optim_wrapper.optim_context`` of each module's DDP at the
        iteration's backward count, so with gradient accumulation every DDP stays in ``no_sync``
        on the iterations that do not update the parameters and all-reduces the accumulated
        gradient once on the iteration that does.

        Args:
            data: A batch from the dataloader.
            optim_wrapper: The runner's optimizer wrapper.

        Returns:
            dict: The segmentor's log variables.
        """
        if self._local_modules is None:
            return self.ddp_modules[0].train_step(data, optim_wrapper)
        return self.module.train_step(data, optim_wrapper, local_modules=self._local_modules)

    def val_step(self, data: Union[dict, tuple, list]) -> list:
        """Validation: the segmentor's own (backbone and decode head, no communication)."""
        return self.module.val_step(data)

    def test_step(self, data: Union[dict, tuple, list]) -> list:
        """Testing: the segmentor's own (backbone and decode head, no communication)."""
        return self.module.test_step(data)

    def forward(self, *args, **kwargs) -> Any:
        """Call the segmentor directly (no gradient synchronisation; training uses train_step)."""
        return self.module(*args, **kwargs)
