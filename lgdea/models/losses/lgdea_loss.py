"""The LGDEA objective (paper Eq. 9-12 and 18, method.md "Total loss").

Shapes: ``B_I`` images with ``L`` lesions each (``N_L = B_I * L``), ``B_R`` reports, ``K``
prototypes, lesion width ``d_v``, evidence space width ``d``.
"""
import math
from typing import Dict, Iterable, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from lgdea.registry import MODELS
from lgdea.utils.dist import scale_gradient
from .contrastive_loss import soft_cross_entropy

TERMS = ('rec', 'p', 'u', 'align', 'g')


def kl_divergence(p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``KL(p || q) = sum_k p_k (log p_k - log q_k)`` over the last dim (0 log 0 = 0)."""
    return (torch.special.xlogy(p, p) - p * log_q).sum(-1)


def _safe_log(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))


@torch.no_grad()
def lesion_knn(v: torch.Tensor, k: int, tau_w: float, chunk_size: int = 1024,
               image_index: Optional[torch.Tensor] = None,
               exclude_same_image: bool = False):
    """Top-k cosine neighbours ``N_k(i)`` over ``j != i`` and their softmax weights (Eq. 10).

    Computed in chunks of ``chunk_size`` rows, so the largest buffer is
    ``[chunk_size, N_L]`` and the result is O(N_L k); no gradient.

    Args:
        v: [N_L, d_v] lesion embeddings.
        k: neighbours per lesion (clipped to the number of candidates).
        tau_w: temperature of the weights ``w_ij = softmax_j(cos(v_i, v_j) / tau_w)``.
        chunk_size: rows per chunk.
        image_index: [N_L] long, the image each lesion belongs to (needed for
            ``exclude_same_image``).
        exclude_same_image: only lesions of other images are candidates.

    Returns:
        (idx [N_L, k'] long, w [N_L, k'] float), ``k' = min(k, candidates)``; ``k' = 0`` when
        no lesion has a candidate.
    """
    vn = F.normalize(v.detach().float(), dim=-1)
    n = vn.shape[0]
    if exclude_same_image and image_index is None:
        raise ValueError('lesion_knn: exclude_same_image=True needs image_index.')
    if exclude_same_image:
        counts = torch.bincount(image_index)
        candidates = n - int(counts.max()) if counts.numel() else 0
    else:
        candidates = n - 1
    k_eff = max(0, min(k, candidates))
    idx = torch.empty(n, k_eff, dtype=torch.long, device=vn.device)
    w = torch.empty(n, k_eff, dtype=vn.dtype, device=vn.device)
    if k_eff == 0:
        return idx, w
    for s in range(0, n, chunk_size):
        e = min(s + chunk_size, n)
        sim = vn[s:e] @ vn.t()                                         # [c, N_L]
        rows = torch.arange(s, e, device=vn.device)
        sim[rows - s, rows] = float('-inf')
        if exclude_same_image:
            same = image_index[s:e, None] == image_index[None, :]
            sim.masked_fill_(same, float('-inf'))
        vals, nn_idx = sim.topk(k_eff, dim=1)
        idx[s:e] = nn_idx
        w[s:e] = (vals / tau_w).softmax(dim=1)
    return idx, w


@MODELS.register_module()
class LGDEALoss(nn.Module):
    """Weighted LGDEA objective (Eq. 18), each term switchable.

    ``L = w_rec L_rec + w_p L_p^evid + w_u L_u^evid + w_align L_evi-align (+ w_g L_g)``.

    - ``loss_rec``: passed in from :meth:`DiagnosticPrototypeHead.loss_rec`.
    - ``loss_p`` (Eq. 9): ``KL(Qbar_R || Qbar_I)`` averaged over paired images; the teacher is
      the detached report distribution of the image's paired report(s) (row-normalised ``Y``
      times ``Qbar_R``); images without a paired report are excluded; 0 if none.
    - ``loss_u`` (Eq. 10): ``(1/N_L) sum_i sum_{j in N_k(i)} w_ij KL(Q_i || sg(Q_j))`` over all
      lesions of the batch; the neighbours and weights carry no gradient and are found in
      chunks. Because ``sum_j w_ij = 1`` this equals
      ``mean_i [sum_k Q_ik log Q_ik - Q_i . (sum_j w_ij log Q_j)]``, so memory stays
      O(N_L (k + K)).
    - ``loss_align`` (Eq. 11-12, targets of Eq. 17):
      ``L^{R<-I} = -(1/|rows|) sum_i w_i sum_j T_ij log softmax_j(H_Ii . H_Rj / tau_2)`` over
      the kept rows, plus ``L^{I<-R}`` with the report->image targets; summed (Eq. 11) or
      averaged (``align_reduction='mean'``).
    - ``loss_g`` (Eq. 1, option): symmetric InfoNCE of global embeddings over paired rows.

    Keys containing ``loss`` are the weighted terms (mmengine sums them); the other keys are
    diagnostics. Losses on gathered features (``align``, ``g``) get their gradient multiplied
    by ``world_size`` (value unchanged), so DDP's averaged gradient equals the single-process
    one; ``rec``, ``p``, ``u`` are per-rank means.

    Args:
        w_rec, w_p, w_u, w_align, w_g: term weights (1, 1, 1, 1, 0).
        terms: the terms computed (default: every term whose weight is > 0); a phase hook may
            change them with :meth:`set_terms`.
        knn_k: neighbours per lesion in ``L_u`` (5).
        tau_w: temperature of the neighbour weights (0.1).
        exclude_same_image: neighbours only from other images (False, paper).
        knn_chunk_size: rows per chunk of the neighbour search (1024).
        tau_2: alignment temperature (0.07).
        learnable_logit_scale: learn ``log(1/tau_2)`` (clamped to ``max_logit_scale``).
        max_logit_scale: upper bound of the learnable inverse temperature (100).
        align_reduction: ``'sum'`` (Eq. 11) or ``'mean'`` of the two directions.
        tau_1: temperature of ``L_g`` (0.07).
    """

    def __init__(self,
                 w_rec: float = 1.0,
                 w_p: float = 1.0,
                 w_u: float = 1.0,
                 w_align: float = 1.0,
                 w_g: float = 0.0,
                 terms: Optional[Iterable[str]] = None,
                 knn_k: int = 5,
                 tau_w: float = 0.1,
                 exclude_same_image: bool = False,
                 knn_chunk_size: int = 1024,
                 tau_2: float = 0.07,
                 learnable_logit_scale: bool = False,
                 max_logit_scale: float = 100.0,
                 align_reduction: str = 'sum',
                 tau_1: float = 0.07):
        super().__init__()
        self.weights = dict(rec=w_rec, p=w_p, u=w_u, align=w_align, g=w_g)
        if terms is None:
            terms = [t for t in TERMS if self.weights[t] > 0]
        self.set_terms(terms)
        if knn_k < 1 or knn_chunk_size < 1:
            raise ValueError(f'LGDEALoss: knn_k ({knn_k}) and knn_chunk_size '
                             f'({knn_chunk_size}) must be >= 1.')
        if align_reduction not in ('sum', 'mean'):
            raise ValueError(f'LGDEALoss: align_reduction must be "sum" or "mean", got '
                             f'{align_reduction!r}.')
        self.knn_k = knn_k
        self.tau_w = tau_w
        self.exclude_same_image = exclude_same_image
        self.knn_chunk_size = knn_chunk_size
        self.align_reduction = align_reduction
        self.tau_1 = tau_1
        self.max_logit_scale = max_logit_scale
        scale = torch.tensor(math.log(1.0 / tau_2))
        if learnable_logit_scale:
            self.logit_scale = nn.Parameter(scale)
        else:
            self.register_buffer('logit_scale', scale)

    def set_terms(self, terms: Iterable[str]) -> None:
        """Switch the computed terms (e.g. per training phase)."""
        terms = set(terms)
        unknown = terms - set(TERMS)
        if unknown:
            raise ValueError(f'LGDEALoss: unknown terms {sorted(unknown)}; choose from {TERMS}.')
        self.terms = terms

    # ------------------------------------------------------------- terms
    @staticmethod
    def paired_kl(Qbar_R: torch.Tensor, Qbar_I: torch.Tensor, Y: torch.Tensor,
                  log_Qbar_I: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Eq. 9 over the paired images.

        Args:
            Qbar_R: [B_R, K] report distributions (teacher; detached here).
            Qbar_I: [B_I, K] image distributions.
            Y: [B_I, B_R] seed links (local batch).
            log_Qbar_I: [B_I, K] exact ``log Qbar_I`` if available.
        """
        y = Y.detach().to(Qbar_I.dtype)
        links = y.sum(1)
        rows = links > 0
        num = rows.sum()
        if not bool(num > 0):
            return dict(kl=Qbar_I.sum() * 0.0, num_paired=num.float())
        teacher = (y[rows] / links[rows, None]) @ Qbar_R.detach().to(Qbar_I.dtype)  # [n_p, K]
        log_q = log_Qbar_I[rows] if log_Qbar_I is not None else _safe_log(Qbar_I[rows])
        kl = kl_divergence(teacher, log_q).mean()
        return dict(kl=kl, num_paired=num.float())

    def lesion_consistency(self, v: torch.Tensor, Q_I: torch.Tensor,
                           log_Q_I: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Eq. 10 with chunked neighbour search.

        Args:
            v: [B_I, L, d_v] lesion embeddings.
            Q_I: [B_I, L, K] lesion prototype distributions.
            log_Q_I: [B_I, L, K] their exact logs (recommended).

        Returns:
            dict(kl = L_u^evid, same_image_nn_frac = fraction of neighbours from the same
            image; absent when no lesion has a candidate neighbour).
        """
        if v.dim() != 3 or Q_I.dim() != 3 or v.shape[:2] != Q_I.shape[:2]:
            raise ValueError('LGDEALoss: v must be [B_I, L, d_v] and Q_I [B_I, L, K] with the '
                             f'same B_I, L; got {tuple(v.shape)} and {tuple(Q_I.shape)}.')
        b, l, _ = v.shape
        q = Q_I.reshape(b * l, -1)
        log_q = (log_Q_I.reshape(b * l, -1) if log_Q_I is not None else _safe_log(q))
        image_index = torch.arange(b, device=v.device).repeat_interleave(l)
        idx, w = lesion_knn(v.reshape(b * l, -1), self.knn_k, self.tau_w, self.knn_chunk_size,
                            image_index, self.exclude_same_image)
        out = {}
        if idx.shape[1] == 0:
            out['kl'] = q.sum() * 0.0
            return out
        with torch.no_grad():
            # M_i = sum_j w_ij log Q_j (stop-gradient side), [N_L, K], built in chunks.
            m = torch.empty_like(log_q)
            ld = log_q.detach()
            for s in range(0, idx.shape[0], self.knn_chunk_size):
                e = min(s + self.knn_chunk_size, idx.shape[0])
                m[s:e] = (w[s:e, :, None].to(ld.dtype) * ld[idx[s:e]]).sum(1)
            out['same_image_nn_frac'] = (image_index[idx] == image_index[:, None]).float().mean()
        out['kl'] = (torch.special.xlogy(q, q) - q * m).sum(-1).mean()
        return out

    @staticmethod
    @torch.no_grad()
    def lesion_diagnostics(v: torch.Tensor, Q_I: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Lesion-query collapse indicators (calibration.md).

        Args:
            v: [B_I, L, d_v] lesion embeddings; Q_I: [B_I, L, K].

        Returns:
            dict(lesion_cos_within = mean cosine between distinct lesions of one image
            (1 = all lesions identical), lesion_q_entropy = mean entropy of Q_I (nats)).
        """
        l = v.shape[1]
        out = {}
        if l > 1:
            vn = F.normalize(v.detach().float(), dim=-1)
            s_norm = vn.sum(1).pow(2).sum(-1)                           # ||sum_l v_l||^2
            out['lesion_cos_within'] = ((s_norm - l) / (l * (l - 1))).mean()
        q = Q_I.detach()
        out['lesion_q_entropy'] = -torch.special.xlogy(q, q).sum(-1).mean()
        return out

    @staticmethod
    def _weighted_soft_ce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                          weights: Optional[torch.Tensor]) -> torch.Tensor:
        if not bool(mask.any()):
            return logits.sum() * 0.0
        t = targets[mask].detach().to(logits.dtype)
        ce = -(t * F.log_softmax(logits[mask], dim=1)).sum(1)
        if weights is None:
            return ce.mean()
        w = weights[mask].detach().to(logits.dtype)
        return (w * ce).sum() / w.sum().clamp_min(1e-12)

    def alignment(self, H_I: torch.Tensor, H_R: torch.Tensor,
                  propagation: Dict) -> Dict[str, torch.Tensor]:
        """Eq. 11-12 with the targets of :class:`EvidencePropagation` (gathered features)."""
        scale = self.logit_scale.clamp(max=math.log(self.max_logit_scale)).exp()
        logits = scale * H_I @ H_R.t()                                  # [B_I, B_R]
        w_i = propagation.get('weights_i')
        w_t = propagation.get('weights_t')
        r_from_i = self._weighted_soft_ce(logits, propagation['targets_i2t'],
                                          propagation['mask_i'], w_i)
        i_from_r = self._weighted_soft_ce(logits.t(), propagation['targets_t2i'],
                                          propagation['mask_t'], w_t)
        total = r_from_i + i_from_r
        if self.align_reduction == 'mean':
            total = total / 2
        return dict(total=total, r_from_i=r_from_i.detach(), i_from_r=i_from_r.detach(),
                    logit_scale=scale.detach())

    def global_contrastive(self, g_image: torch.Tensor, g_report: torch.Tensor,
                           Y: torch.Tensor) -> torch.Tensor:
        """Eq. 1 on paired rows: ``CE(I R^T / tau_1, Y) + CE(R I^T / tau_1, Y^T)``."""
        logits = g_image @ g_report.t() / self.tau_1
        y = Y.detach().to(logits.dtype)
        return soft_cross_entropy(logits, y) + soft_cross_entropy(logits.t(), y.t())

    # ----------------------------------------------------------- forward
    def forward(self,
                loss_rec: Union[None, torch.Tensor, Dict[str, torch.Tensor]] = None,
                Qbar_R: Optional[torch.Tensor] = None,
                Qbar_I: Optional[torch.Tensor] = None,
                Y: Optional[torch.Tensor] = None,
                v: Optional[torch.Tensor] = None,
                Q_I: Optional[torch.Tensor] = None,
                log_Q_I: Optional[torch.Tensor] = None,
                H_I: Optional[torch.Tensor] = None,
                H_R: Optional[torch.Tensor] = None,
                propagation: Optional[Dict] = None,
                g_image: Optional[torch.Tensor] = None,
                g_report: Optional[torch.Tensor] = None,
                Y_global: Optional[torch.Tensor] = None,
                world_size: int = 1) -> Dict[str, torch.Tensor]:
        """
        Args:
            loss_rec: the dict of ``DiagnosticPrototypeHead.loss_rec`` (or its scalar).
            Qbar_R: [B_R, K] (Eq. 8), Qbar_I: [B_I, K] (Eq. 7), Y: [B_I, B_R] local seed links
                (for ``p``).
            v: [B_I, L, d_v], Q_I / log_Q_I: [B_I, L, K] (for ``u``; when ``log_Q_I`` is
                given, ``p`` uses the exact ``log Qbar_I = logsumexp_l log_Q_I - log L``, so
                ``Qbar_I`` must then be ``mean_l Q_I`` as the neck returns it).
            H_I: [B_I', d], H_R: [B_R', d] (gathered), propagation: the output of
                :class:`EvidencePropagation` on them (for ``align``).
            g_image, g_report: [B_I', d], [B_R', d] normalised global embeddings and
                ``Y_global`` their links (for ``g``; ``Y_global`` defaults to ``Y``).
            world_size: factor on the gradient of the gathered-feature terms.

        Returns:
            dict of weighted ``loss_*`` terms and diagnostics (scalar tensors).
        """
        out: Dict[str, torch.Tensor] = {}
        if 'rec' in self.terms:
            if loss_rec is None:
                raise ValueError('LGDEALoss: term "rec" is on but loss_rec was not given; pass '
                                 'DiagnosticPrototypeHead.loss_rec(z, mask).')
            if isinstance(loss_rec, dict):
                for key, val in loss_rec.items():
                    if key != 'loss_rec':
                        out[key] = val.detach()
                loss_rec = loss_rec['loss_rec']
            out['loss_rec'] = self.weights['rec'] * loss_rec
        if 'p' in self.terms:
            self._require('p', Qbar_R=Qbar_R, Qbar_I=Qbar_I, Y=Y)
            log_qbar = None
            if log_Q_I is not None:  # exact log of Qbar_I = mean_l Q_I (Eq. 7)
                if log_Q_I.shape[0] != Qbar_I.shape[0] or log_Q_I.shape[-1] != Qbar_I.shape[-1]:
                    raise ValueError('LGDEALoss: log_Q_I [B_I, L, K] does not match Qbar_I '
                                     f'[B_I, K]: {tuple(log_Q_I.shape)} vs '
                                     f'{tuple(Qbar_I.shape)}.')
                log_qbar = torch.logsumexp(log_Q_I, dim=1) - math.log(log_Q_I.shape[1])
            res = self.paired_kl(Qbar_R, Qbar_I, Y, log_qbar)
            out['loss_p'] = self.weights['p'] * res['kl']
            out['p_kl'] = res['kl'].detach()
            out['num_paired_images'] = res['num_paired']
        if 'u' in self.terms:
            self._require('u', v=v, Q_I=Q_I)
            res = self.lesion_consistency(v, Q_I, log_Q_I)
            kl = res.pop('kl')
            out['loss_u'] = self.weights['u'] * kl
            out['u_kl'] = kl.detach()
            out.update(res)
        if v is not None and Q_I is not None:
            out.update(self.lesion_diagnostics(v, Q_I))
        if 'align' in self.terms:
            self._require('align', H_I=H_I, H_R=H_R, propagation=propagation)
            res = self.alignment(H_I, H_R, propagation)
            out['loss_align'] = scale_gradient(self.weights['align'] * res['total'],
                                               float(world_size))
            out['align_r_from_i'] = res['r_from_i']
            out['align_i_from_r'] = res['i_from_r']
            out['align_logit_scale'] = res['logit_scale']
            for key, val in propagation.get('diagnostics', {}).items():
                out[key] = val
        if 'g' in self.terms:
            self._require('g', g_image=g_image, g_report=g_report)
            y = Y_global if Y_global is not None else Y
            if y is None:
                raise ValueError('LGDEALoss: term "g" needs Y_global (or Y).')
            g = self.global_contrastive(g_image, g_report, y)
            out['loss_g'] = scale_gradient(self.weights['g'] * g, float(world_size))
            out['g_ce'] = g.detach()
        return out

    @staticmethod
    def _require(term: str, **inputs) -> None:
        missing = [k for k, val in inputs.items() if val is None]
        if missing:
            raise ValueError(f'LGDEALoss: term "{term}" is on but {missing} were not given; '
                             'pass them or remove the term from `terms`.')

    def extra_repr(self) -> str:
        return (f'weights={self.weights}, terms={sorted(self.terms)}, knn_k={self.knn_k}, '
                f'tau_w={self.tau_w}, exclude_same_image={self.exclude_same_image}, '
                f'knn_chunk_size={self.knn_chunk_size}')
