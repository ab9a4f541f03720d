"""Prototype reconstruction loss ``L_rec`` (paper Eq. 5, divided by ``N_E``)."""
from typing import Dict

import torch
import torch.nn as nn

from lgdea.models.utils.precision import float32_forward
from lgdea.registry import MODELS
from lgdea.utils.dist import global_count, get_world_size


@MODELS.register_module()
class PrototypeReconstructionLoss(nn.Module):
    """``L_rec = (1/N_E) sum_n ||z_n - sum_k p(k|z_n) mu_k||^2 + (lambda_mu/N_E) sum_k ||mu_k||^2``.

    Owned by :class:`DiagnosticPrototypeHead` (which computes ``p(k|z_n)``, Eq. 4). ``N_E`` is
    the number of non-padding phrases of the global batch (under DDP the reconstruction sum is
    this rank's share, so the ranks' average is the global-batch loss).

    Args:
        lambda_mu: weight of the prototype-norm penalty (1.0).
        loss_weight: ``w_rec`` of Eq. 18 (1.0).
    """

    def __init__(self, lambda_mu: float = 1.0, loss_weight: float = 1.0):
        super().__init__()
        self.lambda_mu = float(lambda_mu)
        self.loss_weight = float(loss_weight)

    @float32_forward
    def forward(self, z: torch.Tensor, assign: torch.Tensor,
                mu: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            z: [N_E, d] valid evidence embeddings of this rank.
            assign: [N_E, K] ``p(k | z_n)``.
            mu: [K, d] prototypes.

        Returns:
            dict(loss_rec (weighted), rec_recon, rec_reg (unweighted, detached)).
        """
        n_all = global_count(z.shape[0], z.device)
        if n_all == 0:
            zero = z.sum() * 0.0 + mu.sum() * 0.0
            return dict(loss_rec=zero, rec_recon=zero.detach(), rec_reg=zero.detach())
        recon = assign @ mu                                                     # [N_E, d]
        rec_recon = (z - recon).pow(2).sum() * get_world_size() / n_all
        rec_reg = self.lambda_mu * mu.pow(2).sum() / n_all
        return dict(loss_rec=self.loss_weight * (rec_recon + rec_reg),
                    rec_recon=rec_recon.detach(), rec_reg=rec_reg.detach())

    def extra_repr(self) -> str:
        return f'lambda_mu={self.lambda_mu}, loss_weight={self.loss_weight}'
