"""GLoRIA's text encoder: last-n-layer sum and word-piece -> word aggregation (refs. 1.4)."""
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from lgdea.models.utils.frozen_cache import FrozenTextCache
from lgdea.registry import MODELS

__all__ = ['GLoRIATextEncoder', 'subword_table', 'word_index_of_tokens', 'aggregate_word_pieces']


def subword_table(tokenizer) -> torch.Tensor:
    """[V] bool: whether each vocabulary id is a WordPiece continuation (``##xx``).

    Raises:
        ValueError: the vocabulary has no ``##`` pieces (not a WordPiece tokenizer); GLoRIA's
            word aggregation follows the ``##`` convention of BERT vocabularies.
    """
    vocab = tokenizer.get_vocab()
    table = torch.zeros(max(vocab.values()) + 1, dtype=torch.bool)
    ids = [i for tok, i in vocab.items() if tok.startswith('##')]
    if not ids:
        raise ValueError(
            f'{type(tokenizer).__name__} has no "##" word pieces; GLoRIA aggregates BERT '
            'WordPiece tokens into words. Use a BERT-style (WordPiece) text encoder.')
    table[torch.tensor(ids)] = True
    return table


def word_index_of_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         is_subword: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Word index of every token, as the official ``aggregate_tokens`` groups them.

    A token that does not start with ``##`` opens a new word; ``[CLS]`` (position 0) and
    ``[SEP]`` are one-token words; padding belongs to no word. Eq. (W1):
    ``word_index[n, t] = sum_{t' <= t} start[n, t'] - 1`` with
    ``start = attention_mask & ~is_subword[input_ids]``.

    Args:
        input_ids: [N, L] token ids (``[CLS] ... [SEP] [PAD]*``).
        attention_mask: [N, L] 1 for real tokens.
        is_subword: [V] bool table from :func:`subword_table`.

    Returns:
        dict(word_index [N, L] long (0 at padding, whose features are zeroed),
        num_words [N] long: words including ``[CLS]`` and ``[SEP]``).
    """
    valid = attention_mask.bool()
    start = valid & ~is_subword[input_ids]
    word_index = torch.cumsum(start.long(), dim=1) - 1
    word_index = torch.where(valid, word_index, torch.zeros_like(word_index))
    return dict(word_index=word_index, num_words=start.sum(1))


def aggregate_word_pieces(token_feats: torch.Tensor, word_index: torch.Tensor,
                          attention_mask: torch.Tensor) -> torch.Tensor:
    """Sum the word pieces of each word (Eq. W2), vectorised with ``scatter_add``.

    ``words[n, w] = sum_{t: word_index[n, t] = w} token_feats[n, t]``; positions after the
    last word stay zero (the official zero padding).

    Args:
        token_feats: [N, L, C].
        word_index: [N, L] from :func:`word_index_of_tokens`.
        attention_mask: [N, L].

    Returns:
        words: [N, L, C].
    """
    feats = token_feats * attention_mask.unsqueeze(-1).to(token_feats.dtype)
    index = word_index.unsqueeze(-1).expand_as(feats)
    return torch.zeros_like(feats).scatter_add_(1, index, feats)


@MODELS.register_module()
class GLoRIATextEncoder(BaseModule):
    """BERT encoder with GLoRIA's word and sentence features (official ``BertEncoder``).

    - token features ``h_t = sum_{layer in last n} hidden_layer[t]`` (``last_n_layers=4``,
      ``layer_aggregation='sum'``) (Eq. W0);
    - word features ``e_w`` = sum of the word's pieces (Eq. W2), layout
      ``[CLS], w_1 .. w_n, [SEP], 0 ...``;
    - sentence feature ``t = (1 / L_pad) sum_w e_w`` (Eq. W3): the official mean over all
      ``max_length`` padded positions (zeros included), i.e. the sum of every real token
      divided by a constant; only its direction matters (cosine);
    - optional linear projections of words / sentence (the official ``emb_local`` /
      ``emb_global`` hooks, ``None`` in the released config: no text projection).

    Args:
        encoder: config of an ``HFTextEncoder`` (any BERT-style WordPiece model).
        last_n_layers: hidden layers summed (1 = last layer only).
        layer_aggregation: ``'sum'`` (official) or ``'mean'`` over those layers.
        embed_dims: output dimension of the optional projections; None keeps the encoder's
            width (official).
        pad_length: ``L_pad`` of Eq. W3 (the official tokenisation pads to 97).
        projection_bias: give the optional projections a bias. Off by default: the sentence
            feature is a sum scaled by ``1 / L_pad``, so a bias can dominate it and let every
            sentence collapse onto one embedding (seen on the demo with a frozen encoder).
        cache_frozen: with a frozen ``encoder``, remember each caption's word features
            (everything before the optional projections) and encode every distinct caption
            once per run; outputs are unchanged (within float tolerance).
    """

    def __init__(self, encoder: dict, last_n_layers: int = 4, layer_aggregation: str = 'sum',
                 embed_dims: Optional[int] = None, pad_length: int = 97,
                 projection_bias: bool = False, cache_frozen: bool = True, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.encoder = MODELS.build(encoder)
        self._word_cache = (FrozenTextCache() if cache_frozen
                            and getattr(self.encoder, 'freeze', False) else None)
        num_layers = self.encoder.model.config.num_hidden_layers
        if not 1 <= last_n_layers <= num_layers + 1:
            raise ValueError(f'GLoRIATextEncoder.last_n_layers={last_n_layers}, but the encoder '
                             f'has {num_layers} layers (+ embeddings)')
        if layer_aggregation not in ('sum', 'mean'):
            raise ValueError(f'layer_aggregation must be "sum" or "mean", got '
                             f'{layer_aggregation!r}')
        self.last_n_layers = last_n_layers
        self.layer_aggregation = layer_aggregation
        self.pad_length = int(pad_length)
        width = self.encoder.embed_dims
        if embed_dims is None:
            self.emb_local = self.emb_global = None
            self.embed_dims = width
        else:
            self.emb_local = nn.Linear(width, embed_dims, bias=projection_bias)
            self.emb_global = nn.Linear(width, embed_dims, bias=projection_bias)
            self.embed_dims = embed_dims

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                is_subword: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            input_ids, attention_mask: [N, L] tokens (``[CLS]`` first, ``[SEP]`` last).
            is_subword: [V] bool table (:func:`subword_table`).

        Returns:
            dict(words [N, L, D] word features (zeros after ``[SEP]``), num_words [N]
            (``[CLS]`` + n real words + ``[SEP]``), sentence [N, D]).
        """
        if self._word_cache is not None:
            words, num_words = self._cached_words(input_ids, attention_mask, is_subword)
        else:
            words, num_words = self._words(input_ids, attention_mask, is_subword)
        sentence = words.sum(1) / float(max(self.pad_length, input_ids.shape[1]))  # W3
        if self.emb_local is not None:
            words = self.emb_local(words) * (
                torch.arange(words.shape[1], device=words.device)[None, :]
                < num_words[:, None]).unsqueeze(-1).to(words.dtype)
            sentence = self.emb_global(sentence)
        return dict(words=words, num_words=num_words, sentence=sentence)

    def _words(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               is_subword: torch.Tensor):
        """Word features [N, L, C] (Eqs. W0-W2, before any projection) and num_words [N]."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                           output_hidden_states=True)
        layers = torch.stack(out['hidden_states'][-self.last_n_layers:], dim=0)
        tokens = layers.sum(0) if self.layer_aggregation == 'sum' else layers.mean(0)  # W0
        index = word_index_of_tokens(input_ids, attention_mask, is_subword)
        words = aggregate_word_pieces(tokens, index['word_index'], attention_mask)  # W2
        return words, index['num_words']

    @torch.no_grad()
    def _cached_words(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      is_subword: torch.Tensor):
        """:meth:`_words` from the frozen-text cache, encoding only unseen captions."""
        cache = self._word_cache
        keys = cache.keys(input_ids, attention_mask)
        missing = cache.missing(keys)
        if missing:
            rows = torch.tensor(missing, device=input_ids.device)
            words, num_words = self._words(input_ids[rows], attention_mask[rows], is_subword)
            for j, i in enumerate(missing):
                cache.put(keys[i], words=words[j, :int(num_words[j])])
        return cache.get_padded(keys, 'words', input_ids.shape[1], input_ids.device)
