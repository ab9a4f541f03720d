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

The ``'timm_vit'`` converter (built into :mod:`lgdea.utils.vit_keys`, re-exported here) turns
a timm / DeiT ViT checkpoint (MGCA's DeiT-B/16 starting weights) into backbone keys for
``image_encoder.checkpoint``::

    python tools/convert_official_ckpt.py timm_vit deit_base_patch16_224-b5f2ef4d.pth \\
        pretrained/deit-base-p16_mmpretrain.pth
"""
from typing import Dict, Tuple

import torch

from lgdea.utils.ckpt_convert import ConversionReport, register_ckpt_converter, rename_keys
from lgdea.utils.vit_keys import (convert_timm_vit, rename_backbone_keys,
                                  timm_vit_to_mmpretrain_key)

__all__ = ['MGCA_KEY_RULES', 'MGCA_DROPPED', 'timm_vit_to_mmpretrain_key',
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

_BACKBONE = 'image_encoder.backbone.'


@register_ckpt_converter('mgca')
def convert_official_mgca(
        state: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Official MGCA state dict (ViT-B/16 or ResNet-50; with or without a ``module.``
    prefix) -> a state dict of :class:`MGCA`, with a report."""
    out, report = rename_keys(state, MGCA_KEY_RULES, drop=MGCA_DROPPED, strip=('module.', ))
    return rename_backbone_keys(out, report, _BACKBONE), report


#: discovered by tools/convert_official_ckpt.py (``mgca``; ``timm_vit`` is built into
#: ``lgdea.utils.vit_keys`` and re-exported here).
CKPT_CONVERTERS = {'mgca': convert_official_mgca, 'timm_vit': convert_timm_vit}
