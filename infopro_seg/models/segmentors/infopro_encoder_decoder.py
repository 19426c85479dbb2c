"""The InfoPro segmentor: mmseg's EncoderDecoder trained module by module (the local step)."""
import logging
import warnings
from collections import OrderedDict
from contextlib import nullcontext
from functools import partial
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Union

import torch
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from torch import nn

from ...errors import ConfigError
from ..backbones.infopro_backbone import InfoProBackbone
from ..head_inputs import backbone_outputs_read
from ..splits import local_loss_weights as expand_loss_weights
from ..utils.checkpointing import guard_with_cp_blocks, parse_module_checkpointing
from .local_module import LocalModule


def build_local_head(kind: str, cfg: dict, backbone: InfoProBackbone, unit: int,
                     decode_head: nn.Module, module: int = 0, num_local: int = 1) -> nn.Module:
    """Build w (``kind='reconstruction'``) or psi (``'classifier'``) for a cut after ``unit``.

    Fills in what the cut and the decode head determine (input channels and stride, classes,
    ignored label, normalisation, interpolation); ``cfg`` may override any of it. A head class
    with ``takes_following_units = True`` (AugLocal's) also gets a copier of the backbone units
    after the cut and its position: local module ``module`` of ``num_local``.
    """
    filled = dict(in_channels=backbone.unit_out_channels(unit), norm_cfg=decode_head.norm_cfg,
                  align_corners=decode_head.align_corners)
    if kind == 'reconstruction':
        filled.update(in_stride=backbone.unit_out_stride(unit))
    else:
        filled.update(num_classes=decode_head.num_classes, ignore_index=decode_head.ignore_index)
    head_class = MODELS.get(cfg['type']) if isinstance(cfg.get('type'), str) else cfg.get('type')
    if getattr(head_class, 'takes_following_units', False):
        filled.update(following_units=partial(backbone.following_unit_copies, unit),
                      module_index=module, num_local_modules=num_local)
    return MODELS.build({**filled, **cfg})


class SummedLocalLossWarning(UserWarning):
    """InfoPro trained by back-propagating the sum of its local losses (no memory saved)."""


#: What :meth:`InfoProEncoderDecoder.loss` says when it looks like training.
SUMMED_LOSS_WARNING = (
    'InfoProEncoderDecoder.loss() was called for training (train mode, gradients on): whoever '
    'back-propagates the sum of its local losses gets InfoPro\'s gradients but keeps every local '
    "module's graph alive, so none of InfoPro's memory saving. mmengine's stock "
    'MMDistributedDataParallel trains this way. Fix: in a multi-GPU config keep '
    "model_wrapper_cfg = dict(type='InfoProDistributedDataParallel') (the InfoPro configs set "
    'it); in a custom loop call model.train_step(data, optim_wrapper) instead of loss() + '
    'backward().')


