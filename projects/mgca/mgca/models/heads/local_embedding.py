"""MGCA's token projection head (``LocalEmbedding`` of the official encoder)."""
import torch
import torch.nn as nn

from lgdea.models.utils.precision import float32_forward
from lgdea.registry import MODELS

__all__ = ['MGCALocalEmbedding']


@MODELS.register_module()
class MGCALocalEmbedding(nn.Module):
    """Per-token ``Conv1d(C, H, 1) -> BN -> ReLU -> Conv1d(H, D, 1) -> BN(affine=False)``
    (Eq. H2).

    BatchNorm statistics run over every token of the batch, padding word slots included, as in
    the official code. The layout (``head.0`` ... ``head.4``, Conv1d weights [out, in, 1])
    matches the official checkpoints.

    Args:
        in_dims: ``C``.
        hidden_dims: ``H`` (2048).
        out_dims: ``D`` (128).
    """

    def __init__(self, in_dims: int, hidden_dims: int = 2048, out_dims: int = 128):
        super().__init__()
        self.head = nn.Sequential(
            nn.Conv1d(in_dims, hidden_dims, kernel_size=1),
            nn.BatchNorm1d(hidden_dims),
            nn.ReLU(inplace=True),
            nn.Conv1d(hidden_dims, out_dims, kernel_size=1),
            nn.BatchNorm1d(out_dims, affine=False),
        )

    @float32_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, N, C] -> [B, N, D] (not normalised)."""
        return self.head(x.transpose(1, 2)).transpose(1, 2)
