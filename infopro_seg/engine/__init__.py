from ..fileio import CheckpointError, load_checkpoint_safely
from .amp import DeviceAmpOptimWrapper
from .ddp import InfoProDistributedDataParallel
from .optim import (InfoProAmpOptimWrapper, InfoProOptimWrapper, InfoProOptimWrapperConstructor,
                    LocalStepMixin)
from .hooks import (ExactResumeHook, FaultTolerantCheckpointHook, PreemptionCheckpointHook,
                    SafeCheckpointLoadingHook)
from .loops import ResumableIterBasedTrainLoop
from .runner import InfoProRunner
from .publish import TRAINING_ONLY_PREFIXES, publish_checkpoint

# CheckpointError and load_checkpoint_safely live in infopro_seg.fileio; exported here too as
# the checkpoint API of the training engine.
__all__ = ['CheckpointError', 'load_checkpoint_safely', 'DeviceAmpOptimWrapper',
           'InfoProDistributedDataParallel', 'InfoProAmpOptimWrapper',
           'InfoProOptimWrapper', 'InfoProOptimWrapperConstructor', 'LocalStepMixin',
           'ExactResumeHook', 'SafeCheckpointLoadingHook',
           'FaultTolerantCheckpointHook', 'PreemptionCheckpointHook', 'ResumableIterBasedTrainLoop',
           'InfoProRunner', 'TRAINING_ONLY_PREFIXES', 'publish_checkpoint']
