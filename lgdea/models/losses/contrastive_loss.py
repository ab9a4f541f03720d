"""Symmetric image-report InfoNCE with pair targets (paper Eq. 1), written once.

Used by CLIP / ConVIRT, CLIP-on-evidence, MGCA's ITA, GLoRIA's global and local losses and
LGDEA's optional ``L_g``; each keeps its official direction reduction through
``direction_reduction``.
"""
from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

from lgdea.models.utils.precision import float32_forward
from lgdea.registry import MODELS

DIRECTION_REDUCTIONS = ('mean', 'sum')


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows with a positive of ``-sum_j t_ij log softmax_j(logits_ij)``, where
    ``t`` is ``targets`` row-normalised. Rows without a positive are ignored (0 if none)."""
    mass = targets.sum(1)
    rows = mass > 0
    if not rows.any():
        return logits.sum() * 0.0
    t = targets[rows] / mass[rows, None]
    return -(t * F.log_softmax(logits[rows], dim=1)).sum(1).mean()


def symmetric_infonce(logits: torch.Tensor, targets: torch.Tensor,
                      direction_reduction: str = 'mean') -> Dict[str, torch.Tensor]:
    """Eq. 1: ``CE(S, Y)`` over image rows and ``CE(S^T, Y^T)`` over report rows.

    Args:
        logits: ``S`` [B_I, B_R] (similarity times inverse temperature).
        targets: ``Y`` [B_I, B_R] (0/1 or soft; several positives per row allowed).
        direction_reduction: ``'mean'`` (CLIP / ConVIRT: half the sum) or ``'sum'`` (MGCA's
            ITA, GLoRIA, the paper's Eq. 1 as written).

    Returns:
        dict(loss, i2t, t2i): the reduced loss and the two direction terms (i2t: rows =
        images).
    """
    if direction_reduction not in DIRECTION_REDUCTIONS:
        raise ValueError(f'direction_reduction must be one of {DIRECTION_REDUCTIONS}, got '
                         f'{direction_reduction!r}.')
    i2t = soft_cross_entropy(logits, targets)
    t2i = soft_cross_entropy(logits.t(), targets.t())
    loss = i2t + t2i
    if direction_reduction == 'mean':
        loss = loss / 2
    return dict(loss=loss, i2t=i2t, t2i=t2i)


@MODELS.register_module()
class ContrastiveLoss(nn.Module):
    """Eq. 1 on L2-normalised embeddings: ``S = s * I @ R^T`` with ``s = exp(logit_scale)``.

    The caller gathers the batch with :func:`lgdea.models.utils.gather_pair_batch` and passes
    its features and targets ``Y`` (several positives per row: two images of one study).

    Args:
        direction_reduction: ``'mean'`` (default, CLIP) or ``'sum'`` of the two directions.
        loss_weight: factor on the returned ``loss``.
    """

    def __init__(self, direction_reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__()
        if direction_reduction not in DIRECTION_REDUCTIONS:
            raise ValueError(f'ContrastiveLoss: direction_reduction must be one of '
                             f'{DIRECTION_REDUCTIONS}, got {direction_reduction!r}.')
        self.direction_reduction = direction_reduction
        self.loss_weight = float(loss_weight)

    @float32_forward
    def forward(self, image_embed: torch.Tensor, report_embed: torch.Tensor,
                logit_scale: torch.Tensor, targets: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            image_embed: [B_I, D] L2-normalised.
            report_embed: [B_R, D] L2-normalised.
            logit_scale: scalar log of the inverse temperature.
            targets: ``Y`` [B_I, B_R].

        Returns:
            dict(loss (weighted), i2t, t2i (detached), acc_i2t, num_pos_rows).
        """
        logits = logit_scale.exp() * image_embed @ report_embed.t()
        res = symmetric_infonce(logits, targets, self.direction_reduction)
        with torch.no_grad():
            rows = targets.sum(1) > 0
            if rows.any():
                top = logits[rows].argmax(1, keepdim=True)
                acc = (targets[rows].gather(1, top).squeeze(1) > 0).float().mean()
            else:
                acc = logits.new_zeros(())
        return dict(loss=self.loss_weight * res['loss'], i2t=res['i2t'].detach(),
                    t2i=res['t2i'].detach(), acc_i2t=acc, num_pos_rows=rows.float().sum())

    def extra_repr(self) -> str:
        return f'direction_reduction={self.direction_reduction!r}, loss_weight={self.loss_weight}'
