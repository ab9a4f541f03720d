"""Uniformity regulariser of L2-normalised embeddings (Wang & Isola, ICML 2020)."""
import math

import torch
import torch.nn as nn

from lgdea.registry import MODELS

__all__ = ['UniformityLoss']


@MODELS.register_module()
class UniformityLoss(nn.Module):
    """``L_unif = log( mean_{i != j} exp(-t ||x_i - x_j||^2) )`` (Eq. U1).

    Low when the embeddings spread over the unit sphere; its minimum pushes a batch apart,
    which counteracts the collapse of a contrastive space.

    Args:
        t: the Gaussian-potential scale (2 in the paper).
    """

    def __init__(self, t: float = 2.0):
        super().__init__()
        if t <= 0:
            raise ValueError(f'UniformityLoss: t must be positive, got {t}')
        self.t = float(t)

    def forward(self, embed: torch.Tensor) -> torch.Tensor:
        """embed [N, D] (L2-normalised), N >= 2 -> scalar."""
        if embed.dim() != 2 or embed.shape[0] < 2:
            raise ValueError(f'UniformityLoss needs [N >= 2, D] embeddings, got '
                             f'{tuple(embed.shape)}')
        sq_dist = torch.pdist(embed.float(), p=2).pow(2)  # the N (N - 1) / 2 pairs i < j
        return torch.logsumexp(-self.t * sq_dist, dim=0) - math.log(sq_dist.numel())
