from .local_classifier_head import LocalClassifierHead
from .reconstruction_head import ReconstructionHead

__all__ = ['ReconstructionHead', 'LocalClassifierHead']
