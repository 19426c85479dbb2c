from .auglocal_head import AugLocalClassifierHead
from .local_classifier_head import LocalClassifierHead
from .local_head import (HeadBatch, ModuleOutputHeadMixin, SegHeadAdapter, as_local_head)
from .reconstruction_head import ReconstructionHead
from .supcon_head import SupConHead

__all__ = ['ReconstructionHead', 'LocalClassifierHead', 'SupConHead', 'AugLocalClassifierHead',
           'HeadBatch', 'ModuleOutputHeadMixin', 'SegHeadAdapter', 'as_local_head']
