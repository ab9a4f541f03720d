"""Paired evidence distillation ``L_p^evid`` (paper Eq. 9)."""
from typing import Dict

import torch
import torch.nn as nn

from lgdea.models.utils.precision import float32_forward
from lgdea.registry import MODELS
from lgdea.utils.dist import global_mean


def kl_divergence(p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``KL(p || q) = sum_k p_k (log p_k - log q_k)`` over the last dim (0 log 0 = 0)."""
    return (torch.special.xlogy(p, p) - p * log_q).sum(-1)


@MODELS.register_module()
class PairedEvidenceLoss(nn.Module):
    """``L_p = mean over paired images i of KL(sg(Qbar_R(i)) || Qbar_I(i))``.

    The teacher of image ``i`` is the mean report distribution of its paired report(s)
    (row-normalised ``Y`` times ``Qbar_R``, detached). Images without a paired report in the
    batch are excluded; the loss is 0 when there is none.

    Args:
        loss_weight: ``w_p`` of Eq. 18 (1.0).
    """

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = float(loss_weight)

    @float32_forward
    def forward(self, Qbar_R: torch.Tensor, log_Qbar_I: torch.Tensor,
                Y: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            Qbar_R: [B_R, K] report distributions (Eq. 8).
            log_Qbar_I: [B_I, K] exact log image distributions (Eq. 7).
            Y: [B_I, B_R] seed links of the local batch.

        Returns:
            dict(loss_p (weighted), p_kl, num_paired_images).
        """
        y = Y.detach().to(log_Qbar_I.dtype)
        links = y.sum(1)
        rows = links > 0
        teacher = (y[rows] / links[rows, None]) @ Qbar_R.detach().to(log_Qbar_I.dtype)
        kl = global_mean(kl_divergence(teacher, log_Qbar_I[rows]))
        return dict(loss_p=self.loss_weight * kl, p_kl=kl.detach(),
                    num_paired_images=rows.sum().float())

    def extra_repr(self) -> str:
        return f'loss_weight={self.loss_weight}'
