"""GLoRIA's word -> region attention and the word-level image-text score (refs. 1.5).

Notation (per image ``k`` and text ``l``): region features ``v_j`` [D], ``j = 1..M``; word
features ``e_i`` [D], ``i`` over the text's valid words; temperatures ``tau1, tau2``.

Official code (``attention_fn`` + ``local_loss``, variant ``'official'``):

- (A1) ``s_ij = e_i . v_j`` (dot product of un-normalised features);
- (A2) ``abar_ij = softmax_i(s_ij)`` -- first softmax over the words, for every region;
- (A3) ``a_ij = softmax_j(tau1 * abar_ij)`` -- second softmax over the regions;
- (A4) ``c_i = sum_j a_ij v_j`` -- word-specific visual context;
- (A5) ``R(k, l) = log sum_i exp(tau2 * cos(e_i, c_i))`` (``word_reduce='sum'``; ``'mean'``
  averages inside the log; ``'max'`` gives ``tau2 * max_i cos``, the official zero-shot score).

Paper (variant ``'clean'``): (A2-A3) become one softmax over regions ``a_ij = softmax_j(tau1
s_ij)`` and (A5) carries the ``1 / tau2`` power: ``R = (1 / tau2) log sum_i exp(tau2 cos)``.

Implementation note: ``cos(e_i, c_i)`` needs ``e_i . c_i = sum_j a_ij s_ij`` and
``|c_i|^2 = a_i^T G a_i`` with the region Gram matrix ``G = V V^T`` [M, M], so the [.., T, D]
contexts of (A4) are never materialised (memory O(N_I N_T T M) instead of O(N_I N_T T D)).
"""
from typing import Optional

import torch

__all__ = ['VARIANTS', 'WORD_REDUCTIONS', 'word_region_attention', 'local_scores',
           'chunked_local_scores']

VARIANTS = ('official', 'clean')
WORD_REDUCTIONS = ('sum', 'mean', 'max')


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f'GLoRIA variant must be one of {VARIANTS}, got {variant!r}')
    return variant


def word_region_attention(scores: torch.Tensor, word_mask: torch.Tensor, temp1: float,
                          variant: str = 'official') -> torch.Tensor:
    """Attention of each word over the regions (Eq. A2-A3).

    Args:
        scores: [..., T, M] dot products ``s_ij`` (Eq. A1).
        word_mask: [..., T] bool, broadcastable to ``scores[..., 0]``; invalid words take no
            part in the first (word) softmax.
        temp1: ``tau1``.
        variant: ``'official'`` (two softmaxes) or ``'clean'`` (one, over regions).

    Returns:
        a: [..., T, M], rows summing to 1 over the regions.
    """
    if check_variant(variant) == 'clean':
        return torch.softmax(temp1 * scores, dim=-1)
    masked = scores.masked_fill(~word_mask.unsqueeze(-1), float('-inf'))
    over_words = torch.softmax(masked, dim=-2)  # (A2) softmax over words i for each region j
    return torch.softmax(temp1 * over_words, dim=-1)  # (A3) softmax over regions j


def local_scores(regions: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor,
                 temp1: float = 4.0, temp2: float = 5.0, variant: str = 'official',
                 word_reduce: str = 'sum', eps: float = 1e-8) -> torch.Tensor:
    """``R(k, l)`` of every image ``k`` against every text ``l`` (Eq. A1-A5), vectorised.

    Args:
        regions: [N_I, M, D] projected region features ``v`` (not normalised).
        words: [N_T, T, D] word features ``e`` (not normalised).
        word_mask: [N_T, T] bool, the words that take part (at least one per text).
        temp1, temp2: ``tau1``, ``tau2``.
        variant: ``'official'`` or ``'clean'``.
        word_reduce: ``'sum'`` (log-sum-exp, official training), ``'mean'`` or ``'max'``.
        eps: the official cosine clamp.

    Returns:
        R: [N_I, N_T].
    """
    if word_reduce not in WORD_REDUCTIONS:
        raise ValueError(f'word_reduce must be one of {WORD_REDUCTIONS}, got {word_reduce!r}')
    word_mask = word_mask.bool()
    if not bool(word_mask.any(1).all()):
        raise ValueError('every text needs at least one valid word for the local score')
    regions, words = regions.float(), words.float()  # the score is computed in fp32
    scores = torch.einsum('ltd,kmd->kltm', words, regions)  # (A1) [N_I, N_T, T, M]
    attn = word_region_attention(scores, word_mask[None], temp1, variant)  # (A2-A3)
    # (A4) without the contexts: e_i . c_i and |c_i| from the Gram matrix of the regions
    dot = (attn * scores).sum(-1)  # [N_I, N_T, T]
    gram = torch.einsum('kmd,knd->kmn', regions, regions)  # [N_I, M, M]
    ctx_sq = (torch.einsum('kltm,kmn->kltn', attn, gram) * attn).sum(-1)
    ctx_norm = ctx_sq.clamp_min(eps * eps).sqrt()  # |c_i| (clamped: finite gradient)
    word_norm = words.norm(dim=-1)[None]  # [1, N_T, T]
    cos = dot / (word_norm * ctx_norm).clamp_min(eps)  # cos(e_i, c_i)
    logits = (temp2 * cos).masked_fill(~word_mask[None], float('-inf'))
    if word_reduce == 'max':
        r = logits.amax(-1)  # log max_i exp(tau2 cos) (official zero-shot)
    else:
        r = torch.logsumexp(logits, dim=-1)  # (A5) log sum_i exp(tau2 cos)
        if word_reduce == 'mean':
            r = r - word_mask.sum(1).to(r.dtype).log()[None]
    if variant == 'clean':
        r = r / temp2  # the paper's (.)^(1 / tau2) power inside the log
    return r


def chunked_local_scores(regions: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor,
                         max_elements: Optional[int] = 2**25, **kwargs) -> torch.Tensor:
    """:func:`local_scores` over image and text chunks so that no [n_I, n_T, T, M] block
    exceeds ``max_elements`` (None: one block). Same result as the unchunked call."""
    n_img, m = regions.shape[:2]
    n_txt, t = words.shape[:2]
    if max_elements is None or n_img * n_txt * t * m <= max_elements:
        return local_scores(regions, words, word_mask, **kwargs)
    per_pair = max(1, t * m)
    img_chunk = min(n_img, max(1, max_elements // per_pair))
    txt_chunk = min(n_txt, max(1, max_elements // (per_pair * img_chunk)))
    rows = []
    for i in range(0, n_img, img_chunk):
        cols = [local_scores(regions[i:i + img_chunk], words[j:j + txt_chunk],
                             word_mask[j:j + txt_chunk], **kwargs)
                for j in range(0, n_txt, txt_chunk)]
        rows.append(torch.cat(cols, dim=1))
    return torch.cat(rows, dim=0)
