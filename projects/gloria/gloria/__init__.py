"""GLoRIA baseline as an lgdea plugin (``custom_imports=dict(imports=['lgdea',
'projects.gloria.gloria'])``)."""
from .ckpt_convert import CKPT_CONVERTERS, convert_official_gloria
from .models import *  # noqa: F401,F403
from .text_processing import (gloria_clean_text, gloria_sentences, impression_section,
                              sample_sentence)

__all__ = ['CKPT_CONVERTERS', 'convert_official_gloria', 'gloria_clean_text',
           'gloria_sentences', 'impression_section', 'sample_sentence']
