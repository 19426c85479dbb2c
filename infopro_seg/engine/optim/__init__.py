"""InfoPro's optimizer wrappers: the local-step protocol, fp32 and AMP, and their constructor."""
from .constructor import INFOPRO_WRAPPERS, InfoProOptimWrapperConstructor, infopro_wrapper_type
from .infopro_amp_optim_wrapper import InfoProAmpOptimWrapper
from .infopro_optim_wrapper import InfoProOptimWrapper
from .local_step import LocalStepMixin

__all__ = ['INFOPRO_WRAPPERS', 'InfoProOptimWrapperConstructor', 'infopro_wrapper_type',
           'InfoProAmpOptimWrapper', 'InfoProOptimWrapper', 'LocalStepMixin']
