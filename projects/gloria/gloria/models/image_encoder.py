"""GLoRIA's image encoder (official ``ImageEncoder``, refs. 1.3) on lgdea's CXRImageEncoder."""
from typing import Dict, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from lgdea.models.encoders import CXRImageEncoder
from lgdea.registry import MODELS

__all__ = ['GLoRIAImageEncoder']


@MODELS.register_module()
class GLoRIAImageEncoder(BaseModule):
    """Global and local image features projected to the joint space.

    - ResNet (``mmpretrain.ResNet`` with ``out_indices=(2, 3)``): local features = ``layer3``
      (1024 x 19 x 19 for ResNet-50 at 299 px), global feature = average-pooled ``layer4``
      (2048-d).
    - ViT (``mmpretrain.VisionTransformer``, ``out_type='raw'``): local features = the patch
      tokens on their grid, global feature = the CLS token (the variant on LGDEA's backbone).

    Projections (official names): ``global_embedder`` = ``Linear(C_g, D)``,
    ``local_embedder`` = ``Conv2d(C_l, D, 1, bias=False)`` (Eq. I1). No L2 normalisation.

    Args:
        backbone: backbone config (see above).
        embed_dims: ``D`` (official 768 = the BERT width).
        input_size: every input is resized to ``input_size x input_size`` (bilinear,
            ``align_corners=True``) before the backbone, as the official ResNet forward does
            with 299; None keeps the input size (ViT).
        checkpoint: optional local starting weights of the backbone (torchvision ResNet-50
            ImageNet weights load directly into ``mmpretrain.ResNet``).
        frozen: freeze the backbone (not the projections).
        gradient_checkpointing, torch_compile: of the backbone, as in
            :class:`~lgdea.models.encoders.CXRImageEncoder` (checkpointing: ViT only).
    """

    def __init__(self, backbone: dict, embed_dims: int = 768, input_size: Optional[int] = 299,
                 checkpoint: Optional[str] = None, frozen: bool = False,
                 gradient_checkpointing: bool = False,
                 torch_compile: Union[bool, dict] = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.encoder = CXRImageEncoder(backbone=backbone, checkpoint=checkpoint, frozen=frozen,
                                       gradient_checkpointing=gradient_checkpointing,
                                       torch_compile=torch_compile)
        bb = self.encoder.backbone
        if self.encoder.is_vit:
            local_dims = global_dims = int(bb.embed_dims)
        elif hasattr(bb, 'res_layers'):
            out_indices = tuple(getattr(bb, 'out_indices', ()))
            if len(out_indices) != 2 or out_indices[1] != out_indices[0] + 1:
                raise ValueError(
                    'GLoRIAImageEncoder needs the ResNet with two consecutive output stages '
                    f'(local, global), e.g. out_indices=(2, 3); got out_indices={out_indices}.')
            local_dims = int(getattr(bb, bb.res_layers[out_indices[0]])[-1].out_channels)
            global_dims = int(getattr(bb, bb.res_layers[out_indices[1]])[-1].out_channels)
        else:
            raise ValueError(f'GLoRIAImageEncoder supports mmpretrain ResNet and '
                             f'VisionTransformer backbones, got {type(bb).__name__}')
        self.input_size = None if input_size is None else int(input_size)
        self.embed_dims = int(embed_dims)
        self.probe_dims = global_dims
        self.global_embedder = nn.Linear(global_dims, embed_dims)
        self.local_embedder = nn.Conv2d(local_dims, embed_dims, kernel_size=1, stride=1,
                                        padding=0, bias=False)

    def backbone_features(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """images [B, C, H, W] -> dict(global [B, C_g], local_map [B, C_l, h, w])."""
        if self.input_size is not None and tuple(images.shape[-2:]) != (self.input_size, ) * 2:
            images = F.interpolate(images, size=(self.input_size, self.input_size),
                                   mode='bilinear', align_corners=True)
        if self.encoder.is_vit:
            feats = self.encoder(images)
            h, w = feats['grid']
            local_map = feats['local'].transpose(1, 2).reshape(images.shape[0], -1, h, w)
            return dict(**{'global': feats['global']}, local_map=local_map)
        local_map, last = self.encoder.run_backbone(images)
        return dict(**{'global': last.mean((2, 3))}, local_map=local_map)

    def forward(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Returns:
            dict(global [B, C_g] (pooled layer4 / CLS: the linear-probe feature),
            global_embed [B, D], local_embed [B, h*w, D] (row-major), grid (h, w)).
        """
        feats = self.backbone_features(images)
        local = self.local_embedder(feats['local_map'])  # (I1) 1x1 conv
        h, w = local.shape[-2:]
        return dict(**{'global': feats['global']},
                    global_embed=self.global_embedder(feats['global']),
                    local_embed=local.flatten(2).transpose(1, 2), grid=(int(h), int(w)))
