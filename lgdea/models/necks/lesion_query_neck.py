"""Lesion queries over patch tokens (paper Eq. 14, docs/method.md "Lesion-level visual
evidence").

Shapes: ``B`` images, ``P`` patch tokens of width ``d_v``, ``L`` lesion queries, evidence space
of width ``d``, ``K`` prototypes.
"""
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from lgdea.registry import MODELS


ATTENTION_IMPLS = ('sdpa', 'explicit')


class LesionAttention(nn.Module):
    """Multi-head attention, fused (``F.scaled_dot_product_attention``) or explicit.

    ``competition='none'``: softmax over the keys (standard attention).
    ``competition='slot'``: softmax over the *queries* (each key distributes itself over the
    queries, so queries compete for patches), then each query's weights are renormalised over
    the keys (slot attention, Locatello et al. 2020), so rows still sum to 1 over keys.

    The fused kernel computes softmax over the keys without materialising the weights, so it
    runs when ``impl='sdpa'``, ``competition='none'`` and the weights are not asked for
    (``need_weights=False``); otherwise the explicit path forms the weights.

    Args:
        embed_dims: width of queries and of the output.
        num_heads: number of heads (must divide ``embed_dims``).
        kv_dims: width of keys/values (defaults to ``embed_dims``).
        slot_eps: added to the query-axis softmax before renormalising over keys.
        impl: ``'sdpa'`` (fused where possible) or ``'explicit'`` (always the explicit path).
    """

    def __init__(self, embed_dims: int, num_heads: int, kv_dims: Optional[int] = None,
                 slot_eps: float = 1e-8, impl: str = 'sdpa'):
        super().__init__()
        if embed_dims % num_heads != 0:
            raise ValueError(f'LesionQueryNeck: num_heads={num_heads} must divide the lesion '
                             f'embedding width {embed_dims} (in_dims).')
        if impl not in ATTENTION_IMPLS:
            raise ValueError(f'LesionQueryNeck: attention_impl must be one of {ATTENTION_IMPLS}, '
                             f'got {impl!r}.')
        kv_dims = kv_dims or embed_dims
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.slot_eps = slot_eps
        self.impl = impl
        self.q_proj = nn.Linear(embed_dims, embed_dims)
        self.k_proj = nn.Linear(kv_dims, embed_dims)
        self.v_proj = nn.Linear(kv_dims, embed_dims)
        self.out_proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: torch.Tensor, context: torch.Tensor,
                key_padding_mask: Optional[torch.Tensor] = None,
                competition: str = 'none', need_weights: bool = True
                ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """
        Args:
            x: [B, Lq, D] queries.
            context: [B, Lk, D_kv] keys/values.
            key_padding_mask: [B, Lk] bool, True = padding (ignored key).
            competition: ``'none'`` or ``'slot'``.
            need_weights: return the attention weights (explicit path).

        Returns:
            out [B, Lq, D], weights [B, heads, Lq, Lk] (rows sum to 1 over Lk) or None when
            not asked for.
        """
        if competition not in ('none', 'slot'):
            raise ValueError(f'LesionQueryNeck: attention_competition must be "none" or "slot", '
                             f'got {competition!r}.')
        b, lq, _ = x.shape
        lk = context.shape[1]
        h, dh = self.num_heads, self.head_dims
        q = self.q_proj(x).view(b, lq, h, dh).transpose(1, 2)          # [B, h, Lq, dh]
        k = self.k_proj(context).view(b, lk, h, dh).transpose(1, 2)    # [B, h, Lk, dh]
        v = self.v_proj(context).view(b, lk, h, dh).transpose(1, 2)
        if self.impl == 'sdpa' and competition == 'none' and not need_weights:
            mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            return self.out_proj(out.transpose(1, 2).reshape(b, lq, h * dh)), None
        logits = q @ k.transpose(-1, -2) / math.sqrt(dh)               # [B, h, Lq, Lk]
        if competition == 'none':
            if key_padding_mask is not None:
                logits = logits.masked_fill(key_padding_mask[:, None, None, :], float('-inf'))
            weights = logits.softmax(dim=-1)
        else:
            a = logits.softmax(dim=-2) + self.slot_eps                  # over queries
            if key_padding_mask is not None:
                a = a.masked_fill(key_padding_mask[:, None, None, :], 0.0)
            weights = a / a.sum(dim=-1, keepdim=True)
        out = (weights @ v).transpose(1, 2).reshape(b, lq, h * dh)
        return self.out_proj(out), (weights if need_weights else None)


