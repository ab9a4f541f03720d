"""GLoRIA's global image-report loss (official ``global_loss``, refs. 1.5)."""
from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

from lgdea.models.losses import soft_cross_entropy
from lgdea.models.utils import build_pair_targets
from lgdea.registry import MODELS
from lgdea.utils.dist import gather_features, loss_scale_for_gather, scale_gradient

__all__ = ['GLoRIAGlobalLoss']


@MODELS.register_module()
class GLoRIAGlobalLoss(nn.Module):
    """``L_g = CE(S^g, Y) + CE(S^g^T, Y^T)`` with ``S^g_kl = tau3 cos(vbar_k, tbar_l)`` (Eq. G1).

    The two directions are **summed** (official). ``Y`` are the pair targets of the batch
    (study ids, :func:`lgdea.models.utils.build_pair_targets`); a row with several positives
    (two images of one study) uses the row-normalised soft target. With a fully paired batch of
    distinct studies ``Y = I`` and this is the official cross-entropy with ``arange`` labels.

    Args:
        temp3: ``tau3`` (official 10).
        gather: gather embeddings and study keys across ranks (gradient to the local slice,
            loss gradient scaled by the world size; a no-op on one process). The official code
            ran single-GPU ``dp``.
    """

    def __init__(self, temp3: float = 10.0, gather: bool = True):
        super().__init__()
        self.temp3 = float(temp3)
        self.gather = gather

    def forward(self, image_embed: torch.Tensor, text_embed: torch.Tensor,
                image_keys: torch.Tensor, image_paired: torch.Tensor, text_keys: torch.Tensor,
                text_paired: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            image_embed: [B_I, D] global image embeddings ``vbar`` (any norm).
            text_embed: [B_R, D] sentence embeddings ``tbar`` (any norm).
            image_keys, image_paired, text_keys, text_paired: study keys [B] int64 and paired
                flags [B] bool (``lgdea.models.utils.study_keys`` / ``paired_flags``).

        Returns:
            dict(loss (sum of both directions), loss_i2t, loss_t2i) -- the direction terms are
            for logging (the model renames them so mmengine does not add them twice).
        """
        scale = 1.0
        if self.gather:
            image_embed = gather_features(image_embed)
            text_embed = gather_features(text_embed)
            image_keys = gather_features(image_keys)
            image_paired = gather_features(image_paired.long()).bool()
            text_keys = gather_features(text_keys)
            text_paired = gather_features(text_paired.long()).bool()
            scale = loss_scale_for_gather()
        y = build_pair_targets(image_keys, image_paired, text_keys, text_paired)
        # cosine similarity (official: dot / clamp(|v| |t|, eps)) times tau3
        logits = self.temp3 * F.normalize(image_embed.float(), dim=-1, eps=1e-8) @ F.normalize(
            text_embed.float(), dim=-1, eps=1e-8).t()
        loss_i2t = soft_cross_entropy(logits, y)  # official loss0: rows = images
        loss_t2i = soft_cross_entropy(logits.t(), y.t())  # official loss1: rows = texts
        loss = scale_gradient(loss_i2t + loss_t2i, scale)
        return dict(loss=loss, loss_i2t=loss_i2t.detach(), loss_t2i=loss_t2i.detach())
