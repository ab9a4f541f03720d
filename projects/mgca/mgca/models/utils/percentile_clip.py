"""Per-row percentile clipping of attention weights, vectorised over the batch.

MGCA clips each sample's [CLS]-attention weights to its own 10th-90th percentile before using
them as token weights (docs/baselines.md, section 2.5). The official code loops over the batch and
calls ``torch.quantile`` per sample; here one sort of the whole [B, N] matrix does the same.
"""
from typing import Optional

import torch

__all__ = ['masked_quantile', 'percentile_clip']


def masked_quantile(x: torch.Tensor, q: float, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Row-wise quantile over the entries selected by ``mask`` (Eq. Q1).

    ``quantile_b = s_b[lo] + (pos - lo) (s_b[hi] - s_b[lo])``, ``pos = q (n_b - 1)``,
    ``lo = floor(pos)``, ``hi = ceil(pos)``, where ``s_b`` are the ``n_b`` selected entries of
    row ``b`` in ascending order: ``torch.quantile``'s ``'linear'`` interpolation.

    Args:
        x: [B, N] values.
        q: quantile in [0, 1].
        mask: [B, N] bool, True = take part (default: all entries).

    Returns:
        [B] quantiles; NaN for a row with no selected entry.
    """
    if x.dim() != 2:
        raise ValueError(f'masked_quantile expects [B, N], got shape {tuple(x.shape)}')
    if not 0.0 <= q <= 1.0:
        raise ValueError(f'q must be in [0, 1], got {q}')
    if mask is None:
        mask = torch.ones_like(x, dtype=torch.bool)
    n = mask.sum(dim=1)
    # unselected entries sort to the end of their row
    filled = torch.where(mask, x, torch.full_like(x, float('inf')))
    ordered, _ = filled.sort(dim=1)
    pos = (n - 1).clamp_min(0).to(x.dtype) * q
    lo = pos.floor().long()
    hi = pos.ceil().long()
    v_lo = ordered.gather(1, lo[:, None]).squeeze(1)
    v_hi = ordered.gather(1, hi[:, None]).squeeze(1)
    frac = pos - lo.to(x.dtype)
    # v_lo == v_hi when frac == 0; avoid inf - inf for empty rows
    out = torch.where(frac > 0, v_lo + frac * (v_hi - v_lo), v_lo)
    return torch.where(n > 0, out, torch.full_like(out, float('nan')))


def percentile_clip(weights: torch.Tensor, mask: Optional[torch.Tensor] = None,
                    low: float = 0.1, high: float = 0.9) -> torch.Tensor:
    """Clip every row to its own [``low``, ``high``] quantiles (Eq. Q2).

    ``w'_bn = min(max(w_bn, quantile_low_b), quantile_high_b)`` for selected entries; entries
    outside ``mask`` are returned unchanged (MGCA's word weights: only the non-zero entries are
    clipped, padding stays 0).

    Args:
        weights: [B, N].
        mask: [B, N] bool of the entries that define the quantiles and get clipped
            (default: all).
        low, high: quantiles, ``0 <= low <= high <= 1``.

    Returns:
        [B, N] clipped weights (a new tensor).
    """
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f'need 0 <= low <= high <= 1, got low={low}, high={high}')
    lo = masked_quantile(weights, low, mask)[:, None]
    hi = masked_quantile(weights, high, mask)[:, None]
    clipped = torch.maximum(torch.minimum(weights, hi), lo)
    if mask is None:
        return clipped
    return torch.where(mask, clipped, weights)
