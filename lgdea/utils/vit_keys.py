"""The timm <-> mmpretrain ViT state-dict key table, written once.

Used in both directions: importing timm / DeiT weights into ``mmpretrain.VisionTransformer``
(the ``timm_vit`` checkpoint converter, e.g. the DeiT-B start of the MGCA and LGDEA paper
configs) and exporting a trained backbone to timm names (``tools/export_image_encoder.py``).
"""
import re
from typing import Dict, Tuple

import torch

from .ckpt_convert import ConversionReport, register_ckpt_converter, rename_keys

__all__ = ['VIT_KEY_TABLE', 'timm_vit_to_mmpretrain_key', 'mmpretrain_vit_to_timm_key',
           'rename_backbone_keys', 'convert_timm_vit']

#: (timm key prefix, mmpretrain key prefix); ``{i}`` is the block index.
VIT_KEY_TABLE = (
    ('patch_embed.proj.', 'patch_embed.projection.'),
    ('blocks.{i}.norm1.', 'layers.{i}.ln1.'),
    ('blocks.{i}.norm2.', 'layers.{i}.ln2.'),
    ('blocks.{i}.attn.', 'layers.{i}.attn.'),
    ('blocks.{i}.mlp.fc1.', 'layers.{i}.ffn.layers.0.0.'),
    ('blocks.{i}.mlp.fc2.', 'layers.{i}.ffn.layers.1.'),
    ('norm.', 'ln1.'),
)


def _rule(src: str, dst: str):
    pattern = '^' + re.escape(src).replace(re.escape('{i}'), r'(\d+)')
    return re.compile(pattern), dst.replace('{i}', r'\1')


_TO_MMPRETRAIN = tuple(_rule(t, m) for t, m in VIT_KEY_TABLE)
_TO_TIMM = tuple(_rule(m, t) for t, m in VIT_KEY_TABLE)


def _apply(rules, key: str) -> str:
    for pattern, repl in rules:
        new, n = pattern.subn(repl, key)
        if n:
            return new
    return key


def timm_vit_to_mmpretrain_key(key: str) -> str:
    """One timm ViT key -> the mmpretrain key (others unchanged: ``cls_token``, ``pos_embed``,
    ResNet keys)."""
    return _apply(_TO_MMPRETRAIN, key)


def mmpretrain_vit_to_timm_key(key: str) -> str:
    """One mmpretrain ``VisionTransformer`` key -> the timm key (others unchanged)."""
    return _apply(_TO_TIMM, key)


def rename_backbone_keys(state: Dict[str, torch.Tensor], report: ConversionReport,
                         prefix: str) -> Dict[str, torch.Tensor]:
    """Rename the timm ViT keys under ``prefix`` to mmpretrain keys, keeping the report's
    new -> official key map in step."""
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


@register_ckpt_converter('timm_vit')
def convert_timm_vit(
        state: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """timm / DeiT ViT state dict -> mmpretrain ``VisionTransformer`` keys (for
    ``CXRImageEncoder(checkpoint=...)``); the classifier ``head`` / ``head_dist`` and
    ``fc_norm`` are dropped."""
    out, report = rename_keys(state, (('', ''), ), drop=(r'head(_dist)?\.', r'fc_norm\.'),
                              strip=('module.', ))
    return rename_backbone_keys(out, report, ''), report
