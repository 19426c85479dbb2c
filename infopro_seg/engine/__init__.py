from ..fileio import CheckpointError, load_checkpoint_safely
from .ddp import InfoProDistributedDataParallel
from .hooks import ExactResumeHook, SafeCheckpointLoadingHook
from .publish import TRAINING_ONLY_PREFIXES, publish_checkpoint

# CheckpointError and load_checkpoint_safely live in infopro_seg.fileio; exported here too as
# the checkpoint API of the training engine.
__all__ = ['CheckpointError', 'load_checkpoint_safely', 'InfoProDistributedDataParallel',
           'ExactResumeHook', 'SafeCheckpointLoadingHook', 'TRAINING_ONLY_PREFIXES',
           'publish_checkpoint']