class LesionDecoderLayer(nn.Module):
    """Pre-LN decoder layer: query self-attention -> cross-attention over patches -> FFN.

    ``x = x + SA(LN(x))``; ``x = [x +] CA(LN(x), LN(patches))``; ``x = x + FFN(LN(x))``.
    Without ``query_residual`` the cross-attention output replaces the stream, so what follows
    is built from the image's patch values only (``v_l = Attn(q_l, I^l, I^l)``).
    """

    def __init__(self, embed_dims: int, num_heads: int, ffn_ratio: float = 4.0,
                 dropout: float = 0.0, query_residual: bool = True,
                 attention_competition: str = 'none', attention_impl: str = 'sdpa'):
        super().__init__()
        self.query_residual = query_residual
        self.attention_competition = attention_competition
        self.norm_sa = nn.LayerNorm(embed_dims)
        self.self_attn = LesionAttention(embed_dims, num_heads, impl=attention_impl)
        self.norm_q = nn.LayerNorm(embed_dims)
        self.norm_kv = nn.LayerNorm(embed_dims)
        self.cross_attn = LesionAttention(embed_dims, num_heads, impl=attention_impl)
        self.norm_ffn = nn.LayerNorm(embed_dims)
        hidden = int(embed_dims * ffn_ratio)
        self.ffn = nn.Sequential(nn.Linear(embed_dims, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, embed_dims))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, patches: torch.Tensor,
                key_padding_mask: Optional[torch.Tensor] = None, need_weights: bool = False
                ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """x [B, L, D], patches [B, P, D] -> x [B, L, D], cross weights [B, heads, L, P] (None
        unless ``need_weights``)."""
        y = self.norm_sa(x)
        x = x + self.dropout(self.self_attn(y, y, need_weights=False)[0])
        ca, weights = self.cross_attn(self.norm_q(x), self.norm_kv(patches), key_padding_mask,
                                      competition=self.attention_competition,
                                      need_weights=need_weights)
        ca = self.dropout(ca)
        x = x + ca if self.query_residual else ca
        x = x + self.dropout(self.ffn(self.norm_ffn(x)))
        return x, weights


