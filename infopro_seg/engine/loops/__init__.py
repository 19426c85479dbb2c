from .resumable_iter_based_train_loop import ResumableIterBasedTrainLoop

__all__ = ['ResumableIterBasedTrainLoop']