@MODELS.register_module()
class InfoProEncoderDecoder(EncoderDecoder):
    """DeepLab-style encoder-decoder trained with InfoPro local learning (Wang et al., ICLR 2021).

    The backbone (an :class:`~infopro_seg.models.backbones.InfoProBackbone`) is cut into K local
    modules. In :meth:`train_step` module k runs on the *detached* output of module k-1 and its
    local loss is back-propagated at once, so its graph is freed before module k+1 runs: only one
    module's activations are alive at a time. Local modules 1..K-1 are trained by
    ``lambda1 * L_recon + lambda2 * L_task`` (Eq. 5) through their own reconstruction decoder (w)
    and pixel classifier (psi); module K by the decode head's (and auxiliary head's) ordinary
    losses.

    Heads may read any backbone outputs (FCN, PSPNet, DeepLab-V3's ASPP, DeepLab-V3+'s ASPP and
    ``c1``, UPerNet's four levels, a head of your own): which ones is found when the model is built
    by running each head on the meta device. A head is trained by the module that produces the
    latest output it reads; outputs of earlier modules reach it detached, and each output is
    released as soon as its last reader has run. So an FCN auxiliary head on layer3 belongs to the
    module in which layer3 ends: the last module in the paper's R-101 cut (as in the reference),
    an earlier one when the cut falls after layer3, where it acts as one more local pixel
    classifier. The decode head must read an output of the last module. A head that cannot run on
    the backbone's outputs is refused when the model is built, with the outputs listed.

    Inference (``predict``, ``tools/test.py``) is mmseg's EncoderDecoder path: backbone and
    decode head only. The local heads are training-only (see ``tools/misc/publish_model.py``).

    Args:
        backbone: An InfoPro backbone config (:class:`InfoProResNet`, ``InfoProResNeXt``,
            ``InfoProResNeSt``, ``InfoProMobileNetV2``; its ``split_points`` set K).
        decode_head: As for EncoderDecoder.
        local_heads: ``dict(reconstruction=cfg or None, classifier=cfg or None)``; each is built
            once per local module with ``in_channels``, ``in_stride`` / ``num_classes``,
            ``norm_cfg`` and ``align_corners`` filled in from the backbone and decode head.
        local_loss_weights: ``(lambda1, lambda2)`` per local module, one pair for all, or
            ``dict(first=..., last=...)`` for a linear schedule. A weight of 0 drops that head
            (``lambda1=0`` is the greedy supervised baseline).
        split_planner: How ``backbone.split_points='auto'`` is planned. The plan is made
            before the model is built, by the config transform
            (:func:`infopro_seg.planning.resolve_config`), which replaces ``'auto'`` by the
            chosen points and drops this key; a model built with explicit points ignores it.
        checkpointing: Recompute instead of store, in every local module (any K, K=1
            included), or per module as a list of K settings (e.g. ``[None, True, True, None]``,
            as the memory fit chooses): ``None`` (default, off), ``True`` / ``'all'``, or a dict
            choosing parts,
            ``dict(backbone=True, decode_head=True, auxiliary_head=True, local_heads=True)``.
            ``backbone`` recomputes every backbone unit (stem pieces, blocks) in its module's
            backward; the heads (decode, auxiliary, w and psi) are recomputed up to their logits,
            whole (``'head'``) or layer by layer (``'layers'``; ``True`` picks per part, see
            :data:`~infopro_seg.models.utils.checkpointing.DEFAULT_GRANULARITY`).
            Gradients and running statistics are those of the run without it
            (:mod:`infopro_seg.models.utils.checkpointing`).
        **kwargs: Any other EncoderDecoder argument (auxiliary_head, train_cfg, test_cfg,
            data_preprocessor, pretrained, init_cfg).
    """

    def __init__(self,
                 backbone: dict,
                 decode_head: dict,
                 local_heads: Optional[dict] = None,
                 local_loss_weights: Union[Sequence, dict] = ((1.0, 1.0), ),
                 split_planner: Optional[dict] = None,
                 checkpointing: Union[None, bool, str, dict] = None,
                 **kwargs):
        if isinstance(backbone.get('split_points'), str) and backbone['split_points'] == 'auto':
            raise ConfigError(
                "backbone.split_points='auto' is planned before the model is built, by the "
                "InfoPro runner (runner_type='InfoProRunner', set by configs/_base_/"
                'infopro_runtime.py; used by tools/train.py and mmseg\'s own tools) or by '
                'infopro_seg.planning.resolve_config(cfg). Fix: build the config through one of '
                'them, or give explicit split points (tools/analysis_tools/plan_splits.py)')
        if split_planner is not None:
            print_log('model.split_planner is ignored: backbone.split_points is not \'auto\'',
                      logger='current', level=logging.WARNING)
        super().__init__(backbone=backbone, decode_head=decode_head, **kwargs)
        if not isinstance(self.backbone, InfoProBackbone):
            raise ConfigError('InfoProEncoderDecoder needs an InfoPro backbone (it knows the '
                              'split points: InfoProResNet, InfoProResNeXt, InfoProResNeSt, '
                              'InfoProMobileNetV2, InfoProMixVisionTransformer, '
                              'InfoProSwinTransformer, InfoProMSCAN, or an adapter of your own; '
                              'see infopro_seg/models/backbones/infopro_backbone.py), got '
                              f'{type(self.backbone).__name__}')
        num_modules = self.backbone.num_modules
        parse_module_checkpointing(checkpointing, num_modules)  # bad input fails early
        if self.with_neck and num_modules > 1:
            raise ConfigError('a neck reads several backbone stages at once; InfoPro with K > 1 '
                              'supports neck-free models (DeepLab, UPerNet, SegFormer, SegNeXt): '
                              'drop the neck or the split points')
        self.loss_weights = (expand_loss_weights(local_loss_weights, num_modules - 1)
                             if num_modules > 1 else [])
        self.local_heads = nn.ModuleList(
            self._build_local_heads(k, weights, local_heads or {})
            for k, weights in enumerate(self.loss_weights))
        self._check_head_placement()
        self.checkpointing = parse_module_checkpointing(checkpointing, num_modules)
        # Blocks a config set mmseg's with_cp on: running statistics updated once as well.
        self._block_guards = guard_with_cp_blocks(self.backbone)
        print_log(f'InfoPro: K={num_modules} local modules\n{self.backbone.describe_modules()}',
                  logger='current')

    def _build_local_heads(self, module: int, weights: Sequence[float],
                           cfgs: dict) -> nn.ModuleDict:
        """Build w and psi for local module ``module`` (a weight of 0 builds no head)."""
        unknown = set(cfgs) - {'reconstruction', 'classifier'}
        if unknown:
            raise ConfigError(f'local_heads takes reconstruction= and classifier=, got {unknown}')
        last_unit = self.backbone.module_ranges()[module][1] - 1
        heads = nn.ModuleDict()
        for (name, weight) in zip(('reconstruction', 'classifier'), weights):
            if weight == 0:
                continue
            if cfgs.get(name) is None:
                raise ConfigError(f'local module {module + 1} has a {name} loss weight of '
                                  f'{weight} but local_heads has no {name} head config')
            heads[name] = build_local_head(name, cfgs[name], self.backbone, last_unit,
                                           self.decode_head, module=module,
                                           num_local=self.backbone.num_modules - 1)
        if not heads:
            raise ConfigError(f'local module {module + 1} has no local loss (both loss weights '
                              'are 0): it would never be trained')
        return heads

    def _output_owner(self, head: nn.Module) -> int:
        """The local module whose loss trains ``head``: the one producing its latest input."""
        return max(self.backbone.module_of_output(i) for i in head.infopro_backbone_inputs)

    def _aux_heads(self) -> List[nn.Module]:
        if not self.with_auxiliary_head:
            return []
        if isinstance(self.auxiliary_head, nn.ModuleList):
            return list(self.auxiliary_head)
        return [self.auxiliary_head]

    def _named_seg_heads(self) -> List[tuple]:
        """``(config name, head)`` of the decode head and every auxiliary head."""
        aux = self._aux_heads()
        # mmseg sets ``auxiliary_head`` only when the config has one (SegFormer has none).
        if isinstance(getattr(self, 'auxiliary_head', None), nn.ModuleList):
            names = [f'auxiliary_head[{i}]' for i in range(len(aux))]
        else:
            names = ['auxiliary_head'] * len(aux)
        return [('decode_head', self.decode_head)] + list(zip(names, aux))

    def _check_head_placement(self) -> None:
        """Find the backbone outputs each head reads; place each head; refuse what cannot work.

        The outputs a head reads are found by running it on the meta device
        (:func:`~infopro_seg.models.head_inputs.backbone_outputs_read`), so multi-level heads
        (DeepLab-V3+'s ``c1``, UPerNet's four levels, a user's own head) need no special case.
        """
        backbone = self.backbone
        shapes = [(2, backbone.unit_out_channels(backbone.output_unit(p)),
                   *(max(1, 512 // backbone.unit_out_stride(backbone.output_unit(p))), ) * 2)
                  for p in range(backbone.num_outputs)]
        for name, head in self._named_seg_heads():
            # A plain attribute (no state-dict entry) that survives deepcopy and module swaps.
            head.infopro_backbone_inputs = backbone_outputs_read(
                head, shapes, backbone.describe_outputs(), name)
        last = backbone.num_modules - 1
        if self._output_owner(self.decode_head) != last:
            raise ConfigError(
                'the decode head must read an output of the last local module, else module '
                f'{last + 1} is never trained: {type(self.decode_head).__name__} reads backbone '
                f'outputs {self.decode_head.infopro_backbone_inputs} (in_index '
                f'{self.decode_head.in_index}, out_indices {backbone.out_indices}). Fix: let it '
                'read the last output (in_index -1) or move the last split point before the '
                'stage it reads')
        # Keep an earlier module's output alive (detached) only until its last reader has run.
        self._last_reader = {}
        for _, head in self._named_seg_heads():
            owner = self._output_owner(head)
            for position in head.infopro_backbone_inputs:
                self._last_reader[position] = max(owner, self._last_reader.get(position, -1))

    def local_modules(self) -> List[LocalModule]:
        """The K local modules, each with the heads its loss trains (built on demand, cheap)."""
        modules = []
        aux_heads = self._aux_heads()
        for k, part in enumerate(self.backbone.local_parts()):
            heads, checkpoint_heads = [], []
            checkpointing = self.module_checkpointing(k)
            if k < len(self.local_heads):
                for name, head in self.local_heads[k].items():
                    # Read at every forward: LocalLossWeightAnnealHook changes loss_weights.
                    weight = partial(self.local_loss_weight, k, name)
                    heads.append((f'm{k + 1}', head, weight))
                    checkpoint_heads.append(checkpointing['local_heads'])
            else:
                heads.append(('decode', self.decode_head, 1.0))
                checkpoint_heads.append(checkpointing['decode_head'])
            for idx, head in enumerate(aux_heads):
                if self._output_owner(head) == k:
                    prefix = f'aux_{idx}' if isinstance(self.auxiliary_head, nn.ModuleList) \
                        else 'aux'
                    heads.append((prefix, head, 1.0))
                    checkpoint_heads.append(checkpointing['auxiliary_head'])
            modules.append(LocalModule(part, heads, self.train_cfg, checkpoint_heads,
                                       checkpoint_units=checkpointing['backbone']))
        return modules

    def module_checkpointing(self, module: int) -> Dict[str, Union[bool, str]]:
        """What local module ``module`` recomputes (one entry per checkpointing part)."""
        if isinstance(self.checkpointing, list):
            return self.checkpointing[module]
        return self.checkpointing

    def local_loss_weight(self, module: int, kind: str) -> float:
        """The current loss weight of local module ``module``'s ``kind`` head (lambda1 for
        ``'reconstruction'``, lambda2 for ``'classifier'``)."""
        return self.loss_weights[module][0 if kind == 'reconstruction' else 1]

    def reconstruction_target(self, inputs: torch.Tensor) -> torch.Tensor:
        """The augmented crops before normalisation, in [0, 1] (the w target).

        The data preprocessor normalised them; undoing that is cheaper than keeping a second
        copy of the batch alive.
        """
        # mmseg's preprocessor registers mean and std only when it normalises.
        mean = getattr(self.data_preprocessor, 'mean', None)
        if mean is not None:
            inputs = inputs * self.data_preprocessor.std + mean
        return (inputs / 255).clamp_(0, 1)

    def _run_local_modules(self, inputs: torch.Tensor, data_samples: list,
                           modules: Sequence[nn.Module],
                           context: Callable[[nn.Module], object]
                           ) -> Iterator[Dict[str, torch.Tensor]]:
        """Run the modules in order, yielding each module's losses before the next one runs.

        Whoever consumes the generator may back-propagate a module's loss at its ``yield``: the
        next module only sees detached tensors (gradient isolation, Sec. 3.1).
        """
        readers = [k for k, heads in enumerate(self.local_heads) if 'reconstruction' in heads]
        images = self.reconstruction_target(inputs) if readers else None
        features = [None] * self.backbone.num_outputs
        x = inputs
        for k, module in enumerate(modules):
            with context(module):
                x, outputs, losses = module(x.detach(), features, data_samples, images)
            yield losses
            # Nothing stays alive that no later module reads: outputs of this module that a later
            # head reads are kept detached; every other feature (and the images once the last w
            # has run) is released before the next module runs.
            del losses
            features = [
                (outputs[position].detach() if position in outputs else features[position])
                if self._last_reader.get(position, -1) > k else None
                for position in range(len(features))]
            del outputs
            if readers and k >= readers[-1]:
                images = None

    def _warn_summed_losses(self) -> None:
        """Warn once per model, in the log and as a Python warning, that loss() trains badly."""
        if getattr(self, '_warned_summed_losses', False):
            return
        self._warned_summed_losses = True
        print_log(SUMMED_LOSS_WARNING, logger='current', level=logging.WARNING)
        warnings.warn(SUMMED_LOSS_WARNING, SummedLocalLossWarning, stacklevel=3)

    def train_step(self, data: Union[dict, tuple, list], optim_wrapper: OptimWrapper,
                   local_modules: Optional[Sequence[nn.Module]] = None
                   ) -> Dict[str, torch.Tensor]:
        """One InfoPro iteration: K local forward/backward passes, then the iteration's step.

        Each module runs inside ``optim_wrapper.optim_context`` (autocast; ``no_sync`` of its
        DDP while accumulating) and its loss goes to ``optim_wrapper.local_backward``, which
        frees the module's graph before the next module runs; ``finish_iteration`` then counts
        the iteration and steps when the wrapper says so. The wrapper is one of InfoPro's
        (:mod:`infopro_seg.engine.optim`), which own accumulation, loss scaling and the step.

        Args:
            data: A batch from the dataloader.
            optim_wrapper: The runner's optimizer wrapper (an InfoPro one).
            local_modules: The modules to run, e.g. each wrapped in DDP by
                :class:`InfoProDistributedDataParallel`; default :meth:`local_modules`.

        Returns:
            dict: Log variables: the total ``loss`` and every module's losses.

        Raises:
            ConfigError: ``optim_wrapper`` has no local-step protocol.
        """
        if not callable(getattr(optim_wrapper, 'local_backward', None)):
            raise ConfigError(
                f'{type(optim_wrapper).__name__} cannot drive InfoPro\'s local steps (it counts '
                'one backward per iteration). Fix: set optim_wrapper.constructor='
                "'InfoProOptimWrapperConstructor' (the InfoPro configs do), or optim_wrapper.type"
                "='InfoProOptimWrapper' / 'InfoProAmpOptimWrapper'")
        with optim_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
        modules = self.local_modules() if local_modules is None else local_modules
        log_vars = OrderedDict(loss=0.)
        for k, losses in enumerate(self._run_local_modules(
                data['inputs'], data['data_samples'], modules, optim_wrapper.optim_context)):
            loss, module_vars = self.parse_losses(losses)
            # Frees this module's graph (and, stepping each module, its gradients).
            optim_wrapper.local_backward(loss, module=f'module {k + 1}', log_vars=module_vars)
            log_vars['loss'] = log_vars['loss'] + module_vars.pop('loss').detach()
            log_vars.update((name, value.detach()) for name, value in module_vars.items())
        optim_wrapper.finish_iteration()
        return log_vars

    def loss(self, inputs: torch.Tensor, data_samples: list) -> dict:
        """All modules' losses from one forward pass (``mode='loss'``).

        Modules still see detached inputs, so back-propagating the sum gives InfoPro's gradients,
        but every module's graph stays alive until then: no memory is saved. Training uses
        :meth:`train_step`. Called in training mode with gradients enabled (mmengine's stock
        ``MMDistributedDataParallel``, a custom loop), it warns once
        (:data:`SUMMED_LOSS_WARNING`).
        """
        if self.training and torch.is_grad_enabled():
            self._warn_summed_losses()
        losses = {}
        for module_losses in self._run_local_modules(inputs, data_samples, self.local_modules(),
                                                     lambda module: nullcontext()):
            losses.update(module_losses)
        return losses
