"""GLoRIA's local (word-region attention) loss (official ``local_loss``; docs/baselines.md)."""
from typing import Dict

import torch
import torch.nn as nn

from lgdea.models.losses import symmetric_infonce
from lgdea.models.utils.precision import float32_forward
from lgdea.registry import MODELS
from .attention import check_variant, local_scores

__all__ = ['GLoRIALocalLoss']


@MODELS.register_module()
class GLoRIALocalLoss(nn.Module):
    """``L_l = CE(S^l, Y) + CE(S^l^T, Y^T)`` with ``S^l_kl = tau3 R(k, l)`` (Eq. L1).

    ``R(k, l)`` is the attention-weighted word-region score of image ``k`` and text ``l``
    (:func:`local_scores`, Eq. A1-A5): official double softmax with ``tau1``, log-sum-exp over
    words with ``tau2``; ``variant='clean'`` uses the paper's single softmax and ``1 / tau2``
    power. Eq. 1 (:func:`lgdea.models.losses.symmetric_infonce`) with both directions summed
    (official). It is computed per rank (O(B^2 T M)) on the local targets, as the official
    code does.

    Args:
        temp1, temp2, temp3: ``tau1`` = 4, ``tau2`` = 5, ``tau3`` = 10 (official).
        variant: ``'official'`` or ``'clean'``.
        word_reduce: ``'sum'`` (official ``agg='sum'``) or ``'mean'``.
    """

    def __init__(self, temp1: float = 4.0, temp2: float = 5.0, temp3: float = 10.0,
                 variant: str = 'official', word_reduce: str = 'sum'):
        super().__init__()
        if word_reduce not in ('sum', 'mean'):
            raise ValueError(f'GLoRIALocalLoss.word_reduce must be "sum" or "mean", got '
                             f'{word_reduce!r}')
        self.temp1, self.temp2, self.temp3 = float(temp1), float(temp2), float(temp3)
        self.variant = check_variant(variant)
        self.word_reduce = word_reduce

    @float32_forward
    def forward(self, regions: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor,
                targets: torch.Tensor, temp3=None) -> Dict[str, torch.Tensor]:
        """
        Args:
            regions: [B_I, M, D] projected region features (``local_embedder`` output).
            words: [B_R, T, D] word features.
            word_mask: [B_R, T] bool, the words of the loss (official: ``[CLS]`` + words,
                ``[SEP]`` excluded).
            targets: ``Y`` [B_I, B_R] of the local batch.
            temp3: optional ``tau3`` of this call (float or 0-d tensor); None: ``self.temp3``.

        Returns:
            dict(loss, loss_i2t, loss_t2i) as :class:`GLoRIAGlobalLoss`.
        """
        r = local_scores(regions, words, word_mask, temp1=self.temp1, temp2=self.temp2,
                         variant=self.variant, word_reduce=self.word_reduce)  # [B_I, B_R]
        logits = (self.temp3 if temp3 is None else temp3) * r  # similarities * temp3
        res = symmetric_infonce(logits, targets, direction_reduction='sum')  # loss0 + loss1
        return dict(loss=res['loss'], loss_i2t=res['i2t'].detach(),
                    loss_t2i=res['t2i'].detach())
