"""LGDEA: LLM-guided diagnostic evidence alignment (paper Alg. 1, Eq. 2-18)."""
import copy
import math
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from lgdea.registry import MODELS
from .base import BaseVLPModel
from .clip import _tokenizer_of, build_projection
from .losses import lesion_diagnostics
from .utils.finding_labels import gathered_finding_keys
from .utils.pairing import gather_pair_batch

TERMS = ('rec', 'p', 'u', 'align', 'g')


@MODELS.register_module()
class LGDEA(BaseVLPModel):
    """The LGDEA model: encoders, lesion-query neck, prototype head, propagation, term losses.

    Per batch (docs/method.md; Alg. 1):

    1. evidence phrases ``E(R)`` of every report (cached, Eq. 2) -> ``z_n = norm(W_t
       pool(f_text(e_n)))`` [N_E, d], identical phrases encoded once;
    2. patch tokens ``I^l`` -> :class:`LesionQueryNeck` -> ``v``, ``attn``, ``phi(v)``,
       ``H_I`` (Eq. 14); :class:`DiagnosticPrototypeHead` -> ``L_rec`` (Eq. 3-5),
       ``Q_I``, ``Qbar_I`` (Eq. 6-7), ``Qbar_R`` (Eq. 8);
    3. ``H_R = norm(mean_n z_n)`` (Eq. 13); one :func:`gather_pair_batch` gathers ``H_I``,
       ``H_R`` (and the lesion candidates of ``L_u``) and builds ``Y``; ``P`` from
       :class:`EvidencePropagation` (Eq. 15-17) or ``P = Y``;
    4. one loss module per term (Eq. 9-12, 1), each weighted by its own ``loss_weight``
       (Eq. 18).

    **Which terms run** is decided in one place: ``terms`` and ``propagate`` here (the
    single-phase default), replaced per phase by ``LGDEAPhaseHook`` through
    :meth:`set_phase`. Loss weights only scale.

    Args:
        image_encoder: config of a :class:`CXRImageEncoder` (ViT: CLS + patch tokens).
        text_encoder: config of a :class:`HFTextEncoder`.
        neck, head, propagation: configs of the lesion-query neck, the prototype head (which
            owns ``L_rec``) and the propagation; ``neck.in_dims`` / ``embed_dims`` and
            ``head.embed_dims`` are filled in.
        paired_loss: ``L_p`` config (:class:`PairedEvidenceLoss`, Eq. 9).
        lesion_loss: ``L_u`` config (:class:`LesionConsistencyLoss`, Eq. 10).
        align_loss: ``L_evi-align`` config (:class:`EvidenceAlignmentLoss`, Eq. 11-12).
        global_loss: ``L_g`` config (``ContrastiveLoss``, Eq. 1 on the global CLS / report
            embeddings, directions summed), or None (no global heads; term ``g`` unavailable).
        global_tau: temperature ``tau_1`` of ``L_g`` (0.07, fixed).
        terms: the active terms of the single-phase default, a subset of
            ``('rec', 'p', 'u', 'align', 'g')``.
        propagate: propagate ``P`` (Eq. 17) in the single-phase default; False gives
            ``P = Y``.
        embed_dims: ``d``, the evidence space (256).
        text_projection: ``'linear'`` or ``'mlp'`` head ``W_t`` on pooled phrase features.
        max_phrases: ``N_max`` (8; extras dropped).
        max_phrase_length: ``T_max`` (32).
        report_repr: ``'evidence'`` (Eq. 13) or ``'global'`` (the wo_rec ablation:
            ``H_R := proj(R^g)`` and ``Qbar_R = p(k | proj(R^g))``).
        image_embed: the image side ``H_I`` of the alignment, the propagation graphs and
            retrieval / zero-shot: ``'H_I'``, the lesion summary of Eq. 14 (the paper), or
            ``'cls'``, ``norm(W_g I^g)`` of the encoder's global token (a departure,
            docs/lgdea_departures.md; lesions still feed L_rec's image side, L_p, L_u and
            the grounding maps).
        grounding: ``'lesion'`` (lesion attention maps weighted by the softmax of phrase-lesion
            similarity) or ``'patch'`` (``phi(patch) . z``).
        grounding_tau: temperature of the phrase-lesion softmax (default the head's ``tau_p``).
        gather: gather the batch across ranks for ``L_align`` / ``L_g`` and the lesion
            neighbours of ``L_u`` (True).
        relation_ema: momentum ``m`` of a mean teacher for the propagation (a departure,
            docs/lgdea_departures.md): an exponential moving average ``theta' <- m theta' +
            (1 - m) theta`` of the modules that compute ``H_I`` and ``H_R``, updated at every
            training step; in the propagated phase the relations ``P`` (Eq. 15-17, pseudo-links,
            ...) are built from the averaged model's ``H_I`` / ``H_R`` (no gradient) while
            every loss stays on the current ones. None (default, the paper): relations from
            the current embeddings.
    """

    def __init__(self,
                 image_encoder: dict,
                 text_encoder: dict,
                 neck: dict,
                 head: dict,
                 propagation: dict,
                 paired_loss: Optional[dict] = None,
                 lesion_loss: Optional[dict] = None,
                 align_loss: Optional[dict] = None,
                 global_loss: Optional[dict] = None,
                 global_tau: float = 0.07,
                 terms: Sequence[str] = ('rec', 'p', 'u', 'align'),
                 propagate: bool = True,
                 embed_dims: int = 256,
                 text_projection: str = 'linear',
                 max_phrases: int = 8,
                 max_phrase_length: int = 32,
                 max_text_length: int = 112,
                 report_repr: str = 'evidence',
                 image_embed: str = 'H_I',
                 grounding: str = 'lesion',
                 grounding_tau: Optional[float] = None,
                 gather: bool = True,
                 relation_ema: Optional[float] = None,
                 tokenizer: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        if tokenizer is None:
            tokenizer = _tokenizer_of(text_encoder)
        super().__init__(tokenizer=tokenizer, max_text_length=max_text_length,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        _check('report_repr', report_repr, ('evidence', 'global'))
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
        self.paired_loss = MODELS.build(paired_loss or dict(type='PairedEvidenceLoss'))
        self.lesion_loss = MODELS.build(lesion_loss or dict(type='LesionConsistencyLoss'))
        self.align_loss = MODELS.build(align_loss or dict(type='EvidenceAlignmentLoss'))
        self.global_loss = None
        if global_loss is not None or image_embed == 'cls':
            self.global_image_proj = nn.Linear(self.image_encoder.embed_dims, embed_dims)
        if global_loss is not None:
            self.global_loss = MODELS.build(dict(dict(direction_reduction='sum'),
                                                 **global_loss))
            self.global_text_proj = nn.Linear(self.text_encoder.embed_dims, embed_dims)
            self.register_buffer('global_logit_scale', torch.tensor(math.log(1.0 / global_tau)),
                                 persistent=False)
        self.embed_dims = embed_dims
        self.max_phrases = max_phrases
        self.max_phrase_length = max_phrase_length
        self.report_repr = report_repr
        self.image_embed = image_embed
        self.grounding = grounding
        self.grounding_tau = grounding_tau if grounding_tau is not None else self.head.tau_p
        self.gather = gather
        self.relation_ema = relation_ema
        self.relation_teacher = None
        if relation_ema is not None:
            if not 0.0 < relation_ema < 1.0:
                raise ValueError(f'LGDEA.relation_ema must be in (0, 1) (e.g. 0.99) or None, '
                                 f'got {relation_ema!r}.')
            self.relation_teacher = nn.ModuleDict(
                {name: copy.deepcopy(getattr(self, name)) for name in self._teacher_names()})
            self.relation_teacher.requires_grad_(False)
            # 0 until the first update copies the (initialised) student into the teacher
            self.register_buffer('relation_teacher_updates', torch.zeros((), dtype=torch.long))
        self.set_phase(terms, propagate)

    # ------------------------------------------------------------- evidence
    def encode_phrases(self, phrases: Sequence[str], modules=None) -> torch.Tensor:
        """Evidence phrases -> ``z`` [N, d], L2-normalised (Eq. 2 encoding); ``modules``: the
        ``text_encoder`` / ``text_proj`` to use (default this model's; the mean teacher's)."""
        text_encoder, text_proj = self._text_modules(modules)
        tokens = self.tokenize(phrases, self.max_phrase_length)
        pooled = text_encoder(**tokens)['pooled']
        return F.normalize(text_proj(pooled), dim=-1)

    def encode_evidence(self, evidence: Sequence[Sequence[str]], modules=None):
        """Phrase sets of ``B_R`` reports -> ``Z`` [B_R, N_max, d], ``mask`` [B_R, N_max] bool.

        Identical phrases in the batch are encoded once; each report keeps at most
        ``max_phrases`` phrases (report order). ``modules``: as :meth:`encode_phrases`.
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
        z_unique = self.encode_phrases(unique, modules)
        n_max = max(len(s) for s in sets)
        ids = torch.zeros(len(sets), n_max, dtype=torch.long, device=z_unique.device)
        mask = torch.zeros(len(sets), n_max, dtype=torch.bool, device=z_unique.device)
        for i, s in enumerate(sets):
            ids[i, :len(s)] = torch.tensor([index[p] for p in s], device=ids.device)
            mask[i, :len(s)] = True
        return z_unique[ids], mask

    def report_global(self, texts: Sequence[str], global_head: bool = False,
                      modules=None) -> torch.Tensor:
        """``proj(R^g)`` of whole reports [B_R, d]: through ``W_t`` (wo_rec ablation's
        ``H_R``) or, with ``global_head``, through the ``L_g`` head. ``modules``: as
        :meth:`encode_phrases` (``W_t`` only)."""
        text_encoder, text_proj = self._text_modules(modules)
        tokens = self.tokenize(texts, self.max_text_length)
        pooled = text_encoder(**tokens)['pooled']
        proj = self.global_text_proj if global_head else text_proj
        return F.normalize(proj(pooled), dim=-1)

    def _text_modules(self, modules=None):
        """(text encoder, ``W_t``) of this model or of ``modules`` (the mean teacher, which
        holds a text encoder only when this one trains)."""
        if modules is None:
            return self.text_encoder, self.text_proj
        return modules['text_encoder'] if 'text_encoder' in modules else self.text_encoder, \
            modules['text_proj']

    @staticmethod
    def pool_evidence(z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``H_R = norm(mean_n z_n)`` over the valid phrases (Eq. 13) -> [B_R, d]."""
        m = mask.unsqueeze(-1).to(z.dtype)
        return F.normalize((z * m).sum(1) / m.sum(1).clamp_min(1.0), dim=-1)

    # ---------------------------------------------------------------- train
    def loss(self, images, data_samples, reports) -> Dict[str, torch.Tensor]:
        """The active terms (``loss_*``, weighted) and diagnostics of one batch."""
        if self.head.needs_kmeans_init:
            raise RuntimeError('LGDEA: the prototype head has init="kmeans" but its k-means '
                               'initialisation has not run; add dict(type="PrototypeInitHook") '
                               'to custom_hooks (it runs before the first iteration).')
        terms = self.terms
        if self.relation_teacher is not None:
            self.update_relation_teacher()
        feats = self.image_encoder(images)
        lesion = self.neck(feats['local'])
        dist = self.head.image_distribution(lesion['phi'])
        out: Dict[str, torch.Tensor] = {}

        if self.report_repr == 'evidence':
            z, mask = self.encode_evidence(_evidence_of(reports))
            if 'rec' in terms:
                out.update(self.head.loss(z, mask))
            qbar_r = self.head.report_distribution(z, mask)
            h_r = self.pool_evidence(z, mask)
        else:
            if 'rec' in terms:
                raise ValueError("LGDEA(report_repr='global') has no evidence phrases for "
                                 "L_rec: remove 'rec' from the terms (the wo_rec ablation).")
            h_r = self.report_global(self.report_texts(reports))
            qbar_r = self.head.report_distribution(h_r)

        image_side, report_side = dict(H_I=self.image_evidence(feats, lesion)), dict(H_R=h_r)
        if 'u' in terms:
            image_side.update(v=lesion['v'].detach(), log_Q_I=dist['log_Q_I'].detach())
        if 'g' in terms:
            image_side['g'] = F.normalize(self.global_image_proj(feats['global']), dim=-1)
            report_side['g'] = self.report_global(self.report_texts(reports), global_head=True)
        teacher_relations = (self.relation_teacher is not None and 'align' in terms
                             and self.propagate)
        if teacher_relations:
            image_side['H_I_teacher'], report_side['H_R_teacher'] = \
                self.relation_embeddings(images, reports)
        batch = gather_pair_batch(data_samples, reports, image_side, report_side,
                                  gather=self.gather, device=images.device)

        if 'p' in terms:
            out.update(self.paired_loss(qbar_r, dist['log_Qbar_I'], batch.local_targets))
        if 'u' in terms:
            out.update(self.lesion_loss(dist['Q_I'], dist['log_Q_I'], lesion['v'],
                                        batch.images['v'], batch.images['log_Q_I'],
                                        batch.image_offset))
        out.update(lesion_diagnostics(lesion['v'], dist['Q_I']))
        propagated = False
        if 'align' in terms:
            h_i_all, h_r_all = batch.images['H_I'], batch.reports['H_R']
            rel_i, rel_r = ((batch.images['H_I_teacher'], batch.reports['H_R_teacher'])
                            if teacher_relations else (h_i_all.detach(), h_r_all.detach()))
            labels = gathered_finding_keys(data_samples, reports, batch.gathered, images.device)
            oracle = {}
            if getattr(self.propagation, 'requires_labels', False):   # the benchmark's oracle
                if labels is None:
                    raise ValueError(f'{type(self.propagation).__name__} needs finding labels '
                                     '(gt_score) on the training samples; this dataset has '
                                     'none.')
                oracle = dict(image_labels=labels[0], report_labels=labels[1])
            targets = self.propagation(rel_i, rel_r, batch.targets,
                                       batch.image_paired, batch.report_paired,
                                       propagate=self.propagate,
                                       image_study_ids=batch.image_keys,
                                       report_study_ids=batch.report_keys, **oracle)
            propagated = targets['propagated']
            out.update(self.align_loss(h_i_all, h_r_all, targets))
            out.update(targets['diagnostics'])
            if labels is not None:                        # measurement only, no gradient
                out.update(self.propagation.class_target_precision(
                    targets['targets_i2t'], targets['mask_i'], batch.image_paired, *labels))
                report_side = self.propagation.class_target_precision(
                    targets['targets_t2i'], targets['mask_t'], batch.report_paired,
                    labels[1], labels[0])
                out.update({f'report_{k}': v for k, v in report_side.items()})
        if 'g' in terms:
            g = self.global_loss(batch.images['g'], batch.reports['g'], self.global_logit_scale,
                                 batch.targets)
            out.update(loss_g=g['loss'], g_ce=(g['i2t'] + g['t2i']).detach())
        out['propagated'] = torch.tensor(float(propagated), device=images.device)
        return out

    def image_evidence(self, feats: Dict[str, torch.Tensor],
                       lesion: Dict[str, torch.Tensor]) -> torch.Tensor:
        """``H_I`` [B, d] as chosen by ``image_embed`` (Eq. 14, or the global token)."""
        if self.image_embed == 'cls':
            return F.normalize(self.global_image_proj(feats['global']), dim=-1)
        return lesion['H_I']

    # ---------------------------------------------------------- mean teacher
    def _teacher_names(self) -> List[str]:
        """The modules on the path to ``H_I`` and ``H_R`` that the mean teacher averages (a
        frozen text encoder is shared, not copied)."""
        names = ['image_encoder', 'global_image_proj' if self.image_embed == 'cls' else 'neck',
                 'text_proj']
        if any(p.requires_grad for p in self.text_encoder.parameters()):
            names.append('text_encoder')
        return names

    @torch.no_grad()
    def update_relation_teacher(self) -> None:
        """``theta' <- m theta' + (1 - m) theta`` (the first update copies ``theta``); buffers
        are copied. Called once per training step, before the step's forward pass."""
        m = self.relation_ema if int(self.relation_teacher_updates) > 0 else 0.0
        for name, teacher in self.relation_teacher.items():
            student = getattr(self, name)
            for p_t, p_s in zip(teacher.parameters(), student.parameters()):
                p_t.mul_(m).add_(p_s.detach().to(p_t.dtype), alpha=1.0 - m)
            for b_t, b_s in zip(teacher.buffers(), student.buffers()):
                b_t.copy_(b_s)
        self.relation_teacher_updates += 1

    @torch.no_grad()
    def relation_embeddings(self, images: torch.Tensor, reports):
        """The mean teacher's ``H_I`` [B_I, d] and ``H_R`` [B_R, d] (same choices of
        ``image_embed`` / ``report_repr`` as the model), without gradient."""
        teacher = self.relation_teacher
        feats = teacher['image_encoder'](images)
        if self.image_embed == 'cls':
            h_i = F.normalize(teacher['global_image_proj'](feats['global']), dim=-1)
        else:
            h_i = teacher['neck'](feats['local'])['H_I']
        if self.report_repr == 'evidence':
            h_r = self.pool_evidence(*self.encode_evidence(_evidence_of(reports), teacher))
        else:
            h_r = self.report_global(self.report_texts(reports), modules=teacher)
        return h_i.detach(), h_r.detach()

    def train(self, mode: bool = True):
        """The mean teacher always runs in eval mode (no dropout in its relations)."""
        super().train(mode)
        if self.relation_teacher is not None:
            self.relation_teacher.eval()
        return self

    # ------------------------------------------------------------ interface
    def extract_image(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        feats = self.image_encoder(images)
        # the lesion attention maps only feed the lesion grounding maps (grounding_map)
        with_attn = self.grounding == 'lesion'
        lesion = self.neck(feats['local'], return_attn=with_attn)
        out = dict(embed=self.image_evidence(feats, lesion),
                   patch_embed=self.neck.project(feats['local']),
                   grid=feats['grid'],
                   probe=lesion['v'].mean(1),
                   lesion_phi=lesion['phi'],
                   Qbar_I=self.head.image_distribution(lesion['phi'])['Qbar_I'])
        if with_attn:
            out['lesion_attn'] = lesion['attn']
        return out

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

        ``'lesion'``: ``sum_l softmax_l(phi(v_l) . z / tau) * attn_l`` (docs/method.md).
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
    def set_phase(self, terms: Sequence[str], propagate: bool) -> None:
        """Set the active terms and whether ``P`` is propagated (``LGDEAPhaseHook`` calls it
        at every phase boundary; the constructor sets the single-phase default)."""
        unknown = sorted(set(terms) - set(TERMS))
        if unknown:
            raise ValueError(f'LGDEA: unknown terms {unknown}; choose from {TERMS}.')
        if 'g' in terms and self.global_loss is None:
            raise ValueError("LGDEA: term 'g' needs `global_loss` (e.g. "
                             "global_loss=dict(type='ContrastiveLoss', loss_weight=0.5)).")
        terms = tuple(t for t in TERMS if t in set(terms))
        self.terms = terms
        self.propagate = bool(propagate)


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
