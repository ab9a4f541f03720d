"""GLoRIA's global image-report loss (official ``global_loss``; docs/baselines.md)."""
from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

from lgdea.models.losses import symmetric_infonce
from lgdea.models.utils.precision import float32_forward
from lgdea.registry import MODELS

__all__ = ['GLoRIAGlobalLoss']


@MODELS.register_module()
class GLoRIAGlobalLoss(nn.Module):
    """``L_g = CE(S^g, Y) + CE(S^g^T, Y^T)`` with ``S^g_kl = tau3 cos(vbar_k, tbar_l)`` (Eq. G1).

    Eq. 1 (:func:`lgdea.models.losses.symmetric_infonce`) with the two directions **summed**
    (official). ``Y`` are the pair targets of the (gathered) batch; a row with several
    positives (two images of one study) uses the row-normalised soft target. With a fully
    paired batch of distinct studies ``Y = I`` and this is the official cross-entropy with
    ``arange`` labels. The model gathers the batch (``GLoRIA(gather=...)``).

    Args:
        temp3: ``tau3`` (official 10).
    """

    def __init__(self, temp3: float = 10.0):
        super().__init__()
        self.temp3 = float(temp3)

    @float32_forward
    def forward(self, image_embed: torch.Tensor, text_embed: torch.Tensor,
                targets: torch.Tensor, temp3=None) -> Dict[str, torch.Tensor]:
        """
        Args:
            image_embed: [B_I, D] global image embeddings ``vbar`` (any norm).
            text_embed: [B_R, D] sentence embeddings ``tbar`` (any norm).
            targets: ``Y`` [B_I, B_R].
            temp3: optional ``tau3`` of this call (a float or a 0-d tensor, e.g. the model's
                learnable one); None uses ``self.temp3``.

        Returns:
            dict(loss (sum of both directions), loss_i2t, loss_t2i) -- the direction terms are
            for logging (the model renames them so mmengine does not add them twice).
        """
        # cosine similarity (official: dot / clamp(|v| |t|, eps)) times tau3
        scale = self.temp3 if temp3 is None else temp3
        logits = scale * F.normalize(image_embed.float(), dim=-1, eps=1e-8) @ F.normalize(
            text_embed.float(), dim=-1, eps=1e-8).t()
        res = symmetric_infonce(logits, targets, direction_reduction='sum')
        return dict(loss=res['loss'], loss_i2t=res['i2t'].detach(),
                    loss_t2i=res['t2i'].detach())
