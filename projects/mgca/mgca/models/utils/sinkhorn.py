"""Sinkhorn-Knopp equipartition of samples over prototypes (SwAV / MGCA CPA codes)."""
import torch
import torch.distributed as torch_dist

from lgdea.utils.dist import get_world_size, is_distributed

__all__ = ['sinkhorn_knopp']


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3,
                   distributed: bool = False) -> torch.Tensor:
    """Soft codes ``Q`` [B, K] of B samples over K prototypes (docs/baselines.md 2.6).

    ``Q^(0) = exp(scores / epsilon)^T / sum`` ([K, B], total mass 1), then ``iterations`` times:
    scale every row (prototype) to mass ``1 / K`` (Eq. S1) and every column (sample) to mass
    ``1 / B_total`` (Eq. S2); finally every column is normalised to sum 1, so each returned row
    is a distribution over prototypes.

    The exponent is shifted by the global maximum before ``exp``; a global factor cancels in
    the first normalisation, so the result equals the unshifted formula without overflow
    (``exp(1 / 0.05)`` overflows float16). Computed in float32.

    Args:
        scores: [B, K] prototype scores (cosines when both sides are L2-normalised).
        epsilon: entropic regularisation (0.05 in MGCA).
        iterations: Sinkhorn iterations (3 in MGCA).
        distributed: all-reduce the sums across ranks (the global equipartition). MGCA's
            official runs use the per-rank version (its distributed branch is never selected,
            docs/baselines.md 2.6), so the default is False.

    Returns:
        [B, K] float32, rows sum to 1.
    """
    if scores.dim() != 2:
        raise ValueError(f'sinkhorn_knopp expects scores [B, K], got {tuple(scores.shape)}')
    if iterations < 0:
        raise ValueError(f'iterations must be >= 0, got {iterations}')
    reduce = distributed and is_distributed() and get_world_size() > 1

    def _all_reduce(t: torch.Tensor) -> torch.Tensor:
        if reduce:
            torch_dist.all_reduce(t)
        return t

    logits = scores.detach().float() / epsilon
    shift = logits.max()
    if reduce:
        torch_dist.all_reduce(shift, op=torch_dist.ReduceOp.MAX)
    q = torch.exp(logits - shift).t()  # [K, B]
    q = q / _all_reduce(q.sum())
    num_protos, batch = q.shape
    total_batch = batch * (get_world_size() if reduce else 1)
    for _ in range(iterations):
        row_mass = _all_reduce(q.sum(dim=1, keepdim=True))
        q = q / (row_mass * num_protos)                      # Eq. S1: rows -> 1 / K
        q = q / (q.sum(dim=0, keepdim=True) * total_batch)    # Eq. S2: columns -> 1 / B
    q = q / q.sum(dim=0, keepdim=True)
    return q.t().contiguous()
