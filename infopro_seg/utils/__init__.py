from .batch import random_seg_batch
from .memory import SavedTensorMeter

__all__ = ['random_seg_batch', 'SavedTensorMeter']
