"""Image encoders with one output contract: global feature, patch/region features, grid."""
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from lgdea.registry import MODELS
from .speed import compile_options, compiled_module, enable_block_checkpointing


@MODELS.register_module()
class CXRImageEncoder(BaseModule):
    """Wraps any registered backbone (mmpretrain ``VisionTransformer``, ``ResNet``, ...).

    ViT backbones must be built with ``out_type='raw'`` (CLS + patch tokens); CNN backbones
    return a feature map. The wrapper turns either into:

    - ``global`` [B, C]: CLS token (ViT) or the average-pooled feature map (CNN),
    - ``local`` [B, P, C]: patch tokens (ViT) or the flattened feature map (CNN),
    - ``grid`` (h, w): the patch grid, ``P = h * w``.

    Args:
        backbone: config of the backbone (e.g. ``dict(type='mmpretrain.VisionTransformer',
            arch='deit-tiny', img_size=64, patch_size=8, out_type='raw')``).
        checkpoint: optional local checkpoint of the backbone (``init_cfg`` of the backbone
            does the same; this is a shortcut that errors clearly when the file is missing).
        global_pool: for ViT, ``'cls'`` (default) or ``'mean'`` of the patch tokens.
        frozen: freeze the backbone.
        gradient_checkpointing: activation checkpointing of every ViT block in training
            (recompute in backward; less memory, about one more forward of the blocks per
            step; ViT only). Same loss and gradients as without (float32: within 1e-6).
        torch_compile: ``torch.compile`` the backbone: False (default, eager), True (inductor
            defaults) or a dict of ``torch.compile`` arguments (``backend``, ``mode``,
            ``dynamic``, ``fullgraph``, ``options``). Parameters and state-dict keys stay those
            of the eager backbone.
    """

    def __init__(self, backbone: dict, checkpoint: Optional[str] = None,
                 global_pool: str = 'cls', frozen: bool = False,
                 gradient_checkpointing: bool = False,
                 torch_compile: Union[bool, dict] = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        backbone = dict(backbone)
        if checkpoint is not None:
            import os
            if not os.path.isfile(checkpoint):
                raise FileNotFoundError(
                    f'Image encoder checkpoint "{checkpoint}" does not exist. Download the '
                    'starting weights (e.g. an ImageNet ViT-B/16) and convert them with '
                    'tools/convert_vit_ckpt.py, or set image_encoder.checkpoint=None to train '
                    'from scratch on purpose.')
            backbone['init_cfg'] = dict(type='Pretrained', checkpoint=checkpoint)
        self.is_vit = 'VisionTransformer' in str(backbone.get('type', ''))
        if self.is_vit and backbone.get('out_type', 'cls_token') != 'raw':
            raise ValueError('CXRImageEncoder needs the ViT backbone with out_type="raw" '
                             '(CLS and patch tokens).')
        self.backbone = MODELS.build(backbone)
        if global_pool not in ('cls', 'mean'):
            raise ValueError(f'global_pool must be "cls" or "mean", got {global_pool!r}')
        self.global_pool = global_pool
        self.embed_dims = self._infer_dims()
        if frozen:
            for p in self.backbone.parameters():
                p.requires_grad_(False)
        self.gradient_checkpointing = bool(gradient_checkpointing)
        if self.gradient_checkpointing:
            if not self.is_vit:
                raise ValueError('CXRImageEncoder.gradient_checkpointing checkpoints ViT blocks; '
                                 f'the backbone {backbone.get("type")} is not a ViT.')
            enable_block_checkpointing(self.backbone)
        self.compile_options = compile_options(torch_compile, 'CXRImageEncoder')

    def _infer_dims(self) -> int:
        if hasattr(self.backbone, 'embed_dims'):
            return int(self.backbone.embed_dims)
        if hasattr(self.backbone, 'feat_dim'):
            return int(self.backbone.feat_dim)
        # mmpretrain ResNet: channels of the last stage
        if hasattr(self.backbone, 'res_layers'):
            last = getattr(self.backbone, self.backbone.res_layers[-1])
            return int(last[-1].out_channels)
        raise ValueError('Cannot infer the output channels of the backbone; set `embed_dims`.')

    def run_backbone(self, images: torch.Tensor):
        """The backbone's raw output for images [B, C, H, W] (compiled with
        ``torch_compile``)."""
        if self.compile_options is None:
            return self.backbone(images)
        return compiled_module(self, self.backbone, self.compile_options)(images)

    def forward(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """images [B, C, H, W] -> dict(global [B, C], local [B, P, C], grid (h, w))."""
        out = self.run_backbone(images)
        if isinstance(out, (tuple, list)):
            out = out[-1]
        if self.is_vit:
            patch = self.backbone.patch_embed
            stride = patch.projection.stride
            grid = (images.shape[-2] // stride[0], images.shape[-1] // stride[1])
            n_extra = out.shape[1] - grid[0] * grid[1]
            local = out[:, n_extra:]
            glob = out[:, 0] if (self.global_pool == 'cls' and n_extra > 0) else local.mean(1)
            return dict(**{'global': glob}, local=local, grid=grid)
        if out.dim() != 4:
            raise ValueError(f'Expected a feature map [B, C, h, w] from the backbone, got '
                             f'{tuple(out.shape)}')
        b, c, h, w = out.shape
        local = out.flatten(2).transpose(1, 2)
        return dict(**{'global': out.mean((2, 3))}, local=local, grid=(h, w))


@MODELS.register_module()
class TimmImageEncoder(BaseModule):
    """A timm backbone (``pretrained=False``; weights only from a local ``checkpoint``).

    Output contract as :class:`CXRImageEncoder`.
    """

    def __init__(self, model_name: str, checkpoint: Optional[str] = None, in_chans: int = 3,
                 img_size: Optional[int] = None, global_pool: str = 'cls', init_cfg=None,
                 **kwargs):
        super().__init__(init_cfg=init_cfg)
        import timm
        if img_size is not None:
            kwargs['img_size'] = img_size
        self.model = timm.create_model(model_name, pretrained=False, num_classes=0,
                                       in_chans=in_chans, **kwargs)
        if checkpoint is not None:
            import os
            if not os.path.isfile(checkpoint):
                raise FileNotFoundError(f'timm checkpoint "{checkpoint}" does not exist.')
            state = torch.load(checkpoint, map_location='cpu', weights_only=True)
            state = state.get('state_dict', state.get('model', state))
            missing, unexpected = self.model.load_state_dict(state, strict=False)
            self.load_report = dict(missing=missing, unexpected=unexpected)
        self.global_pool = global_pool
        self.embed_dims = self.model.num_features
        self.num_prefix = getattr(self.model, 'num_prefix_tokens', 0)

    def init_weights(self):
        pass

    def forward(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        feats = self.model.forward_features(images)
        if feats.dim() == 4:
            b, c, h, w = feats.shape
            return dict(**{'global': feats.mean((2, 3))}, local=feats.flatten(2).transpose(1, 2),
                        grid=(h, w))
        local = feats[:, self.num_prefix:]
        n = local.shape[1]
        h = int(round(n ** 0.5))
        grid: Tuple[int, int] = (h, n // h)
        glob = feats[:, 0] if (self.num_prefix and self.global_pool == 'cls') else local.mean(1)
        return dict(**{'global': glob}, local=local, grid=grid)
