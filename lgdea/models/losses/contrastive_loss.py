"""Global image-report contrastive loss (CLIP / ConVIRT, paper Eq. 1) with pair targets."""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from lgdea.registry import MODELS
from lgdea.utils.dist import gather_features, loss_scale_for_gather
from ..utils.pairing import build_pair_targets


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows with a positive of ``-sum_j t_ij log softmax_j(logits_ij)``, where
    ``t`` is ``targets`` row-normalised. Rows without a positive are ignored (0 if none)."""
    mass = targets.sum(1)
    rows = mass > 0
    if not rows.any():
        return logits.sum() * 0.0
    t = targets[rows] / mass[rows, None]
    return -(t * F.log_softmax(logits[rows], dim=1)).sum(1).mean()


@MODELS.register_module()
class ContrastiveLoss(nn.Module):
    """Symmetric InfoNCE between image and report embeddings.

    ``logits = s * I @ R^T`` with ``s = exp(logit_scale)``; targets ``Y`` (from study ids and
    paired flags) allow several positives per row (two images of one study). Features are
    gathered across ranks with the gradient into the local slice multiplied by the world size,
    so DDP's averaged gradient equals the single-process one (``gather_features``).

    Args:
        gather: gather features across ranks (default True; MGCA's official default is off).
    """

    def __init__(self, gather: bool = True):
        super().__init__()
        self.gather = gather

    def forward(self, image_embed: torch.Tensor, report_embed: torch.Tensor,
                logit_scale: torch.Tensor, image_keys: torch.Tensor, image_paired: torch.Tensor,
                report_keys: torch.Tensor,
                report_paired: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            image_embed: [B_I, D] L2-normalised.
            report_embed: [B_R, D] L2-normalised.
            logit_scale: scalar log of the inverse temperature.
            image_keys, image_paired, report_keys, report_paired: see build_pair_targets.
        """
        if self.gather:
            scale = loss_scale_for_gather()
            image_embed = gather_features(image_embed, grad_scale=scale)
            report_embed = gather_features(report_embed, grad_scale=scale)
            image_keys = gather_features(image_keys)
            image_paired = gather_features(image_paired.long()).bool()
            report_keys = gather_features(report_keys)
            report_paired = gather_features(report_paired.long()).bool()
        y = build_pair_targets(image_keys, image_paired, report_keys, report_paired)
        logits = logit_scale.exp() * image_embed @ report_embed.t()
        loss_i2t = soft_cross_entropy(logits, y)
        loss_t2i = soft_cross_entropy(logits.t(), y.t())
        loss = 0.5 * (loss_i2t + loss_t2i)
        with torch.no_grad():
            rows = y.sum(1) > 0
            acc = ((y[rows].argmax(1) == logits[rows].argmax(1)) |
                   (y[rows].gather(1, logits[rows].argmax(1, keepdim=True)).squeeze(1) > 0)
                   ).float().mean() if rows.any() else logits.new_zeros(())
        return dict(loss=loss, acc_i2t=acc, num_pos_rows=rows.float().sum())
