"""Unpaired lesion consistency ``L_u^evid`` (paper Eq. 10) and lesion-collapse diagnostics."""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from lgdea.models.utils.precision import float32_forward
from lgdea.registry import MODELS
from lgdea.utils.dist import global_mean


@torch.no_grad()
def lesion_knn(queries: torch.Tensor, candidates: torch.Tensor, k: int, tau_w: float,
               chunk_size: int = 1024, query_offset: int = 0,
               candidate_image: Optional[torch.Tensor] = None,
               exclude_same_image: bool = False):
    """Top-k cosine neighbours ``N_k(i)`` over ``j != i`` and their softmax weights (Eq. 10).

    Computed in chunks of ``chunk_size`` query rows, so the largest buffer is
    ``[chunk_size, N_C]`` and the result is O(N_Q k); no gradient.

    Args:
        queries: [N_Q, d_v] lesion embeddings whose neighbours are wanted; query ``i`` is
            candidate ``query_offset + i`` (excluded from its own neighbours).
        candidates: [N_C, d_v] every lesion of the (gathered) batch.
        k: neighbours per lesion (clipped to the number of candidates).
        tau_w: temperature of the weights ``w_ij = softmax_j(cos(v_i, v_j) / tau_w)``.
        chunk_size: query rows per chunk.
        query_offset: row of the first query among the candidates.
        candidate_image: [N_C] long, the image of each candidate (for
            ``exclude_same_image``).
        exclude_same_image: only lesions of other images are candidates.

    Returns:
        (idx [N_Q, k'] long into the candidates, w [N_Q, k'] float),
        ``k' = min(k, candidates)``; ``k' = 0`` when no lesion has a candidate.
    """
    qn = F.normalize(queries.detach().float(), dim=-1)
    cn = F.normalize(candidates.detach().float(), dim=-1)
    n_q, n_c = qn.shape[0], cn.shape[0]
    if exclude_same_image and candidate_image is None:
        raise ValueError('lesion_knn: exclude_same_image=True needs candidate_image.')
    if exclude_same_image:
        counts = torch.bincount(candidate_image)
        available = n_c - int(counts.max()) if counts.numel() else 0
    else:
        available = n_c - 1
    k_eff = max(0, min(k, available))
    idx = torch.empty(n_q, k_eff, dtype=torch.long, device=qn.device)
    w = torch.empty(n_q, k_eff, dtype=qn.dtype, device=qn.device)
    if k_eff == 0:
        return idx, w
    for s in range(0, n_q, chunk_size):
        e = min(s + chunk_size, n_q)
        sim = qn[s:e] @ cn.t()                                          # [c, N_C]
        own = torch.arange(s, e, device=qn.device) + query_offset
        sim[own - own[0], own] = float('-inf')
        if exclude_same_image:
            same = candidate_image[own, None] == candidate_image[None, :]
            sim.masked_fill_(same, float('-inf'))
        vals, nn_idx = sim.topk(k_eff, dim=1)
        idx[s:e] = nn_idx
        w[s:e] = (vals / tau_w).softmax(dim=1)
    return idx, w


