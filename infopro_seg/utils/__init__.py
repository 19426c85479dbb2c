from .atomic import atomic_path, atomic_write_bytes, remove_temp_files
from .memory import SavedTensorMeter

__all__ = ['atomic_path', 'atomic_write_bytes', 'remove_temp_files', 'SavedTensorMeter']
