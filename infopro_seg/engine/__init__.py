from .checkpoint import (MMENGINE_CHECKPOINT_GLOBALS, CheckpointError, atomic_torch_save,
                         publish_checkpoint,
                         load_checkpoint_safely, register_safe_checkpoint_io)
from .ddp import InfoProDistributedDataParallel
from .hooks import ExactResumeHook

__all__ = ['CheckpointError', 'MMENGINE_CHECKPOINT_GLOBALS', 'atomic_torch_save',
           'load_checkpoint_safely', 'publish_checkpoint', 'register_safe_checkpoint_io',
           'InfoProDistributedDataParallel', 'ExactResumeHook']
