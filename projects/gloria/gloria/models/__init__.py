from .attention import chunked_local_scores, local_scores, word_region_attention
from .global_loss import GLoRIAGlobalLoss
from .gloria import GLoRIA
from .image_encoder import GLoRIAImageEncoder
from .local_loss import GLoRIALocalLoss
from .text_encoder import (GLoRIATextEncoder, aggregate_word_pieces, subword_table,
                           word_index_of_tokens)

__all__ = ['GLoRIA', 'GLoRIAImageEncoder', 'GLoRIATextEncoder', 'GLoRIAGlobalLoss',
           'GLoRIALocalLoss', 'local_scores', 'chunked_local_scores', 'word_region_attention',
           'aggregate_word_pieces', 'subword_table', 'word_index_of_tokens']
