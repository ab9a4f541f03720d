"""Sub-word tokens -> word features, vectorised (MGCA's ``BertEncoder.aggregate_tokens``).

WordPiece splits a word into a head token and ``##`` continuations. MGCA sums the features
(and the [CLS]-attention weights) of the tokens of a word, keeps [CLS] and [SEP] as words of
their own, stops at the first [SEP] and zero-pads the rest (docs/baselines.md, section 2.3). The
official code loops over the batch and the tokens in Python; here the word index of every
token is a cumulative sum and the sums are one ``scatter_add``.
"""
from typing import Dict

import torch

__all__ = ['continuation_lookup', 'aggregate_subwords']


def continuation_lookup(tokenizer) -> torch.Tensor:
    """[vocab_size] bool: True for WordPiece continuation tokens (``##...``)."""
    vocab = tokenizer.get_vocab()
    size = max(len(tokenizer), max(vocab.values()) + 1)
    lut = torch.zeros(size, dtype=torch.bool)
    for token, idx in vocab.items():
        if token.startswith('##'):
            lut[idx] = True
    return lut


def aggregate_subwords(token_feats: torch.Tensor, input_ids: torch.Tensor,
                       cls_attention: torch.Tensor, is_continuation: torch.Tensor,
                       sep_token_id: int, attention_shift: bool = True) -> Dict[str, torch.Tensor]:
    """Sum sub-word features into word slots.

    Token ``m`` of text ``b`` belongs to word ``c_bm - 1`` with ``c_bm = sum_{m' <= m} s_bm'``
    and ``s_bm = 1`` when token ``m`` starts a word (not a ``##`` continuation, or [SEP])
    (Eq. A1). Word features ``u_bk = sum_{m: c_bm - 1 = k} h_bm`` and word weights
    ``a_bk = sum_{m: c_bm - 1 = k} alpha_bm`` (Eq. A2), where ``alpha_bm`` is the head-mean
    [CLS]->token attention of the last layer.

    A word is emitted when the next word starts or at [SEP] (which is emitted as a word
    itself); tokens after the first [SEP] are dropped, and so is a word still open when the
    scanned range ends without [SEP] (the official loop behaves so).

    ``attention_shift=True`` reproduces the official off-by-one (docs/baselines.md 2.3): the
    official code zips token ``m`` with the [CLS] attention to token ``m + 1`` and scans only
    the first ``T - 1`` tokens. ``False`` aligns token ``m`` with its own attention and scans
    all ``T`` tokens.

    Args:
        token_feats: [N, T, C] last-layer token features.
        input_ids: [N, T] token ids.
        cls_attention: [N, T] [CLS]->token attention (head mean), index = token position.
        is_continuation: [V] bool lookup of ``##`` tokens (:func:`continuation_lookup`).
        sep_token_id: id of [SEP].
        attention_shift: see above.

    Returns:
        dict with
        ``cls`` [N, C]: the feature of word 0 ([CLS], the report feature);
        ``words`` [N, T - 1, C]: word slots after [CLS], zero for padding slots;
        ``weights`` [N, T - 1]: summed attention per word slot, 0 for padding slots;
        ``pad_mask`` [N, T - 1] bool: True for padding slots;
        ``num_words`` [N]: word slots in use (words after [CLS], [SEP] included).
    """
    n, t, c = token_feats.shape
    if input_ids.shape != (n, t) or cls_attention.shape != (n, t):
        raise ValueError(f'aggregate_subwords: token_feats {tuple(token_feats.shape)}, '
                         f'input_ids {tuple(input_ids.shape)} and cls_attention '
                         f'{tuple(cls_attention.shape)} disagree')
    device = token_feats.device
    lut = is_continuation.to(device)
    if int(input_ids.max()) >= lut.numel():
        raise ValueError(f'token id {int(input_ids.max())} is outside the tokenizer vocabulary '
                         f'({lut.numel()}); the tokenizer and the text encoder disagree')
    if attention_shift:
        scan = t - 1
        alpha = torch.cat([cls_attention[:, 1:], cls_attention.new_zeros(n, 1)], dim=1)
    else:
        scan = t
        alpha = cls_attention
    positions = torch.arange(t, device=device)[None, :]
    in_scan = positions < scan
    is_sep = (input_ids == sep_token_id) & in_scan
    starts = (~lut[input_ids] | is_sep) & in_scan
    # first [SEP] inside the scanned range, or `scan` when there is none
    first_sep = torch.where(is_sep, positions, torch.full_like(input_ids, t)).min(dim=1).values
    has_sep = first_sep < t
    # without [SEP] the last open word is never emitted: keep tokens before the last start
    last_start = torch.where(starts, positions, torch.full_like(input_ids, -1)).max(dim=1).values
    end = torch.where(has_sep, first_sep + 1, last_start.clamp_min(0))  # exclusive
    kept = positions < end[:, None]
    word_idx = starts.long().cumsum(dim=1) - 1
    word_idx = torch.where(kept, word_idx, torch.full_like(word_idx, t))  # t = dump slot
    feats = token_feats.new_zeros(n, t + 1, c)
    feats.scatter_add_(1, word_idx[..., None].expand(-1, -1, c),
                       token_feats * kept[..., None].to(token_feats.dtype))
    weights = alpha.new_zeros(n, t + 1)
    weights.scatter_add_(1, word_idx, alpha * kept.to(alpha.dtype))
    num_words = (starts & kept).sum(dim=1) - 1  # minus [CLS]
    slots = torch.arange(t - 1, device=device)[None, :]
    return dict(cls=feats[:, 0], words=feats[:, 1:t], weights=weights[:, 1:t],
                pad_mask=slots >= num_words[:, None], num_words=num_words)
