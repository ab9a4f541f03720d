"""Cross-rank feature gathering, written once for every method (open_clip style).

``gather_features`` all-gathers a tensor along dim 0 and puts the *local* (gradient-carrying)
tensor back into its own slot, so the gradient flows to the local slice only. A loss computed
on gathered features is then identical on every rank; DDP averages gradients over ranks, so
the gradient reaching each rank's features must be multiplied by the world size
(``grad_scale=loss_scale_for_gather()``) for the averaged gradient to equal the
single-process gradient of the global batch. Scaling the features' gradient rather than the
loss keeps parameters that act on the gathered tensors (a learnable logit scale) exact.
"""
from typing import List, Sequence

import torch
import torch.distributed as torch_dist


def is_distributed() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized()


def get_world_size() -> int:
    return torch_dist.get_world_size() if is_distributed() else 1


def get_rank() -> int:
    return torch_dist.get_rank() if is_distributed() else 0


def gather_features(x: torch.Tensor, grad_scale: float = 1.0) -> torch.Tensor:
    """All-gather ``x`` [N_local, ...] from every rank into [sum N_r, ...].

    Ranks may hold different numbers of rows (limited-pairing batches are ragged). The local
    rank's slice keeps its autograd history; the other slices are constants.

    Args:
        grad_scale: factor on the gradient that flows back into the local slice. Pass
            :func:`loss_scale_for_gather` for a loss computed on gathered features: DDP then
            averages to exactly the single-process gradient of the global batch, while
            parameters used on the gathered tensors themselves (a logit scale) keep their
            plain gradient and the logged loss value is unchanged.
    """
    world_size = get_world_size()
    if world_size == 1:
        return x
    x = scale_gradient(x, grad_scale)
    sizes = _gather_sizes(x.shape[0], x.device)
    max_n = max(sizes)
    padded = x.new_zeros((max_n, ) + tuple(x.shape[1:]))
    padded[:x.shape[0]] = x.detach()
    chunks = [torch.empty_like(padded) for _ in range(world_size)]
    torch_dist.all_gather(chunks, padded)
    chunks = [c[:n] for c, n in zip(chunks, sizes)]
    chunks[get_rank()] = x
    return torch.cat(chunks, dim=0)


def _gather_sizes(n: int, device: torch.device) -> List[int]:
    size = torch.tensor([n], device=device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(get_world_size())]
    torch_dist.all_gather(sizes, size)
    return [int(s.item()) for s in sizes]


def gather_objects(obj: Sequence) -> list:
    """All-gather a picklable sequence (e.g. study ids) and concatenate in rank order."""
    if get_world_size() == 1:
        return list(obj)
    out = [None] * get_world_size()
    torch_dist.all_gather_object(out, list(obj))
    return [item for part in out for item in part]


def loss_scale_for_gather() -> float:
    """Factor applied to losses on gathered features (see module docstring)."""
    return float(get_world_size())


def scale_gradient(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Same value as ``x``, gradient multiplied by ``factor`` (logs stay comparable across
    world sizes while DDP gradients match the single-process ones)."""
    if factor == 1.0:
        return x
    return x * factor - x.detach() * (factor - 1.0)
