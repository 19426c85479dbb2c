from .atomic import atomic_path, atomic_write_bytes
from .memory import SavedTensorMeter

__all__ = ['atomic_path', 'atomic_write_bytes', 'SavedTensorMeter']
