"""Key map of the official GLoRIA release (``chexpert_resnet50.ckpt``) -> :class:`GLoRIA`.

Official names (Lightning module attribute ``gloria``; refs. 1.1, 1.3, 1.4)::

    gloria.img_encoder.model.<torchvision resnet50 key>   -> image_encoder.encoder.backbone.<key>
    gloria.img_encoder.global_embedder.{weight,bias}      -> image_encoder.global_embedder.*
    gloria.img_encoder.local_embedder.weight              -> image_encoder.local_embedder.weight
    gloria.text_encoder.model.<HF BertModel key>          -> text_encoder.encoder.model.<key>
    gloria.text_encoder.emb_local / emb_global (None in the release; mapped when present)

Dropped on purpose: the BERT pooler (GLoRIA uses hidden states), ``position_ids`` /
``token_type_ids`` buffers, and the torchvision ``fc`` (replaced by identity officially).
torchvision and mmpretrain ResNets share their parameter names (``conv1``, ``bn1``,
``layerN.M.convK`` / ``bnK`` / ``downsample.{0,1}``), so the backbone needs no renaming.
"""
from typing import Dict, Tuple

import torch

from lgdea.utils.ckpt_convert import ConversionReport, register_ckpt_converter, rename_keys

__all__ = ['GLORIA_KEY_RULES', 'GLORIA_DROPPED', 'convert_official_gloria', 'CKPT_CONVERTERS']

#: (official prefix after removing ``gloria.``, lgdea prefix); first match wins.
GLORIA_KEY_RULES = (
    ('img_encoder.model.', 'image_encoder.encoder.backbone.'),
    ('img_encoder.global_embedder.', 'image_encoder.global_embedder.'),
    ('img_encoder.local_embedder.', 'image_encoder.local_embedder.'),
    ('text_encoder.model.', 'text_encoder.encoder.model.'),
    ('text_encoder.emb_local.', 'text_encoder.emb_local.'),
    ('text_encoder.emb_global.', 'text_encoder.emb_global.'),
)

#: official keys this implementation does not use (regular expressions).
GLORIA_DROPPED = (
    r'img_encoder\.model\.fc\.',
    r'text_encoder\.model\.pooler\.',
    r'text_encoder\.model\.embeddings\.(position_ids|token_type_ids)$',
)


@register_ckpt_converter('gloria')
def convert_official_gloria(
        state: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Official GLoRIA state dict (with or without the ``gloria.`` / ``model.`` /
    ``module.`` prefixes) -> a state dict of :class:`GLoRIA` with a report."""
    return rename_keys(state, GLORIA_KEY_RULES, drop=GLORIA_DROPPED,
                       strip=('module.', 'model.gloria.', 'gloria.'))


#: discovered by tools/convert_official_ckpt.py (``--method gloria``).
CKPT_CONVERTERS = {'gloria': convert_official_gloria}
