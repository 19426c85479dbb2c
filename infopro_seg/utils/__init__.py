from .atomic import atomic_path, atomic_write_bytes, remove_temp_files
from .batch import random_seg_batch
from .memory import SavedTensorMeter

__all__ = ['atomic_path', 'atomic_write_bytes', 'remove_temp_files', 'random_seg_batch',
           'SavedTensorMeter']
