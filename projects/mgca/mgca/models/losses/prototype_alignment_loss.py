"""MGCA cross-modal prototype alignment (CPA) with Sinkhorn-Knopp codes (docs/baselines.md 2.6)."""
from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

from lgdea.models.utils.precision import float32_forward
from lgdea.registry import MODELS
from ..utils.sinkhorn import sinkhorn_knopp

__all__ = ['PrototypeAlignmentLoss']


@MODELS.register_module()
class PrototypeAlignmentLoss(nn.Module):
    """Swapped prototype prediction between the image and the report of a pair.

    Prototypes ``C`` [K, D] (``prototype_layer``, a bias-free Linear as in the official code)
    are re-normalised to unit rows before every forward (no gradient), so the scores are
    cosines::

        z^I = C u^I,  z^T = C u^T                                  # [B, K]       (Eq. C1)
        Q^I = Sinkhorn(z^I; epsilon, n_iter), Q^T likewise         # codes, no grad (Eq. C2)
        P^I = softmax(z^I / tau_p),  P^T likewise                                   (Eq. C3)
        L_CPA = 1/2 [ -(1/B) sum_b Q^I_b . log P^T_b  -(1/B) sum_b Q^T_b . log P^I_b ]  (Eq. C4)

    The prototypes stay at their random init during the first epoch
    (``MGCAPrototypeFreezeHook``); the encoders get the CPA gradient from step 0.

    Args:
        embed_dims: ``D``.
        num_prototypes: ``K`` (500).
        temperature: ``tau_p`` (0.2).
        epsilon: Sinkhorn regularisation (0.05).
        sinkhorn_iterations: 3.
        distributed_sinkhorn: all-reduce the Sinkhorn sums across ranks (the official runs
            are per rank: default False).
    """

    #: The prototypes are re-normalised in place at every forward: under FSDP they stay whole
    #: on every rank (lgdea.engine.runner.strategies.VLFullyShardedDataParallel).
    replicate_under_fsdp = True

    def __init__(self, embed_dims: int = 128, num_prototypes: int = 500,
                 temperature: float = 0.2, epsilon: float = 0.05,
                 sinkhorn_iterations: int = 3, distributed_sinkhorn: bool = False):
        super().__init__()
        self.prototype_layer = nn.Linear(embed_dims, num_prototypes, bias=False)
        self.temperature = temperature
        self.epsilon = epsilon
        self.sinkhorn_iterations = sinkhorn_iterations
        self.distributed_sinkhorn = distributed_sinkhorn

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        """Project the prototype rows back onto the unit sphere (in place)."""
        w = self.prototype_layer.weight
        w.copy_(F.normalize(w, dim=1))

    @float32_forward
    def forward(self, image_embed: torch.Tensor,
                report_embed: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            image_embed: [B, D] L2-normalised global image embeddings.
            report_embed: [B, D] L2-normalised global report embeddings (row b pairs image b).

        Returns:
            dict(loss, loss_i2t, loss_t2i, code_perplexity); ``code_perplexity`` is exp of the
            entropy of the batch-mean image code (a prototype-usage diagnostic, not a loss).
        """
        if image_embed.shape != report_embed.shape:
            raise ValueError(f'CPA pairs image b with report b: got {tuple(image_embed.shape)} '
                             f'and {tuple(report_embed.shape)}')
        self.normalize_prototypes()
        img_scores = self.prototype_layer(image_embed)
        rep_scores = self.prototype_layer(report_embed)
        with torch.no_grad():
            img_code = sinkhorn_knopp(img_scores, self.epsilon, self.sinkhorn_iterations,
                                      self.distributed_sinkhorn)
            rep_code = sinkhorn_knopp(rep_scores, self.epsilon, self.sinkhorn_iterations,
                                      self.distributed_sinkhorn)
        img_logp = F.log_softmax(img_scores.float() / self.temperature, dim=1)
        rep_logp = F.log_softmax(rep_scores.float() / self.temperature, dim=1)
        loss_i2t = -(img_code * rep_logp).sum(dim=1).mean()
        loss_t2i = -(rep_code * img_logp).sum(dim=1).mean()
        with torch.no_grad():
            usage = img_code.mean(0)
            perplexity = torch.exp(-(usage * usage.clamp_min(1e-12).log()).sum())
        return dict(loss=0.5 * (loss_i2t + loss_t2i), loss_i2t=loss_i2t, loss_t2i=loss_t2i,
                    code_perplexity=perplexity)
