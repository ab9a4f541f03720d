"""LGDEA: LLM-guided diagnostic evidence alignment (paper Alg. 1, Eq. 2-18)."""
import math
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from lgdea.registry import MODELS
from lgdea.utils.dist import gather_features, loss_scale_for_gather
from .base import BaseVLPModel
from .clip import _tokenizer_of, build_projection
from .utils.pairing import build_pair_targets, paired_flags, study_keys


@MODELS.register_module()
class LGDEA(BaseVLPModel):
    """The LGDEA model: encoders + lesion-query neck + prototype head + propagation + loss.

    Per batch (docs/architecture.md section 3; Alg. 1):

    1. evidence phrases ``E(R)`` of every report (cached, Eq. 2) -> ``z_n = norm(W_t
       pool(f_text(e_n)))`` [N_E, d], identical phrases encoded once;
    2. ``L_rec`` and ``Qbar_R`` from :class:`DiagnosticPrototypeHead` (Eq. 3-5, 8);
    3. patch tokens ``I^l`` -> :class:`LesionQueryNeck` -> ``v``, ``phi(v)``, ``Q_I``,
       ``Qbar_I``, ``H_I`` (Eq. 6-7, 14);
    4. ``H_R = norm(mean_n z_n)`` (Eq. 13); ``Y`` from study ids; ``H_I``, ``H_R``, ``Y``
       gathered across ranks; ``P`` from :class:`EvidencePropagation` (Eq. 15-17) or ``P = Y``;
    5. :class:`LGDEALoss` (Eq. 9-12, 18).

    Args:
        image_encoder: config of a :class:`CXRImageEncoder` (ViT: CLS + patch tokens).
        text_encoder: config of a :class:`HFTextEncoder`.
        neck, head, propagation, loss: configs of the four LGDEA components;
            ``neck.in_dims`` and ``head.embed_dims`` are filled in.
        embed_dims: ``d``, the evidence space (256).
        text_projection: ``'linear'`` or ``'mlp'`` head ``W_t`` on pooled phrase features.
        max_phrases: ``N_max`` (8; extras dropped and counted).
        max_phrase_length: ``T_max`` (32).
        report_repr: ``'evidence'`` (Eq. 13) or ``'global'`` (the wo_rec ablation:
            ``H_R := proj(R^g)`` and ``Qbar_R = p(k | proj(R^g))``).
        use_propagation: propagate ``P`` (Eq. 17); False gives ``P = Y`` (the phase hook sets
            it per phase; ``propagation.steps = 0`` has the same effect).
        at_full_pairing: ``'hard'`` uses ``P = Y`` when every item of the batch is paired
            (the paper's fully paired setting); ``'propagate'`` propagates anyway.
        image_embed: ``'H_I'`` (retrieval / zero-shot embedding, method.md departure) or
            ``'cls'`` (needs ``w_g > 0``, which trains the global heads).
        grounding: ``'lesion'`` (lesion attention maps weighted by the softmax of phrase-lesion
            similarity) or ``'patch'`` (``phi(patch) . z``).
        grounding_tau: temperature of the phrase-lesion softmax (default ``tau_p``).
    """

    def __init__(self,
                 image_encoder: dict,
                 text_encoder: dict,
                 neck: dict,
                 head: dict,
                 propagation: dict,
                 loss: dict,
                 embed_dims: int = 256,
                 text_projection: str = 'linear',
                 max_phrases: int = 8,
                 max_phrase_length: int = 32,
                 max_text_length: int = 112,
                 report_repr: str = 'evidence',
                 use_propagation: bool = True,
                 at_full_pairing: str = 'hard',
                 image_embed: str = 'H_I',
                 grounding: str = 'lesion',
                 grounding_tau: Optional[float] = None,
                 tokenizer: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        if tokenizer is None:
            tokenizer = _tokenizer_of(text_encoder)
        super().__init__(tokenizer=tokenizer, max_text_length=max_text_length,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        _check('report_repr', report_repr, ('evidence', 'global'))
        _check('at_full_pairing', at_full_pairing, ('hard', 'propagate'))
        _check('image_embed', image_embed, ('H_I', 'cls'))
        _check('grounding', grounding, ('lesion', 'patch'))
        self.image_encoder = MODELS.build(image_encoder)
        self.text_encoder = MODELS.build(text_encoder)
        self.text_proj = build_projection(self.text_encoder.embed_dims, embed_dims,
                                          text_projection)
        self.head = MODELS.build(dict(head, embed_dims=embed_dims))
        self.neck = MODELS.build(dict(neck, in_dims=self.image_encoder.embed_dims,
                                      embed_dims=embed_dims))
        self.propagation = MODELS.build(propagation)
        self.loss_module = MODELS.build(loss)
        w_g = self.loss_module.weights['g']
        if image_embed == 'cls' and w_g <= 0:
            raise ValueError("LGDEA(image_embed='cls') needs loss.w_g > 0: no other term trains "
                             'the CLS projection.')
        if w_g > 0 or image_embed == 'cls':
            self.global_image_proj = nn.Linear(self.image_encoder.embed_dims, embed_dims)
            self.global_text_proj = nn.Linear(self.text_encoder.embed_dims, embed_dims)
        self.embed_dims = embed_dims
        self.max_phrases = max_phrases
        self.max_phrase_length = max_phrase_length
        self.report_repr = report_repr
        self.use_propagation = use_propagation
        self.at_full_pairing = at_full_pairing
        self.image_embed = image_embed
        self.grounding = grounding
        self.grounding_tau = grounding_tau if grounding_tau is not None else self.neck.tau_p

    # ------------------------------------------------------------- evidence
    def encode_phrases(self, phrases: Sequence[str]) -> torch.Tensor:
        """Evidence phrases -> ``z`` [N, d], L2-normalised (Eq. 2 encoding)."""
        tokens = self.tokenize(phrases, self.max_phrase_length)
        pooled = self.text_encoder(**tokens)['pooled']
        return F.normalize(self.text_proj(pooled), dim=-1)

    def encode_evidence(self, evidence: Sequence[Sequence[str]]):
        """Phrase sets of ``B_R`` reports -> ``Z`` [B_R, N_max, d], ``mask`` [B_R, N_max] bool.

        Identical phrases in the batch are encoded once; each report keeps at most
        ``max_phrases`` phrases (report order).
        """
        sets = []
        for i, phrases in enumerate(evidence):
            phrases = [p for p in phrases if str(p).strip()][:self.max_phrases]
            if not phrases:
                raise ValueError(f'report {i} of the batch has no evidence phrase; the '
                                 'extractor gives the canonical no-finding phrase instead.')
            sets.append(phrases)
        unique = sorted({p for s in sets for p in s})
        index = {p: i for i, p in enumerate(unique)}
        z_unique = self.encode_phrases(unique)
        n_max = max(len(s) for s in sets)
        ids = torch.zeros(len(sets), n_max, dtype=torch.long, device=z_unique.device)
        mask = torch.zeros(len(sets), n_max, dtype=torch.bool, device=z_unique.device)
        for i, s in enumerate(sets):
            ids[i, :len(s)] = torch.tensor([index[p] for p in s], device=ids.device)
            mask[i, :len(s)] = True
        return z_unique[ids], mask

    def report_global(self, texts: Sequence[str]) -> torch.Tensor:
        """``proj(R^g)`` of whole reports [B_R, d] (wo_rec ablation and ``L_g``)."""
        tokens = self.tokenize(texts, self.max_text_length)
        pooled = self.text_encoder(**tokens)['pooled']
        proj = self.global_text_proj if self.report_repr == 'evidence' else self.text_proj
        return F.normalize(proj(pooled), dim=-1)

    @staticmethod
    def pool_evidence(z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``H_R = norm(mean_n z_n)`` over the valid phrases (Eq. 13) -> [B_R, d]."""
        m = mask.unsqueeze(-1).to(z.dtype)
        return F.normalize((z * m).sum(1) / m.sum(1).clamp_min(1.0), dim=-1)

    # ---------------------------------------------------------------- train
    def loss(self, images, data_samples, reports) -> Dict[str, torch.Tensor]:
        device = images.device
        feats = self.image_encoder(images)
        lesion = self.neck(feats['local'], prototype_head=self.head)

        rec = None
        if self.report_repr == 'evidence':
            z, mask = self.encode_evidence(_evidence_of(reports))
            rec = self.head.loss_rec(z, mask) if 'rec' in self.loss_module.terms else None
            qbar_r = self.head.report_distribution(z, mask)
            h_r = self.pool_evidence(z, mask)
        else:
            h_r = self.report_global(self.report_texts(reports))
            qbar_r = self.head.report_distribution(h_r)
        h_i = lesion['H_I']

        img_keys, img_paired = study_keys(data_samples, device), paired_flags(data_samples, device)
        rep_keys, rep_paired = study_keys(reports, device), paired_flags(reports, device)
        y_local = build_pair_targets(img_keys, img_paired, rep_keys, rep_paired)

        # gradient into the local slices x world size: DDP's average = global-batch gradient
        gscale = loss_scale_for_gather()
        h_i_all = gather_features(h_i, grad_scale=gscale)
        h_r_all = gather_features(h_r, grad_scale=gscale)
        img_keys_all, rep_keys_all = gather_features(img_keys), gather_features(rep_keys)
        img_paired_all = gather_features(img_paired.long()).bool()
        rep_paired_all = gather_features(rep_paired.long()).bool()
        y_all = build_pair_targets(img_keys_all, img_paired_all, rep_keys_all, rep_paired_all)

        propagate = self.use_propagation and 'align' in self.loss_module.terms
        if propagate and self.at_full_pairing == 'hard' and bool(img_paired_all.all()) and \
                bool(rep_paired_all.all()):
            propagate = False
        with _steps(self.propagation, None if propagate else 0):
            prop = self.propagation(h_i_all.detach(), h_r_all.detach(), y_all,
                                    image_study_ids=img_keys_all, report_study_ids=rep_keys_all,
                                    image_paired=img_paired_all)

        g_image = g_report = None
        if 'g' in self.loss_module.terms:
            g_image = gather_features(
                F.normalize(self.global_image_proj(feats['global']), dim=-1), grad_scale=gscale)
            g_report = gather_features(self.report_global(self.report_texts(reports)),
                                       grad_scale=gscale)
        out = self.loss_module(
            loss_rec=rec, Qbar_R=qbar_r, Qbar_I=lesion['Qbar_I'], Y=y_local, v=lesion['v'],
            Q_I=lesion['Q_I'], log_Q_I=lesion['log_Q_I'], H_I=h_i_all, H_R=h_r_all,
            propagation=prop, g_image=g_image, g_report=g_report, Y_global=y_all)
        out['propagated'] = torch.tensor(float(propagate), device=device)
        return out

    # ------------------------------------------------------------ interface
    def extract_image(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        feats = self.image_encoder(images)
        lesion = self.neck(feats['local'], prototype_head=self.head)
        if self.image_embed == 'cls':
            embed = F.normalize(self.global_image_proj(feats['global']), dim=-1)
        else:
            embed = lesion['H_I']
        return dict(embed=embed,
                    patch_embed=self.neck.project(feats['local']),
                    grid=feats['grid'],
                    probe=lesion['v'].mean(1),
                    lesion_attn=lesion['attn'],
                    lesion_phi=lesion['phi'],
                    Qbar_I=lesion['Qbar_I'])

    def extract_text(self, texts, kind: str = 'report', evidence=None) -> Dict[str, torch.Tensor]:
        if kind == 'phrase':
            return dict(embed=self.encode_phrases(list(texts)))
        if self.report_repr == 'global':
            return dict(embed=self.report_global(list(texts)))
        if evidence is None or any(e is None for e in evidence):
            raise ValueError('LGDEA encodes a candidate report as H_R over its cached evidence; '
                             'add EvidenceTokenizer (with the training extractor and cache) to '
                             'the evaluation pipeline.')
        z, mask = self.encode_evidence(evidence)
        return dict(embed=self.pool_evidence(z, mask))

    def grounding_map(self, img_feats: Dict[str, torch.Tensor],
                      txt_feats: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Phrase ``i`` on image ``i`` -> [B, h, w].

        ``'lesion'``: ``sum_l softmax_l(phi(v_l) . z / tau) * attn_l`` (method.md).
        """
        if self.grounding == 'patch':
            return super().grounding_map(img_feats, txt_feats)
        phi = img_feats['lesion_phi']                       # [B, L, d]
        attn = img_feats['lesion_attn']                     # [B, L, P]
        z = F.normalize(txt_feats['embed'], dim=-1).to(phi.dtype)
        w = torch.softmax(torch.einsum('bld,bd->bl', phi, z) / self.grounding_tau, dim=1)
        maps = torch.einsum('bl,blp->bp', w, attn)
        from .base import _grid_of
        h, wd = _grid_of(img_feats)
        return maps.view(maps.shape[0], h, wd)

    # --------------------------------------------------------------- phases
    def set_phase(self, terms: Sequence[str], use_propagation: bool) -> None:
        """Active loss terms and propagation (called by ``LGDEAPhaseHook``)."""
        self.loss_module.set_terms(terms)
        self.use_propagation = use_propagation


class _steps:
    """Temporarily override ``EvidencePropagation.steps`` (0 gives ``P = Y``)."""

    def __init__(self, module, steps: Optional[int]):
        self.module, self.steps, self.saved = module, steps, None

    def __enter__(self):
        if self.steps is not None:
            self.saved, self.module.steps = self.module.steps, self.steps

    def __exit__(self, *exc):
        if self.steps is not None:
            self.module.steps = self.saved


def _evidence_of(reports) -> List[List[str]]:
    out = []
    for i, r in enumerate(reports):
        ev = r.get('evidence', None)
        if ev is None:
            raise KeyError(f'report {i} (study {r.get("study_id", "?")}) carries no `evidence`; '
                           'configure LimitedPairingDataset(evidence=...) or add '
                           'EvidenceTokenizer to the report pipeline.')
        out.append(list(ev))
    return out


def _check(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f'LGDEA.{name} must be one of {allowed}, got {value!r}')