@torch.no_grad()
def lesion_diagnostics(v: torch.Tensor, Q_I: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Lesion-query collapse indicators (docs/design_lessons.md).

    Args:
        v: [B_I, L, d_v] lesion embeddings; Q_I: [B_I, L, K].

    Returns:
        dict(lesion_cos_within = mean cosine between distinct lesions of one image
        (1 = all lesions identical), lesion_q_entropy = mean entropy of Q_I (nats)).
    """
    n_lesions = v.shape[1]
    out = {}
    if n_lesions > 1:
        vn = F.normalize(v.detach().float(), dim=-1)
        s_norm = vn.sum(1).pow(2).sum(-1)                               # ||sum_l v_l||^2
        out['lesion_cos_within'] = ((s_norm - n_lesions) /
                                    (n_lesions * (n_lesions - 1))).mean()
    q = Q_I.detach()
    out['lesion_q_entropy'] = -torch.special.xlogy(q, q).sum(-1).mean()
    return out


@MODELS.register_module()
class LesionConsistencyLoss(nn.Module):
    """``L_u = (1/N_L) sum_i sum_{j in N_k(i)} w_ij KL(Q_i || sg(Q_j))`` over every lesion.

    The neighbours ``N_k(i)`` are searched among all lesions of the (gathered) batch and,
    with their weights, carry no gradient. Because ``sum_j w_ij = 1`` this equals
    ``mean_i [sum_k Q_ik log Q_ik - Q_i . M_i]`` with ``M_i = sum_j w_ij log Q_j``, so memory
    stays O(N_L (k + K)).

    Args:
        knn_k: neighbours per lesion (5).
        tau_w: temperature of the neighbour weights (0.1).
        exclude_same_image: neighbours only from other images (False, paper).
        chunk_size: query rows per chunk of the neighbour search (1024).
        loss_weight: ``w_u`` of Eq. 18 (1.0).
    """

    def __init__(self, knn_k: int = 5, tau_w: float = 0.1, exclude_same_image: bool = False,
                 chunk_size: int = 1024, loss_weight: float = 1.0):
        super().__init__()
        if knn_k < 1 or chunk_size < 1:
            raise ValueError(f'LesionConsistencyLoss: knn_k ({knn_k}) and chunk_size '
                             f'({chunk_size}) must be >= 1.')
        self.knn_k = knn_k
        self.tau_w = tau_w
        self.exclude_same_image = exclude_same_image
        self.chunk_size = chunk_size
        self.loss_weight = float(loss_weight)

    @float32_forward
    def forward(self, Q_I: torch.Tensor, log_Q_I: torch.Tensor, v: torch.Tensor,
                v_all: Optional[torch.Tensor] = None, log_Q_all: Optional[torch.Tensor] = None,
                image_offset: int = 0) -> Dict[str, torch.Tensor]:
        """
        Args:
            Q_I, log_Q_I: [B_I, L, K] this rank's lesion distributions and their exact logs.
            v: [B_I, L, d_v] this rank's lesion embeddings.
            v_all, log_Q_all: [B_I', L, d_v], [B_I', L, K] the gathered batch (candidates;
                default: the local batch).
            image_offset: index of this rank's first image in the gathered batch.

        Returns:
            dict(loss_u (weighted), u_kl, same_image_nn_frac (fraction of neighbours from
            the same image; absent when no lesion has a candidate)).
        """
        if v.dim() != 3 or Q_I.dim() != 3 or v.shape[:2] != Q_I.shape[:2]:
            raise ValueError('LesionConsistencyLoss: v must be [B_I, L, d_v] and Q_I '
                             f'[B_I, L, K] with the same B_I, L; got {tuple(v.shape)} and '
                             f'{tuple(Q_I.shape)}.')
        if v_all is None:
            v_all, log_Q_all, image_offset = v, log_Q_I, 0
        b, n_lesions, _ = v.shape
        q = Q_I.reshape(b * n_lesions, -1)
        log_q = log_Q_I.reshape(b * n_lesions, -1)
        cand_log_q = log_Q_all.detach().reshape(-1, log_q.shape[-1])
        cand_image = torch.arange(v_all.shape[0], device=v.device).repeat_interleave(n_lesions)
        idx, w = lesion_knn(v.reshape(b * n_lesions, -1), v_all.reshape(-1, v.shape[-1]),
                            self.knn_k, self.tau_w, self.chunk_size,
                            image_offset * n_lesions, cand_image, self.exclude_same_image)
        out = {}
        if idx.shape[1] == 0:
            kl = global_mean(q.sum(-1)[:0])
        else:
            with torch.no_grad():
                m = torch.empty_like(log_q)
                for s in range(0, idx.shape[0], self.chunk_size):
                    e = min(s + self.chunk_size, idx.shape[0])
                    m[s:e] = (w[s:e, :, None].to(cand_log_q.dtype) * cand_log_q[idx[s:e]]).sum(1)
                own_image = cand_image[image_offset * n_lesions:][:b * n_lesions]
                out['same_image_nn_frac'] = (cand_image[idx] == own_image[:, None]).float().mean()
            kl = global_mean((torch.special.xlogy(q, q) - q * m).sum(-1))
        out.update(loss_u=self.loss_weight * kl, u_kl=kl.detach())
        return out

    def extra_repr(self) -> str:
        return (f'knn_k={self.knn_k}, tau_w={self.tau_w}, '
                f'exclude_same_image={self.exclude_same_image}, chunk_size={self.chunk_size}, '
                f'loss_weight={self.loss_weight}')
