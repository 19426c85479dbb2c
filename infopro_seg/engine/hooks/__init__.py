from .exact_resume_hook import ExactResumeHook
from .fault_tolerant_checkpoint_hook import FaultTolerantCheckpointHook
from .local_loss_weight_anneal_hook import LocalLossWeightAnnealHook
from .preemption_checkpoint_hook import PreemptionCheckpointHook
from .safe_checkpoint_loading_hook import SafeCheckpointLoadingHook

__all__ = ['ExactResumeHook', 'FaultTolerantCheckpointHook', 'LocalLossWeightAnnealHook',
           'PreemptionCheckpointHook', 'SafeCheckpointLoadingHook']
