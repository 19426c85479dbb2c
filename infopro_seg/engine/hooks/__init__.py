from .exact_resume_hook import ExactResumeHook
from .local_loss_weight_anneal_hook import LocalLossWeightAnnealHook
from .safe_checkpoint_loading_hook import SafeCheckpointLoadingHook

__all__ = ['ExactResumeHook', 'LocalLossWeightAnnealHook', 'SafeCheckpointLoadingHook']
