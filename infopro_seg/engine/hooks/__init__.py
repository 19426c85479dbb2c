from .exact_resume_hook import ExactResumeHook
from .safe_checkpoint_loading_hook import SafeCheckpointLoadingHook

__all__ = ['ExactResumeHook', 'SafeCheckpointLoadingHook']
