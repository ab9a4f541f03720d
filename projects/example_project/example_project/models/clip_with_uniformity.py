"""A new method in a few lines: the CLIP baseline plus one extra registered loss term."""
from typing import Dict, Optional

import torch

from lgdea.models import CLIPBaseline
from lgdea.registry import MODELS

__all__ = ['CLIPWithUniformityLoss']


@MODELS.register_module()
class CLIPWithUniformityLoss(CLIPBaseline):
    """``L = L_CLIP + w_unif L_unif(I)``: CLIP with a uniformity term on the image embeddings.

    Everything else (encoders, projections, the inference interface used by every metric)
    is inherited from :class:`lgdea.models.CLIPBaseline`.

    Args:
        uniformity_loss: config of the extra loss (default :class:`UniformityLoss`).
        uniformity_weight: ``w_unif``.
        **kwargs: the arguments of :class:`CLIPBaseline`.
    """

    def __init__(self, uniformity_loss: Optional[dict] = None, uniformity_weight: float = 0.1,
                 **kwargs):
        super().__init__(**kwargs)
        self.uniformity_loss = MODELS.build(uniformity_loss or dict(type='UniformityLoss'))
        self.uniformity_weight = float(uniformity_weight)
        self._train_image_embed: Optional[torch.Tensor] = None

    def extract_image(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        feats = super().extract_image(images)
        if self.training:  # keep the embeddings of the loss pass: no second forward
            self._train_image_embed = feats['embed']
        return feats

    def loss(self, images, data_samples, reports) -> Dict[str, torch.Tensor]:
        losses = super().loss(images, data_samples, reports)  # loss_contrastive, acc_i2t, ...
        embed, self._train_image_embed = self._train_image_embed, None
        if embed is None:
            raise RuntimeError('CLIPWithUniformityLoss.loss must run in train mode '
                               '(model.train()).')
        # every key containing 'loss' is summed by mmengine's parse_losses
        losses['loss_uniformity'] = self.uniformity_weight * self.uniformity_loss(embed)
        return losses
