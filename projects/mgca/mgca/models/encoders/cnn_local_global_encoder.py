"""CNN image encoder with local features from an intermediate stage (MGCA / GLoRIA ResNet-50)."""
import os
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule

from lgdea.registry import MODELS

__all__ = ['CNNLocalGlobalEncoder']


@MODELS.register_module()
class CNNLocalGlobalEncoder(BaseModule):
    """ResNet-style backbone -> global feature of the last stage, local features of an earlier one.

    MGCA's ResNet-50 branch (docs/baselines.md 2.3) upsamples the input to 299 x 299 (bilinear,
    ``align_corners=True``), takes ``layer3`` (1024 ch, 19 x 19 = 361 tokens) as the local
    features and the average-pooled ``layer4`` (2048 ch) as the global one. The output contract
    is the one of ``lgdea.models.CXRImageEncoder`` (``global``, ``local``, ``grid``); the local
    width is ``local_dims``.

    Args:
        backbone: config of a multi-stage CNN (e.g. ``dict(type='mmpretrain.ResNet', depth=50)``);
            its ``out_indices`` are set to ``(local_stage, global_stage)``.
        local_stage: stage index of the local features (2 = ``layer3``).
        global_stage: stage index of the global feature (3 = ``layer4``).
        input_size: resize the input to this (h, w) first (MGCA: 299); None keeps it.
        checkpoint: optional local checkpoint of the backbone (torchvision ResNet keys equal
            mmpretrain's, the ``fc`` head is ignored).
        frozen: freeze the backbone.
    """

    def __init__(self, backbone: dict, local_stage: int = 2, global_stage: int = 3,
                 input_size: Optional[Sequence[int]] = (299, 299),
                 checkpoint: Optional[str] = None, frozen: bool = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if not 0 <= local_stage < global_stage:
            raise ValueError(f'need 0 <= local_stage < global_stage, got {local_stage}, '
                             f'{global_stage}')
        backbone = dict(backbone, out_indices=(local_stage, global_stage))
        if checkpoint is not None:
            if not os.path.isfile(checkpoint):
                raise FileNotFoundError(
                    f'Image encoder checkpoint "{checkpoint}" does not exist. Download the '
                    'ImageNet ResNet-50 weights once and point `image_encoder.checkpoint` at the '
                    'local file, or set it to None to train from scratch on purpose.')
            backbone['init_cfg'] = dict(type='Pretrained', checkpoint=checkpoint)
        self.backbone = MODELS.build(backbone)
        self.input_size = tuple(input_size) if input_size is not None else None
        self.local_dims = self._stage_channels(local_stage)
        self.embed_dims = self._stage_channels(global_stage)
        if frozen:
            for p in self.backbone.parameters():
                p.requires_grad_(False)

    def _stage_channels(self, stage: int) -> int:
        layers = getattr(self.backbone, 'res_layers', None)
        if layers is None or stage >= len(layers):
            raise ValueError(f'{type(self.backbone).__name__} has no stage {stage} '
                             '(expected an mmpretrain ResNet-style backbone with `res_layers`).')
        last = getattr(self.backbone, layers[stage])[-1]
        return int(last.out_channels)

    def forward(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """images [B, C, H, W] -> dict(global [B, C_g], local [B, h*w, C_l], grid (h, w))."""
        if self.input_size is not None and tuple(images.shape[-2:]) != self.input_size:
            images = F.interpolate(images, size=self.input_size, mode='bilinear',
                                   align_corners=True)
        local_map, global_map = self.backbone(images)
        b, c, h, w = local_map.shape
        local = local_map.flatten(2).transpose(1, 2).contiguous()
        return dict(**{'global': global_map.mean(dim=(2, 3))}, local=local, grid=(h, w))
