"""CLIP / ConVIRT-style global contrastive baseline (paper Eq. 1)."""
import math
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from lgdea.registry import MODELS
from .base import BaseVLPModel
from .utils.pairing import gather_pair_batch


def build_projection(in_dims: int, out_dims: int, kind: str = 'linear') -> nn.Module:
    """``linear`` or ``mlp`` (Linear-GELU-Linear) projection into the joint space."""
    if kind == 'linear':
        return nn.Linear(in_dims, out_dims)
    if kind == 'mlp':
        return nn.Sequential(nn.Linear(in_dims, in_dims), nn.GELU(), nn.Linear(in_dims, out_dims))
    raise ValueError(f'projection must be "linear" or "mlp", got {kind!r}')


@MODELS.register_module()
class CLIPBaseline(BaseVLPModel):
    """Global image-report contrastive pretraining.

    ``L = (CE(s I R^T, Y) + CE(s R I^T, Y^T)) / 2`` with ``I = norm(W_I f_image(x)^g)``,
    ``R = norm(W_R f_text(r)^g)`` and the pair targets ``Y`` of the batch.

    Args:
        image_encoder: config of a :class:`CXRImageEncoder` (or any encoder with its output
            contract).
        text_encoder: config of a :class:`HFTextEncoder`.
        embed_dims: joint-space dimension ``D``.
        projection: ``'linear'`` or ``'mlp'`` heads.
        init_logit_scale: initial inverse temperature (1 / 0.07 as CLIP).
        learnable_logit_scale: learn the temperature (clamped to at most 100).
        text_source: ``'report'`` encodes the report text; ``'evidence'`` encodes the report's
            cached evidence phrases and averages them (the control arm that separates the
            evidence extractor's contribution from LGDEA's).
        max_phrase_length: token cap of one evidence phrase / prompt.
        loss: config of the contrastive loss (``ContrastiveLoss``, directions averaged).
        gather: gather the batch across ranks before the loss (True; one process: no-op).
    """

    def __init__(self,
                 image_encoder: dict,
                 text_encoder: dict,
                 embed_dims: int = 256,
                 projection: str = 'linear',
                 init_logit_scale: float = 1 / 0.07,
                 learnable_logit_scale: bool = True,
                 text_source: str = 'report',
                 max_text_length: int = 112,
                 max_phrase_length: int = 32,
                 loss: Optional[dict] = None,
                 gather: bool = True,
                 tokenizer: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        if tokenizer is None:
            tokenizer = _tokenizer_of(text_encoder)
        super().__init__(tokenizer=tokenizer, max_text_length=max_text_length,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.image_encoder = MODELS.build(image_encoder)
        self.text_encoder = MODELS.build(text_encoder)
        self.image_proj = build_projection(self.image_encoder.embed_dims, embed_dims, projection)
        self.text_proj = build_projection(self.text_encoder.embed_dims, embed_dims, projection)
        scale = torch.tensor(math.log(init_logit_scale))
        if learnable_logit_scale:
            self.logit_scale = nn.Parameter(scale)
        else:
            self.register_buffer('logit_scale', scale)
        if text_source not in ('report', 'evidence'):
            raise ValueError(f'text_source must be "report" or "evidence", got {text_source!r}')
        self.text_source = text_source
        self.max_phrase_length = max_phrase_length
        self.loss_module = MODELS.build(loss or dict(type='ContrastiveLoss'))
        self.gather = gather

    # ------------------------------------------------------------------ train
    def loss(self, images, data_samples, reports) -> Dict[str, torch.Tensor]:
        img = self.extract_image(images)
        if self.text_source == 'evidence':
            txt = self.extract_text(None, kind='report', evidence=_evidence_of(reports))
        else:
            txt = self.extract_text(self.report_texts(reports), kind='report')
        with torch.no_grad():
            self.logit_scale.clamp_(max=math.log(100.0))
        batch = gather_pair_batch(data_samples, reports, dict(embed=img['embed']),
                                  dict(embed=txt['embed']), gather=self.gather)
        out = self.loss_module(batch.images['embed'], batch.reports['embed'], self.logit_scale,
                               batch.targets)
        return dict(loss_contrastive=out['loss'], acc_i2t=out['acc_i2t'],
                    logit_scale=self.logit_scale.detach().exp())

    # -------------------------------------------------------------- interface
    def extract_image(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        feats = self.image_encoder(images)
        embed = F.normalize(self.image_proj(feats['global']), dim=-1)
        patch_embed = F.normalize(self.image_proj(feats['local']), dim=-1)
        return dict(embed=embed, patch_embed=patch_embed, grid=feats['grid'],
                    probe=feats['global'])

    def _encode(self, texts: Sequence[str], max_length: int) -> torch.Tensor:
        tokens = self.tokenize(texts, max_length)
        out = self.text_encoder(**tokens)
        return F.normalize(self.text_proj(out['pooled']), dim=-1)

    def extract_text(self, texts, kind: str = 'report', evidence=None) -> Dict[str, torch.Tensor]:
        if kind == 'phrase':
            return dict(embed=self._encode(texts, self.max_phrase_length))
        if self.text_source == 'evidence':
            if evidence is None:
                raise ValueError('CLIPBaseline(text_source="evidence") needs the cached evidence '
                                 'of each candidate report.')
            return dict(embed=encode_phrase_sets(
                lambda p: self._encode(p, self.max_phrase_length), evidence))
        return dict(embed=self._encode(texts, self.max_text_length))


def encode_phrase_sets(encode, phrase_sets: Sequence[Sequence[str]]) -> torch.Tensor:
    """Mean of L2-normalised phrase embeddings per set, re-normalised ([N, D]).

    Identical phrases in the batch are encoded once.
    """
    unique = sorted({p for phrases in phrase_sets for p in phrases})
    if not unique:
        raise ValueError('every report needs at least one evidence phrase')
    index = {p: i for i, p in enumerate(unique)}
    z = encode(unique)
    rows = []
    for i, phrases in enumerate(phrase_sets):
        if not phrases:
            raise ValueError(f'report {i} has no evidence phrase; the extractor must give the '
                             'canonical no-finding phrase instead.')
        ids = torch.tensor([index[p] for p in phrases], device=z.device)
        rows.append(z[ids].mean(0))
    return F.normalize(torch.stack(rows), dim=-1)


def _evidence_of(reports) -> list:
    ev = []
    for i, r in enumerate(reports):
        e = r.get('evidence', None)
        if e is None:
            raise KeyError(f'report {i} (study {r.get("study_id", "?")}) carries no `evidence`; '
                           'configure the dataset\'s `evidence` option to load the cache.')
        ev.append(list(e))
    return ev


def _tokenizer_of(text_encoder: dict) -> dict:
    path = text_encoder.get('name_or_path')
    if path is None:
        raise ValueError('A text encoder built from `config` (random init) needs an explicit '
                         '`tokenizer` (e.g. dict(type="HFTokenizer", vocab_file=...)).')
    return dict(type='HFTokenizer', name_or_path=path)