@MODELS.register_module()
class LesionQueryNeck(BaseModule):
    """L learnable lesion queries attending over patch tokens (lesion embeddings, Eq. 14).

    - ``v_l = Attn(q_l, I^l, I^l)``: ``num_layers`` pre-LN decoder layers and a final
      LayerNorm -> ``v`` [B, L, d_v].
    - ``attn`` [B, L, P], only with ``return_attn=True`` (the lesion grounding maps ask for
      it; training never does): head-mean of the last layer's cross-attention weights (rows
      sum to 1 over the patches; padded patches get 0).
    - ``phi(v_l)`` [B, L, d]: linear (or 2-layer MLP) ``d_v -> d``, L2-normalised.
    - ``H_I = normalize(mean_l phi(v_l))`` [B, d] (Eq. 14).

    ``Q_I`` and ``Qbar_I`` (Eq. 6-7) are the prototype head's
    (:meth:`DiagnosticPrototypeHead.image_distribution` of ``phi``).

    Args:
        in_dims: patch-token width ``d_v`` (768 for ViT-B/16).
        embed_dims: evidence-space width ``d`` (256).
        num_queries: ``L`` (64).
        num_layers: decoder layers (1).
        num_heads: attention heads (8).
        ffn_ratio: FFN hidden width / ``d_v`` (4).
        dropout: dropout in the decoder (0).
        query_init_std: std of the Gaussian query init (0.02, paper-faithful; a small init
            gives near-uniform attention and identical lesions, docs/design_lessons.md).
        query_residual: keep the query residual around the cross-attention (True, standard
            decoder). False makes ``v_l`` built from the image's patch values only.
        attention_competition: ``'none'`` (softmax over patches, paper) or ``'slot'`` (softmax
            over the queries, then renormalised over patches: lesions compete for patches).
        phi: ``'linear'`` or ``'mlp'`` (Linear-GELU-Linear).
        attention_impl: ``'sdpa'`` (default): the softmax-over-patches attentions run as
            ``F.scaled_dot_product_attention`` (fused kernels on a GPU), except the last
            cross-attention when ``attn`` is asked for and the slot cross-attention, whose
            softmax is over the queries; ``'explicit'``: every attention forms its weights.
            Both give the same outputs (float32: within 1e-5 absolute).
    """

    def __init__(self,
                 in_dims: int = 768,
                 embed_dims: int = 256,
                 num_queries: int = 64,
                 num_layers: int = 1,
                 num_heads: int = 8,
                 ffn_ratio: float = 4.0,
                 dropout: float = 0.0,
                 query_init_std: float = 0.02,
                 query_residual: bool = True,
                 attention_competition: str = 'none',
                 phi: str = 'linear',
                 attention_impl: str = 'sdpa',
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if attention_competition not in ('none', 'slot'):
            raise ValueError('LesionQueryNeck: attention_competition must be "none" or "slot", '
                             f'got {attention_competition!r}.')
        if num_layers < 1 or num_queries < 1:
            raise ValueError(f'LesionQueryNeck: num_layers ({num_layers}) and num_queries '
                             f'({num_queries}) must be >= 1.')
        self.in_dims = in_dims
        self.embed_dims = embed_dims
        self.num_queries = num_queries
        self.query_residual = query_residual
        self.attention_competition = attention_competition
        self.attention_impl = attention_impl
        self.queries = nn.Parameter(torch.randn(num_queries, in_dims) * query_init_std)
        self.layers = nn.ModuleList([
            LesionDecoderLayer(in_dims, num_heads, ffn_ratio, dropout, query_residual,
                               attention_competition, attention_impl)
            for _ in range(num_layers)
        ])
        self.norm_out = nn.LayerNorm(in_dims)
        if phi == 'linear':
            self.phi = nn.Linear(in_dims, embed_dims)
        elif phi == 'mlp':
            self.phi = nn.Sequential(nn.Linear(in_dims, in_dims), nn.GELU(),
                                     nn.Linear(in_dims, embed_dims))
        else:
            raise ValueError(f'LesionQueryNeck: phi must be "linear" or "mlp", got {phi!r}.')

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """``normalize(phi(x))`` [..., d] for lesion (or patch) features ``x`` [..., d_v]."""
        return F.normalize(self.phi(x), dim=-1)

    def forward(self, patch_tokens: torch.Tensor,
                key_padding_mask: Optional[torch.Tensor] = None,
                return_attn: bool = False) -> Dict[str, torch.Tensor]:
        """
        Args:
            patch_tokens: [B, P, d_v] patch embeddings ``I^l`` (no CLS token).
            key_padding_mask: [B, P] bool, True = padding patch (ignored).
            return_attn: also return ``attn`` (the last cross-attention's weights are then
                formed explicitly).

        Returns:
            dict(v [B, L, d_v], phi [B, L, d], H_I [B, d]) and, with ``return_attn``,
            attn [B, L, P].
        """
        if patch_tokens.dim() != 3 or patch_tokens.shape[-1] != self.in_dims:
            raise ValueError(f'LesionQueryNeck: patch_tokens must be [B, P, {self.in_dims}] '
                             f'(in_dims), got {tuple(patch_tokens.shape)}; pass the patch '
                             'tokens of the image encoder without the CLS token.')
        b, p, _ = patch_tokens.shape
        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (b, p):
                raise ValueError(f'LesionQueryNeck: key_padding_mask must be [B, P]=({b}, {p}), '
                                 f'got {tuple(key_padding_mask.shape)}.')
            key_padding_mask = key_padding_mask.bool()
            if bool(key_padding_mask.all(dim=1).any()):
                raise ValueError('LesionQueryNeck: an image has every patch masked out in '
                                 'key_padding_mask; at least one patch must be valid.')
        x = self.queries[None].expand(b, -1, -1)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x, weights = layer(x, patch_tokens, key_padding_mask,
                               need_weights=return_attn and i == last)
        v = self.norm_out(x)
        phi_v = self.project(v)
        h_i = F.normalize(phi_v.mean(dim=1), dim=-1)
        out = dict(v=v, phi=phi_v, H_I=h_i)
        if return_attn:
            out['attn'] = weights.mean(dim=1)
        return out

    def extra_repr(self) -> str:
        return (f'L={self.num_queries}, d_v={self.in_dims}, d={self.embed_dims}, '
                f'query_residual={self.query_residual}, '
                f'attention_competition={self.attention_competition!r}, '
                f'attention_impl={self.attention_impl!r}')
