"""[CLS]->patch attention of a ViT's last block, recomputed from its qkv projection.

mmpretrain's ``MultiheadAttention`` (and timm's ``Attention``) call the fused
``scaled_dot_product_attention`` and never materialise the attention probabilities. MGCA
weights its patch-side token loss by the last block's [CLS]->patch attention
(``attention_map[:, :, 0, 1:].mean(1)`` in the official ViT). A forward hook on the last
block's attention module takes the module's input ``x`` (the block's LayerNorm output) and
recomputes ``softmax(q_cls k^T / sqrt(d_h))`` from the same ``qkv`` weights (Eq. V1); only the
[CLS] row is formed, so the extra cost is one key projection of the last block.
"""
from typing import Optional

import torch
import torch.nn as nn

__all__ = ['ViTCLSAttentionRecorder']


class ViTCLSAttentionRecorder:
    """Records the last block's [CLS]-row attention of a ViT backbone.

    Supports mmpretrain ``VisionTransformer`` (``layers[-1].attn``) and timm
    ``VisionTransformer`` (``blocks[-1].attn``). The recorded tensor is detached (MGCA uses the
    weights under ``no_grad``).

    Usage::

        recorder = ViTCLSAttentionRecorder(vit)
        with recorder.recording():
            vit(images)
        attn = recorder.attention   # [B, heads, N_tokens], row 0 of softmax(q k^T / sqrt(d))

    Args:
        backbone: the ViT.
    """

    def __init__(self, backbone: nn.Module):
        self.backbone = backbone
        self.attn_module = self._last_attention(backbone)
        self.num_heads = int(self.attn_module.num_heads)
        self.num_extra_tokens = self._num_extra_tokens(backbone)
        if self.num_extra_tokens < 1:
            raise ValueError('MGCA patch weights need the [CLS] token: build the ViT with '
                             'with_cls_token=True.')
        self.enabled = False
        self.attention: Optional[torch.Tensor] = None
        self._handle = self.attn_module.register_forward_hook(self._hook)

    @staticmethod
    def _last_attention(backbone: nn.Module) -> nn.Module:
        blocks = getattr(backbone, 'layers', None)
        if blocks is None:
            blocks = getattr(backbone, 'blocks', None)
        if blocks is None or len(blocks) == 0 or not hasattr(blocks[-1], 'attn'):
            raise TypeError(f'{type(backbone).__name__} is not a supported ViT (expected '
                            '`layers[-1].attn` (mmpretrain) or `blocks[-1].attn` (timm)).')
        attn = blocks[-1].attn
        if not (hasattr(attn, 'qkv') and hasattr(attn, 'num_heads')):
            raise TypeError(f'the last block attention {type(attn).__name__} has no fused '
                            '`qkv` projection / `num_heads`; cannot recompute its weights.')
        return attn

    @staticmethod
    def _num_extra_tokens(backbone: nn.Module) -> int:
        if hasattr(backbone, 'num_extra_tokens'):  # mmpretrain
            return int(backbone.num_extra_tokens)
        return int(getattr(backbone, 'num_prefix_tokens', 1))  # timm

    def recording(self):
        """Context manager enabling the hook for the forward passes inside it."""
        recorder = self

        class _Ctx:

            def __enter__(self):
                recorder.enabled = True
                recorder.attention = None
                return recorder

            def __exit__(self, *exc):
                recorder.enabled = False
                return False

        return _Ctx()

    @torch.no_grad()
    def _hook(self, module: nn.Module, args, output) -> None:
        if not self.enabled:
            return
        x = args[0]  # [B, N, C_in], input of the attention module
        self.attention = cls_attention_from_qkv(module, x)

    def patch_attention(self) -> torch.Tensor:
        """Head-mean [CLS]->patch attention [B, P] (extra tokens dropped)."""
        if self.attention is None:
            raise RuntimeError('no attention recorded: run the backbone inside '
                               '`recorder.recording()`.')
        return self.attention[:, :, self.num_extra_tokens:].mean(dim=1)

    def remove(self) -> None:
        self._handle.remove()


def cls_attention_from_qkv(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``softmax(q_0 k^T * scale)`` per head (Eq. V1) -> [B, heads, N].

    ``q_0`` is the [CLS] query; ``q`` and ``k`` come from the module's fused ``qkv`` Linear
    (rows ``[0, C)`` are q, ``[C, 2C)`` k), split into heads of ``d_h = C / heads``; scale is
    ``module.scale`` when present (timm), else ``d_h ** -0.5`` (mmpretrain, which uses
    ``head_dims ** -0.5`` even when ``qk_scale`` is set). timm's optional ``q_norm`` /
    ``k_norm`` are applied.
    """
    qkv: nn.Linear = module.qkv
    b, n, _ = x.shape
    heads = int(module.num_heads)
    dims = qkv.out_features // 3
    head_dims = dims // heads
    w, bias = qkv.weight, qkv.bias
    q = nn.functional.linear(x[:, :1], w[:dims], None if bias is None else bias[:dims])
    k = nn.functional.linear(x, w[dims:2 * dims], None if bias is None else bias[dims:2 * dims])
    q = q.view(b, 1, heads, head_dims).transpose(1, 2)  # [B, H, 1, d]
    k = k.view(b, n, heads, head_dims).transpose(1, 2)  # [B, H, N, d]
    if hasattr(module, 'q_norm'):
        q = module.q_norm(q)
    if hasattr(module, 'k_norm'):
        k = module.k_norm(k)
    scale = float(getattr(module, 'scale', head_dims ** -0.5))
    logits = (q.float() @ k.float().transpose(-2, -1)).squeeze(2) * scale  # [B, H, N]
    return logits.softmax(dim=-1)
