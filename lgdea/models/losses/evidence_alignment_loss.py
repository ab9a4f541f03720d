"""Evidence-guided alignment ``L_evi-align`` (paper Eq. 11-12, targets of Eq. 17)."""
import math
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from lgdea.models.utils.precision import float32_forward
from lgdea.registry import MODELS

DIRECTION_REDUCTIONS = ('sum', 'mean')


def weighted_soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                                weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``-(1/sum_i w_i) sum_i w_i sum_j T_ij log softmax_j(logits_ij)`` over the kept rows.

    Args:
        logits: [N, M]; targets: [N, M] row-normalised (rows of kept items sum to 1);
        mask: [N] bool, the kept rows; weights: [N] row weights (None: 1 each).
    """
    if not bool(mask.any()):
        return logits.sum() * 0.0
    t = targets[mask].detach().to(logits.dtype)
    ce = -(t * F.log_softmax(logits[mask], dim=1)).sum(1)
    if weights is None:
        return ce.mean()
    w = weights[mask].detach().to(logits.dtype)
    return (w * ce).sum() / w.sum().clamp_min(1e-12)


@MODELS.register_module()
class EvidenceAlignmentLoss(nn.Module):
    """``L = L^{R<-I} + L^{I<-R}`` with soft targets from :class:`EvidencePropagation`.

    ``S = s * H_I H_R^T`` with ``s = 1 / tau_2`` (optionally learnable, clamped to
    ``max_logit_scale``); ``L^{R<-I}`` is the weighted soft cross-entropy of the rows of ``S``
    against ``targets_i2t`` over the kept image rows, ``L^{I<-R}`` that of ``S^T`` against
    ``targets_t2i`` (Eq. 11-12). Computed on the gathered batch (identical on every rank).

    Args:
        tau_2: temperature (0.07).
        learnable_logit_scale: learn ``log(1 / tau_2)``.
        max_logit_scale: upper bound of the inverse temperature (100).
        direction_reduction: ``'sum'`` (Eq. 11) or ``'mean'`` of the two directions.
        loss_weight: ``w_align`` of Eq. 18 (1.0).
    """

    def __init__(self, tau_2: float = 0.07, learnable_logit_scale: bool = False,
                 max_logit_scale: float = 100.0, direction_reduction: str = 'sum',
                 loss_weight: float = 1.0):
        super().__init__()
        if direction_reduction not in DIRECTION_REDUCTIONS:
            raise ValueError(f'EvidenceAlignmentLoss: direction_reduction must be one of '
                             f'{DIRECTION_REDUCTIONS}, got {direction_reduction!r}.')
        self.direction_reduction = direction_reduction
        self.max_logit_scale = max_logit_scale
        self.loss_weight = float(loss_weight)
        scale = torch.tensor(math.log(1.0 / tau_2))
        if learnable_logit_scale:
            self.logit_scale = nn.Parameter(scale)
        else:
            self.register_buffer('logit_scale', scale)

    @float32_forward
    def forward(self, H_I: torch.Tensor, H_R: torch.Tensor,
                targets: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """
        Args:
            H_I: [B_I', d], H_R: [B_R', d] gathered, L2-normalised (Eq. 13-14).
            targets: the output of :class:`EvidencePropagation` (``targets_i2t`` [B_I', B_R'],
                ``mask_i``, ``weights_i``, ``targets_t2i`` [B_R', B_I'], ``mask_t``,
                ``weights_t``).

        Returns:
            dict(loss_align (weighted), align_r_from_i, align_i_from_r, align_logit_scale).
        """
        scale = self.logit_scale.clamp(max=math.log(self.max_logit_scale)).exp()
        logits = scale * H_I @ H_R.t()                                  # [B_I', B_R']
        r_from_i = weighted_soft_cross_entropy(logits, targets['targets_i2t'],
                                               targets['mask_i'], targets.get('weights_i'))
        i_from_r = weighted_soft_cross_entropy(logits.t(), targets['targets_t2i'],
                                               targets['mask_t'], targets.get('weights_t'))
        total = r_from_i + i_from_r
        if self.direction_reduction == 'mean':
            total = total / 2
        return dict(loss_align=self.loss_weight * total, align_r_from_i=r_from_i.detach(),
                    align_i_from_r=i_from_r.detach(), align_logit_scale=scale.detach())

    def extra_repr(self) -> str:
        return (f'direction_reduction={self.direction_reduction!r}, '
                f'max_logit_scale={self.max_logit_scale}, loss_weight={self.loss_weight}')
