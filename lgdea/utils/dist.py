"""Cross-rank primitives: world size, rank, the all-gather of one tensor and global means.

Two conventions make every training loss give, under DDP, the gradient of the single-process
loss on the global batch (DDP averages the per-rank gradients):

- a loss on **gathered** features is identical on every rank; its gradient reaches the local
  slice multiplied by the world size (:func:`gather_features` with ``grad_scale``). Training
  losses do not call it directly: they go through
  :func:`lgdea.models.utils.gather_pair_batch`, the one gather of a batch.
- a loss that is a **mean over local items** (phrases, paired images, lesions) is written as
  :func:`global_mean`: ``world_size * sum_local / N_global``, whose average over ranks is the
  mean over the global batch even when ranks hold different numbers of items.
"""
from typing import List

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
    rank's slice keeps its autograd history, its gradient multiplied by ``grad_scale``; the
    other slices are constants. On one process ``x`` is returned unchanged.
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


def gather_offset(n_local: int, device=None) -> int:
    """Row of this rank's first item in a tensor gathered by :func:`gather_features`."""
    if get_world_size() == 1:
        return 0
    return sum(_gather_sizes(n_local, device)[:get_rank()])


def _gather_sizes(n: int, device) -> List[int]:
    size = torch.tensor([n], device=device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(get_world_size())]
    torch_dist.all_gather(sizes, size)
    return [int(s.item()) for s in sizes]


def global_count(n_local: int, device=None) -> int:
    """Number of items over every rank (``n_local`` on one process)."""
    if get_world_size() == 1:
        return int(n_local)
    n = torch.tensor([n_local], device=device, dtype=torch.long)
    torch_dist.all_reduce(n)
    return int(n.item())


def global_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of the per-item values ``x`` [N_local] over the global batch (see module docstring).

    One process: ``x.mean()`` (0 with a gradient path when ``x`` is empty). Every rank must
    call it, also with no item, because it all-reduces the item count.
    """
    n_all = global_count(x.shape[0], x.device)
    if n_all == 0:
        return x.sum() * 0.0
    if get_world_size() == 1:
        return x.mean()
    return x.sum() * (get_world_size() / n_all)


def scale_gradient(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Same value as ``x``, gradient multiplied by ``factor``."""
    if factor == 1.0:
        return x
    return x * factor - x.detach() * (factor - 1.0)
