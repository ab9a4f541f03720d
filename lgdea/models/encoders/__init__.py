from .hf_text_encoder import BUILTIN_MINILM, HFTextEncoder, build_hf_tokenizer, tokenize
from .image_encoder import CXRImageEncoder, TimmImageEncoder

__all__ = ['BUILTIN_MINILM', 'HFTextEncoder', 'build_hf_tokenizer', 'tokenize',
           'CXRImageEncoder', 'TimmImageEncoder']
