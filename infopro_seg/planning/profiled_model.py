"""The model a profile measures: the segmentor built from a config as one local module."""
import copy
from typing import Dict, Iterator, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..models.backbones.infopro_resnet import RESNET_VARIANTS
from ..models.segmentors.infopro_encoder_decoder import build_local_head
from ..models.utils.checkpointing import DEFAULT_GRANULARITY, parse_checkpointing
from .build import build_on_one_device, for_one_device


def param_bytes(module: nn.Module) -> int:
    """Bytes of a module's parameters."""
    return sum(p.numel() * p.element_size() for p in module.parameters())


def profiled_model_cfg(model_cfg: dict) -> dict:
    """The config :func:`profile_model` builds: the model as one local module (K=1).

    A copy of ``model_cfg`` with no split points (``'auto'`` included), no split planner and no
    checkpointing (the profile measures both ways), no pretrained weights (nothing is loaded or
    downloaded), and a plain mmseg ``EncoderDecoder`` on a ResNet turned into the InfoPro
    segmentor and backbone it would become. Everything else is kept as the config has it.
    """
    cfg = copy.deepcopy(model_cfg.to_dict() if hasattr(model_cfg, 'to_dict') else dict(model_cfg))
    if cfg.get('type') == 'EncoderDecoder':
        cfg['type'] = 'InfoProEncoderDecoder'
    backbone = dict(cfg['backbone'])
    if backbone.get('type') in RESNET_VARIANTS:
        backbone['variant'] = backbone.pop('type')
        backbone['type'] = 'InfoProResNet'
    backbone.update(split_points=[], init_cfg=None, pretrained=None)
    cfg.update(backbone=backbone, pretrained=None, init_cfg=None, checkpointing=None)
    cfg.pop('split_planner', None)
    return cfg


def checkpointing_spec(model_cfg: dict) -> Tuple[Dict[str, Union[bool, str]], bool]:
    """What a checkpointed module recomputes, and whether the config checkpoints every module.

    The config's ``model.checkpointing`` when it is one setting for every module; for a list of
    per-module settings, the first that is on; with none on, every part at its default
    granularity (what ``checkpointing=True`` means).
    """
    setting = model_cfg.get('checkpointing')
    settings = list(setting) if isinstance(setting, (list, tuple)) else [setting]
    parsed = [parse_checkpointing(s) for s in settings]
    on = [p for p in parsed if any(p.values())]
    uniform = not isinstance(setting, (list, tuple)) and bool(on)
    return (on[0] if on else dict(DEFAULT_GRANULARITY)), uniform


class ProfiledModel:
    """The segmentor built from a config as one module, and its heads, ready to be measured.

    Args:
        model_cfg: The segmentor config (see :func:`profiled_model_cfg`).
        device: Where to build and run it (``meta``: nothing is allocated).
    """

    def __init__(self, model_cfg: dict, device: torch.device):
        cfg = profiled_model_cfg(model_cfg)
        self.segmentor = build_on_one_device(cfg, device)
        self.segmentor.train()
        self.backbone = self.segmentor.backbone
        self.decode_head = self.segmentor.decode_head
        aux = getattr(self.segmentor, 'auxiliary_head', None)
        if isinstance(aux, nn.ModuleList):
            aux_heads = [(f'aux_{i}', head) for i, head in enumerate(aux)]
        else:
            aux_heads = [('aux', aux)] if aux is not None else []
        self.seg_heads = [('decode', self.decode_head)] + aux_heads
        self.train_cfg = self.segmentor.train_cfg or {}
        self.loss_weights = cfg.get('local_loss_weights', ((1.0, 1.0), ))
        self.local_head_cfgs = cfg.get('local_heads') or {}
        self.device = device
        self._local_heads: Dict[Tuple[str, int, int], nn.Module] = {}

    def head_input_unit(self, head: nn.Module) -> int:
        """The unit producing a segmentation head's latest input (its cost goes there)."""
        # The segmentor found which outputs the head reads (DeepLab-V3+'s c1 included).
        return max(self.backbone.output_unit(position)
                   for position in head.infopro_backbone_inputs)

    def local_head(self, role: str, unit: int) -> Optional[nn.Module]:
        """w (``role='reconstruction'``) or psi (``'classifier'``) for a cut after ``unit``,
        built as the segmentor builds it; ``None`` if the config has no such head."""
        cfg = self.local_head_cfgs.get(role)
        if cfg is None:
            return None
        key = (role, self.backbone.unit_out_channels(unit), self.backbone.unit_out_stride(unit))
        if key not in self._local_heads:
            with torch.device(self.device):
                head = build_local_head(role, cfg, self.backbone, unit, self.decode_head)
            head = for_one_device(head, self.device)  # its norm_cfg is the decode head's
            head.train()
            self._local_heads[key] = head
        return self._local_heads[key]

    def local_head_sites(self, outputs: Sequence[torch.Tensor]
                         ) -> Iterator[Tuple[int, str, nn.Module, tuple]]:
        """``(unit, role, head, shape key)`` for w and psi at every candidate cut.

        A cut after the last unit is not allowed; the key (role and feature shape) is what a
        head's cost depends on, so each is measured once.
        """
        for i in range(len(outputs) - 1):
            for role in ('reconstruction', 'classifier'):
                head = self.local_head(role, i)
                if head is not None:
                    yield i, role, head, (role, ) + tuple(outputs[i].shape[1:])
