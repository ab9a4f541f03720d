"""Diagnostic prototypes of the evidence space (paper Eq. 3-8, docs/method.md "Evidence space").

Shapes: ``K`` prototypes of dimension ``d``; evidence embeddings ``z`` come either flat
``[N, d]`` or per report ``[B_R, N_max, d]`` with a validity mask ``[B_R, N_max]``
(``True`` = a real phrase, ``False`` = padding).
"""
from typing import Dict, Optional

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from lgdea.models.utils.precision import float32_forward
from lgdea.registry import MODELS


def _flatten_valid(z: torch.Tensor, mask: Optional[torch.Tensor], embed_dims: int,
                   where: str) -> torch.Tensor:
    """``z`` [..., d] (+ mask [...]) -> the valid rows [N_E, d]."""
    if z.shape[-1] != embed_dims:
        raise ValueError(f'{where}: evidence embeddings `z` have last dim {z.shape[-1]} but the '
                         f'head was built with embed_dims={embed_dims}; make the text '
                         'projection output match `embed_dims`.')
    if mask is None:
        return z.reshape(-1, embed_dims)
    if tuple(mask.shape) != tuple(z.shape[:-1]):
        raise ValueError(f'{where}: `mask` has shape {tuple(mask.shape)} but `z` has leading '
                         f'shape {tuple(z.shape[:-1])}; pass the phrase mask of the same '
                         'padded evidence batch ([B_R, N_max]).')
    return z[mask.bool()]


