"""Key map of the official MGCA release (Lightning ``state_dict``) -> :class:`MGCA`.

Official names (``mgca/models/mgca/mgca_module.py``, ``backbones/encoder.py``; docs/baselines.md
2.1, 2.3)::

    img_encoder_q.model.<timm ViT key>          -> image_encoder.backbone.<mmpretrain ViT key>
    img_encoder_q.model.<torchvision R50 key>   -> image_encoder.backbone.<same key>
    img_encoder_q.global_embed.head.*           -> image_global_embed.head.*
    img_encoder_q.local_embed.head.*            -> image_local_embed.head.*
    text_encoder_q.model.<BLIP med BERT key>    -> text_encoder.model.<HF BERT key>
    text_encoder_q.global_embed.head.*          -> text_global_embed.head.*
    text_encoder_q.local_embed.head.*           -> text_local_embed.head.*
    prototype_layer.weight                      -> cpa_loss.prototype_layer.weight

timm ViT -> mmpretrain ViT (:func:`timm_vit_to_mmpretrain_key`): ``patch_embed.proj`` ->
``patch_embed.projection``, ``blocks.i.norm1/norm2`` -> ``layers.i.ln1/ln2``,
``blocks.i.attn`` -> ``layers.i.attn`` (fused qkv in both), ``blocks.i.mlp.fc1/fc2`` ->
``layers.i.ffn.layers.0.0`` / ``layers.i.ffn.layers.1``, final ``norm`` -> ``ln1``.

Dropped on purpose: the unused ``patch_local_atten_layer`` / ``word_local_atten_layer``
(``use_local_atten=False`` in every official run), the BERT cross-attention modules of BLIP's
``med.py`` (``mode='text'`` never runs them), the pooler, the ``position_ids`` /
``token_type_ids`` buffers, and the torchvision ``fc`` / timm ``head``.

A second converter, ``'timm_vit'``, turns a timm / DeiT ViT checkpoint (MGCA's DeiT-B/16
starting weights) into backbone keys for ``image_encoder.checkpoint``::

    python tools/convert_official_ckpt.py timm_vit deit_base_patch16_224-b5f2ef4d.pth \\
        pretrained/deit-base-p16_mmpretrain.pth --plugin projects.mgca.mgca
"""
import re
from typing import Dict, Tuple

import torch

from lgdea.utils.ckpt_convert import ConversionReport, register_ckpt_converter, rename_keys

__all__ = ['MGCA_KEY_RULES', 'MGCA_DROPPED', 'TIMM_VIT_RULES', 'timm_vit_to_mmpretrain_key',
           'convert_official_mgca', 'convert_timm_vit', 'CKPT_CONVERTERS']

#: (official prefix, lgdea prefix); first match wins.
MGCA_KEY_RULES = (
    ('img_encoder_q.model.', 'image_encoder.backbone.'),
    ('img_encoder_q.global_embed.', 'image_global_embed.'),
    ('img_encoder_q.local_embed.', 'image_local_embed.'),
    ('text_encoder_q.model.', 'text_encoder.model.'),
    ('text_encoder_q.global_embed.', 'text_global_embed.'),
    ('text_encoder_q.local_embed.', 'text_local_embed.'),
    ('prototype_layer.', 'cpa_loss.prototype_layer.'),
)

#: official keys this implementation does not use (regular expressions, ``re.match``).
MGCA_DROPPED = (
    r'(patch|word)_local_atten_layer\.',
    r'text_encoder_q\.model\.encoder\.layer\.\d+\.crossattention\.',
    r'text_encoder_q\.model\.pooler\.',
    r'text_encoder_q\.model\.embeddings\.(position_ids|token_type_ids)$',
    r'img_encoder_q\.model\.(fc|head)\.',
)

#: timm ViT key pattern -> mmpretrain ViT replacement (``re.sub`` on the backbone key).
TIMM_VIT_RULES = (
    (r'^patch_embed\.proj\.', 'patch_embed.projection.'),
    (r'^blocks\.(\d+)\.norm1\.', r'layers.\1.ln1.'),
    (r'^blocks\.(\d+)\.norm2\.', r'layers.\1.ln2.'),
    (r'^blocks\.(\d+)\.attn\.', r'layers.\1.attn.'),
    (r'^blocks\.(\d+)\.mlp\.fc1\.', r'layers.\1.ffn.layers.0.0.'),
    (r'^blocks\.(\d+)\.mlp\.fc2\.', r'layers.\1.ffn.layers.1.'),
    (r'^norm\.', 'ln1.'),
)
_TIMM_VIT_RES = tuple((re.compile(p), r) for p, r in TIMM_VIT_RULES)
_BACKBONE = 'image_encoder.backbone.'


def timm_vit_to_mmpretrain_key(key: str) -> str:
    """One timm ViT key -> the mmpretrain ``VisionTransformer`` key (others unchanged:
    ``cls_token``, ``pos_embed``, ResNet keys)."""
    for pattern, repl in _TIMM_VIT_RES:
        new, n = pattern.subn(repl, key)
        if n:
            return new
    return key


def _rename_backbone(state: Dict[str, torch.Tensor], report: ConversionReport,
                     prefix: str) -> Dict[str, torch.Tensor]:
    out: Dict[str, torch.Tensor] = {}
    renamed: Dict[str, str] = {}
    for key, value in state.items():
        new = key
        if key.startswith(prefix):
            new = prefix + timm_vit_to_mmpretrain_key(key[len(prefix):])
        if new in out:
            raise KeyError(f'two official keys map to {new!r}')
        out[new] = value
        renamed[new] = report.renamed.get(key, key)
    report.renamed = renamed
    return out


@register_ckpt_converter('mgca')
def convert_official_mgca(
        state: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Official MGCA state dict (ViT-B/16 or ResNet-50; with or without a ``module.``
    prefix) -> a state dict of :class:`MGCA`, with a report."""
    out, report = rename_keys(state, MGCA_KEY_RULES, drop=MGCA_DROPPED, strip=('module.', ))
    return _rename_backbone(out, report, _BACKBONE), report


@register_ckpt_converter('timm_vit')
def convert_timm_vit(
        state: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """timm / DeiT ViT state dict -> mmpretrain ``VisionTransformer`` keys (for
    ``CXRImageEncoder(checkpoint=...)``); the classifier ``head`` / ``head_dist`` and
    ``fc_norm`` are dropped."""
    out, report = rename_keys(state, (('', ''), ), drop=(r'head(_dist)?\.', r'fc_norm\.'),
                              strip=('module.', ))
    return _rename_backbone(out, report, ''), report


#: discovered by tools/convert_official_ckpt.py (``mgca``; ``timm_vit`` with
#: ``--plugin projects.mgca.mgca``).
CKPT_CONVERTERS = {'mgca': convert_official_mgca, 'timm_vit': convert_timm_vit}
