"""MGCA's global projection head (``GlobalEmbedding`` of the official encoder)."""
import torch
import torch.nn as nn

from lgdea.models.utils.precision import float32_forward
from lgdea.registry import MODELS

__all__ = ['MGCAGlobalEmbedding']


@MODELS.register_module()
class MGCAGlobalEmbedding(nn.Module):
    """``Linear(C, H) -> BN -> ReLU -> Linear(H, D) -> BN(affine=False)`` (Eq. H1).

    The module layout (``head.0`` ... ``head.4``) matches the official checkpoints, so their
    head weights load by renaming the prefix only.

    Args:
        in_dims: ``C``, feature width of the encoder.
        hidden_dims: ``H`` (2048).
        out_dims: ``D`` (128).
    """

    def __init__(self, in_dims: int, hidden_dims: int = 2048, out_dims: int = 128):
        super().__init__()
        self.head = nn.Sequential(
            nn.Linear(in_dims, hidden_dims),
            nn.BatchNorm1d(hidden_dims),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dims, out_dims),
            nn.BatchNorm1d(out_dims, affine=False),
        )

    @float32_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C] -> [B, D] (not normalised)."""
        return self.head(x)
