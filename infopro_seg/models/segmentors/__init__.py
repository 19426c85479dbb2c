from .infopro_encoder_decoder import InfoProEncoderDecoder
from .local_module import LocalModule

__all__ = ['InfoProEncoderDecoder', 'LocalModule']
