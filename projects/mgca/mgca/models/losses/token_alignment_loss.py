"""MGCA token-wise cross-modal alignment (TCA), both directions (docs/baselines.md 2.5)."""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from lgdea.models.utils.precision import float32_forward
from lgdea.registry import MODELS

__all__ = ['TokenAlignmentLoss', 'weighted_self_matching_ce']


def weighted_self_matching_ce(sim: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``1/2 [ (1/B) sum_b sum_i w_bi CE(S_b[i, :], i) + (1/B) sum_b sum_k w_bk CE(S_b[:, k], k) ]``
    (Eq. T3): every token must pick its own cross-modal context among the contexts of the other
    tokens of the same sample, in the row and the column direction.

    Args:
        sim: [B, N, N] similarities ``S_b[i, k] = x_bi . o_bk / tau``.
        weights: [B, N] token weights (each row sums to 1; 0 drops a token's CE).

    Returns:
        scalar loss.
    """
    diag = sim.diagonal(dim1=1, dim2=2)                     # [B, N]
    ce_rows = sim.logsumexp(dim=2) - diag                   # CE(S[i, :], i)
    ce_cols = sim.logsumexp(dim=1) - diag                   # CE(S[:, k], k)
    b = sim.shape[0]
    return 0.5 * ((ce_rows * weights).sum() + (ce_cols * weights).sum()) / b


@MODELS.register_module()
class TokenAlignmentLoss(nn.Module):
    """Token-wise cross-modal alignment of MGCA: ``L_TCA = L_word + L_patch``.

    Word side (words query patches, Eq. T1-T3)::

        alpha_bij = softmax_j(w_bi . p_bj / tau)          # no mask: patches are never padded
        o_bi      = norm(sum_j alpha_bij p_bj)
        S^w_b[i, k] = w_bi . o_bk / tau                    # [N_w, N_w]
        L_word    = weighted_self_matching_ce(S^w, omega^w)

    Patch side (patches query words, Eq. T4, ``bidirectional=True``)::

        beta_bjl  = softmax_l(p_bj . w_bl / tau), padding words masked to -inf
        q_bj      = sum_l beta_bjl w_bl      # L2-normalised iff normalize_patch_context
        S^p_b[j, m] = p_bj . q_bm / tau                    # [N_p, N_p]
        L_patch   = weighted_self_matching_ce(S^p, omega^p)

    The official code normalises ``q`` only for the ResNet encoder (a quirk, docs/baselines.md
    2.5); the model picks the flag from its encoder. Token weights ``omega`` come from the
    model (clipped [CLS] attention, or uniform) and are normalised here to sum 1 per sample.

    Args:
        temperature: ``tau`` (0.1 in MGCA).
        bidirectional: add the patch side (official default True).
    """

    def __init__(self, temperature: float = 0.1, bidirectional: bool = True):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'temperature must be positive, got {temperature}')
        self.temperature = temperature
        self.bidirectional = bidirectional

    @float32_forward
    def forward(self, word_embed: torch.Tensor, patch_embed: torch.Tensor,
                word_weights: torch.Tensor, patch_weights: Optional[torch.Tensor],
                word_pad_mask: torch.Tensor,
                normalize_patch_context: bool = False) -> Dict[str, torch.Tensor]:
        """
        Args:
            word_embed: [B, N_w, D] L2-normalised word embeddings (padding slots included).
            patch_embed: [B, N_p, D] L2-normalised patch embeddings.
            word_weights: [B, N_w] non-negative word weights (0 for padding).
            patch_weights: [B, N_p] non-negative patch weights (None = uniform).
            word_pad_mask: [B, N_w] bool, True for padding word slots.
            normalize_patch_context: L2-normalise ``q`` (the official ResNet branch).

        Returns:
            dict(loss, loss_word, loss_patch); ``loss = loss_word + loss_patch``.
        """
        if word_embed.shape[0] != patch_embed.shape[0]:
            raise ValueError(f'TCA pairs image b with report b: got {patch_embed.shape[0]} '
                             f'images and {word_embed.shape[0]} reports')
        tau = self.temperature
        word_w = _normalise_weights(word_weights)
        # word side: each word attends over the patches of its own image
        alpha = torch.softmax(word_embed @ patch_embed.transpose(1, 2) / tau, dim=-1)
        word_ctx = F.normalize(alpha @ patch_embed, dim=-1)
        word_sim = word_embed @ word_ctx.transpose(1, 2) / tau
        loss_word = weighted_self_matching_ce(word_sim, word_w)
        if not self.bidirectional:
            zero = loss_word.new_zeros(())
            return dict(loss=loss_word, loss_word=loss_word, loss_patch=zero)

        num_patches = patch_embed.shape[1]
        if patch_weights is None:
            patch_weights = patch_embed.new_full(patch_embed.shape[:2], 1.0 / num_patches)
        patch_w = _normalise_weights(patch_weights)
        logits = patch_embed @ word_embed.transpose(1, 2) / tau  # [B, N_p, N_w]
        logits = logits.masked_fill(word_pad_mask[:, None, :], float('-inf'))
        beta = torch.softmax(logits, dim=-1)
        patch_ctx = beta @ word_embed
        if normalize_patch_context:
            patch_ctx = F.normalize(patch_ctx, dim=-1)
        patch_sim = patch_embed @ patch_ctx.transpose(1, 2) / tau
        loss_patch = weighted_self_matching_ce(patch_sim, patch_w)
        return dict(loss=loss_word + loss_patch, loss_word=loss_word, loss_patch=loss_patch)


def _normalise_weights(w: torch.Tensor) -> torch.Tensor:
    """Rows to sum 1 (a row of zeros stays zero instead of NaN; no host sync)."""
    return w / w.sum(dim=1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