@MODELS.register_module()
class DiagnosticPrototypeHead(BaseModule):
    """Learnable diagnostic prototypes ``mu`` [K, d]: the owner of Eq. 3-8.

    - Eq. 4: ``p(k | z_n) = softmax_k(z_n . mu_k / tau_t)``.
    - Eq. 5: ``L_rec`` through its loss module (:class:`PrototypeReconstructionLoss`,
      :meth:`loss`).
    - Eq. 6: ``Q_I(l, k) = softmax_k(phi(v_l) . mu_k / tau_p)`` [B, L, K] and Eq. 7:
      ``Qbar_I = mean_l Q_I`` [B, K] (:meth:`image_distribution`, with exact logs).
    - Eq. 8: ``Qbar_R(k)`` = mean over the report's valid phrases of ``p(k | z_n)``.

    The prototypes are *not* normalised in Eq. 4 (the paper's form); their norm is held up by
    the reconstruction term against the ``lambda_mu`` penalty of the loss.

    Args:
        num_prototypes: ``K`` (paper sweep 32-128, default 64).
        embed_dims: ``d`` of the evidence space (256).
        tau_t: temperature of Eq. 4 (0.1).
        tau_p: temperature of Eq. 6 (0.1).
        loss: config of the reconstruction loss (default
            ``PrototypeReconstructionLoss(lambda_mu=1, loss_weight=1)``).
        init: ``'sphere'`` (Gaussian rows normalised to unit norm) or ``'kmeans'`` (sphere at
            construction; ``PrototypeInitHook`` replaces them by faiss spherical k-means
            centroids of the evidence embeddings of a sample of training reports before the
            first iteration; the model refuses to train until then).
        freeze: keep ``mu`` fixed at its initial value (the ``wo_rec`` ablation).
        detach_text: stop the gradient of ``L_rec`` into ``z`` (the text encoder); a repair
            against text-side collapse (docs/design_lessons.md), default False as in the paper.
        kmeans_iters: faiss k-means iterations.
        kmeans_max_samples: at most this many embeddings are clustered (random subset).
        seed: seed of the sphere init and of k-means.
    """

    def __init__(self,
                 num_prototypes: int = 64,
                 embed_dims: int = 256,
                 tau_t: float = 0.1,
                 tau_p: float = 0.1,
                 loss: Optional[dict] = None,
                 init: str = 'sphere',
                 freeze: bool = False,
                 detach_text: bool = False,
                 kmeans_iters: int = 25,
                 kmeans_max_samples: int = 100_000,
                 seed: int = 0,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if num_prototypes < 1:
            raise ValueError(f'DiagnosticPrototypeHead: num_prototypes must be >= 1, got '
                             f'{num_prototypes}.')
        if tau_t <= 0 or tau_p <= 0:
            raise ValueError(f'DiagnosticPrototypeHead: tau_t ({tau_t}) and tau_p ({tau_p}) '
                             'must be > 0.')
        if init not in ('sphere', 'kmeans'):
            raise ValueError(f'DiagnosticPrototypeHead: init must be "sphere" or "kmeans", got '
                             f'{init!r}.')
        self.num_prototypes = num_prototypes
        self.embed_dims = embed_dims
        self.tau_t = tau_t
        self.tau_p = tau_p
        self.loss_module = MODELS.build(loss or dict(type='PrototypeReconstructionLoss'))
        self.init_mode = init
        self.freeze = freeze
        self.detach_text = detach_text
        self.kmeans_iters = kmeans_iters
        self.kmeans_max_samples = kmeans_max_samples
        self.seed = seed
        gen = torch.Generator().manual_seed(seed)
        mu = F.normalize(torch.randn(num_prototypes, embed_dims, generator=gen), dim=-1)
        self.mu = nn.Parameter(mu, requires_grad=not freeze)
        # Persistent flag so that a resumed run does not re-run k-means over trained prototypes.
        self.register_buffer('kmeans_done', torch.tensor(False))

    # ----------------------------------------------------------------- init
    @property
    def needs_kmeans_init(self) -> bool:
        """True while ``init='kmeans'`` and :meth:`init_from_embeddings` has not run yet."""
        return self.init_mode == 'kmeans' and not bool(self.kmeans_done)

    @torch.no_grad()
    def init_from_embeddings(self, z: torch.Tensor) -> torch.Tensor:
        """Set ``mu`` to faiss spherical k-means centroids of evidence embeddings.

        Args:
            z: [N, d] evidence embeddings (e.g. ``z_n`` of a sample of cached phrases);
                at most ``kmeans_max_samples`` rows (random subset, ``seed``) are clustered.

        Returns:
            the new prototypes [K, d] (unit norm).
        """
        import faiss  # faiss-cpu; imported lazily (only the k-means init needs it)

        z = _flatten_valid(z.detach(), None, self.embed_dims,
                           'DiagnosticPrototypeHead.init_from_embeddings')
        n = z.shape[0]
        if n < self.num_prototypes:
            raise ValueError(
                f'DiagnosticPrototypeHead.init_from_embeddings: got {n} embeddings for '
                f'K={self.num_prototypes} prototypes; k-means needs at least K (better 39*K) '
                'embeddings: encode a larger sample of evidence phrases.')
        x = F.normalize(z.float(), dim=-1).cpu().numpy()
        if n > self.kmeans_max_samples:
            rng = np.random.default_rng(self.seed)
            x = x[rng.choice(n, self.kmeans_max_samples, replace=False)]
        x = np.ascontiguousarray(x, dtype=np.float32)
        km = faiss.Kmeans(self.embed_dims, self.num_prototypes, niter=self.kmeans_iters,
                          seed=self.seed, spherical=True, verbose=False)
        km.train(x)
        centroids = torch.from_numpy(np.asarray(km.centroids, dtype=np.float32))
        self.mu.data.copy_(F.normalize(centroids, dim=-1).to(self.mu))
        self.kmeans_done.fill_(True)
        return self.mu.data

    # ----------------------------------------------------------- equations
    def assign_logits(self, z: torch.Tensor, tau: Optional[float] = None) -> torch.Tensor:
        """``z . mu_k / tau`` for ``z`` [..., d] -> [..., K]."""
        tau = self.tau_t if tau is None else tau
        return z @ self.mu.t() / tau

    def assign(self, z: torch.Tensor, tau: Optional[float] = None) -> torch.Tensor:
        """Eq. 4: ``p(k | z)`` [..., K] for ``z`` [..., d] (``tau`` defaults to ``tau_t``)."""
        return self.assign_logits(z, tau).softmax(dim=-1)

    @float32_forward
    def image_distribution(self, phi: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Eq. 6-7 for lesion embeddings ``phi(v)`` [B, L, d] (at ``tau_p``).

        Returns:
            dict(Q_I [B, L, K], log_Q_I [B, L, K], Qbar_I [B, K],
            log_Qbar_I [B, K] = logsumexp_l log_Q_I - log L, the exact log of Eq. 7).
        """
        if phi.dim() != 3 or phi.shape[-1] != self.embed_dims:
            raise ValueError('DiagnosticPrototypeHead.image_distribution: `phi` must be '
                             f'[B, L, {self.embed_dims}], got {tuple(phi.shape)}.')
        log_q = F.log_softmax(self.assign_logits(phi, tau=self.tau_p), dim=-1)
        q = log_q.exp()
        return dict(Q_I=q, log_Q_I=log_q, Qbar_I=q.mean(dim=1),
                    log_Qbar_I=torch.logsumexp(log_q, dim=1) - math.log(log_q.shape[1]))

    @float32_forward
    def loss(self, z: torch.Tensor,
             mask: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Eq. 5 through the head's loss module, plus the prototype diagnostics.

        Args:
            z: [B_R, N_max, d] (with ``mask``) or [N, d] evidence embeddings.
            mask: [B_R, N_max] bool, True for a real phrase.

        Returns:
            dict(loss_rec, rec_recon, rec_reg) of :class:`PrototypeReconstructionLoss` and the
            diagnostics of :meth:`diagnostics` (keys without "loss").
        """
        zv = _flatten_valid(z, mask, self.embed_dims, 'DiagnosticPrototypeHead.loss')
        if self.detach_text:
            zv = zv.detach()
        p = self.assign(zv)                                    # [N_E, K]
        out = self.loss_module(zv, p, self.mu)
        out.update(self.diagnostics(zv, p=p.detach()))
        return out

    @float32_forward
    def report_distribution(self, z: torch.Tensor,
                            mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Eq. 8: ``Qbar_R`` [B_R, K], the mean of ``p(k|z_n)`` over each report's valid phrases.

        Args:
            z: [B_R, N_max, d] evidence embeddings of each report (or [B_R, d]: one phrase each,
                e.g. ``proj(R^g)`` in the ``wo_rec`` ablation).
            mask: [B_R, N_max] bool; every report needs at least one valid phrase
                (``|E(R)| >= 1``: a normal report carries the canonical phrase).
        """
        if z.dim() == 2:
            return self.assign(z)
        if z.dim() != 3:
            raise ValueError('DiagnosticPrototypeHead.report_distribution: `z` must be '
                             f'[B_R, N_max, d] or [B_R, d], got shape {tuple(z.shape)}.')
        if mask is None:
            mask = torch.ones(z.shape[:2], dtype=torch.bool, device=z.device)
        if tuple(mask.shape) != tuple(z.shape[:2]):
            raise ValueError('DiagnosticPrototypeHead.report_distribution: `mask` shape '
                             f'{tuple(mask.shape)} does not match `z` {tuple(z.shape[:2])}.')
        counts = mask.sum(1)
        if bool((counts == 0).any()):
            bad = torch.nonzero(counts == 0).flatten().tolist()
            raise ValueError('DiagnosticPrototypeHead.report_distribution: reports at batch '
                             f'positions {bad} have no valid evidence phrase; every report needs '
                             '|E(R)| >= 1 (the canonical "no acute cardiopulmonary abnormality" '
                             'phrase for normal reports). Check the EvidenceTokenizer output.')
        p = self.assign(z) * mask[..., None].to(z.dtype)        # [B_R, N_max, K]
        return p.sum(1) / counts[:, None].to(z.dtype)

    @torch.no_grad()
    def diagnostics(self, z: torch.Tensor,
                    p: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Mean ``||mu_k||``, mean assignment entropy and prototype-usage perplexity.

        Args:
            z: [N_E, d] valid evidence embeddings.
            p: their assignments [N_E, K] if already computed.

        Returns:
            dict(proto_norm, assign_entropy (nats, mean over phrases),
            proto_perplexity = exp(entropy of the mean assignment), in [1, K]); only
            ``proto_norm`` when there is no phrase.
        """
        mu_norm = self.mu.detach().norm(dim=-1).mean()
        if z.shape[0] == 0:  # nothing to assign: only the prototype norm is defined
            return dict(proto_norm=mu_norm)
        if p is None:
            p = self.assign(z.detach())
        ent = -torch.special.xlogy(p, p).sum(-1).mean()
        usage = p.mean(0)
        perplexity = torch.exp(-torch.special.xlogy(usage, usage).sum())
        return dict(proto_norm=mu_norm, assign_entropy=ent, proto_perplexity=perplexity)

    def extra_repr(self) -> str:
        return (f'K={self.num_prototypes}, d={self.embed_dims}, tau_t={self.tau_t}, '
                f'tau_p={self.tau_p}, init={self.init_mode!r}, freeze={self.freeze}')
