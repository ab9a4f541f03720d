"""Higher-order image-report relations by label propagation over evidence graphs
(paper Eq. 15-17, docs/method.md "Evidence-guided alignment").

Shapes: ``B_I`` images, ``B_R`` reports, evidence space width ``d``.
"""
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from lgdea.registry import MODELS

StudyIds = Union[torch.Tensor, Sequence]


def _masked_row_softmax(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Row softmax over the ``allowed`` entries (max-subtracted); rows with none -> zeros."""
    logits = logits.masked_fill(~allowed, float('-inf'))
    row_max = logits.max(dim=1, keepdim=True).values
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    e = torch.exp(logits - row_max) * allowed
    denom = e.sum(dim=1, keepdim=True)
    return torch.where(denom > 0, e / denom.clamp_min(torch.finfo(e.dtype).tiny),
                       torch.zeros_like(e))


def _same_study(a: StudyIds, b: StudyIds, device) -> torch.Tensor:
    """[len(a), len(b)] bool: a[i] == b[j] (int64 keys or any hashable ids)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.to(device)[:, None] == b.to(device)[None, :]
    a, b = list(a), list(b)
    codes = {}
    ca = torch.tensor([codes.setdefault(x, len(codes)) for x in a], dtype=torch.long)
    cb = torch.tensor([codes.setdefault(x, len(codes)) for x in b], dtype=torch.long)
    return (ca[:, None] == cb[None, :]).to(device)


@MODELS.register_module()
class EvidencePropagation(nn.Module):
    """Propagate the seed links ``Y`` over image-image and report-report evidence graphs.

    - Graphs (Eq. 15-16): ``A(i, j) = exp(cos(H_i, H_j) / tau_g)`` for ``i != j`` (no self
      loops), optionally only the ``topk`` largest per row, row-normalised to ``S`` (a masked
      softmax, so it is numerically stable).
    - Eq. 17: ``P^(0) = Y``, ``P^(t+1) = S_I P^(t) S_T + Y`` for ``steps`` steps. Whether
      ``P`` is propagated at all is the caller's ``propagate`` argument (the training phase);
      without it, or on a fully paired batch with ``at_full_pairing='hard'``, ``P = Y``.
    - Row mass ``m_i = sum_j P_ij``; rows with ``m_i < min_mass * max(m)`` (or ``m_i = 0``)
      are masked; the rest are normalised to the image->report targets. The report->image
      targets are the rows of ``P^T`` treated the same way.
    - ``row_weight='mass'``: each kept row is weighted by its mass, normalised to mean 1 over
      the kept rows (``'none'``: weight 1).

    Everything runs under ``no_grad`` (targets carry no gradient).

    Args:
        steps: propagation steps (2, >= 1).
        tau_g: graph temperature (0.1).
        topk: keep only the ``topk`` most similar neighbours per row (None = all).
        min_mass: relative mass threshold below which a row is masked (1e-3).
        row_weight: ``'none'`` or ``'mass'``.
        at_full_pairing: ``'hard'``: ``P = Y`` when every image and report of the batch is
            paired (the paper's fully paired setting); ``'propagate'``: propagate anyway.
    """

    def __init__(self, steps: int = 2, tau_g: float = 0.1, topk: Optional[int] = None,
                 min_mass: float = 1e-3, row_weight: str = 'none',
                 at_full_pairing: str = 'hard'):
        super().__init__()
        if steps < 1:
            raise ValueError(f'EvidencePropagation: steps must be >= 1, got {steps}; to train '
                             'with P = Y set `propagation=False` in the phase (or '
                             '`LGDEA(propagate=False)`).')
        if at_full_pairing not in ('hard', 'propagate'):
            raise ValueError('EvidencePropagation: at_full_pairing must be "hard" or '
                             f'"propagate", got {at_full_pairing!r}.')
        if tau_g <= 0:
            raise ValueError(f'EvidencePropagation: tau_g must be > 0, got {tau_g}.')
        if topk is not None and topk < 1:
            raise ValueError(f'EvidencePropagation: topk must be None or >= 1, got {topk}.')
        if row_weight not in ('none', 'mass'):
            raise ValueError(f'EvidencePropagation: row_weight must be "none" or "mass", got '
                             f'{row_weight!r}.')
        self.steps = steps
        self.tau_g = tau_g
        self.topk = topk
        self.min_mass = min_mass
        self.row_weight = row_weight
        self.at_full_pairing = at_full_pairing

    @torch.no_grad()
    def build_graph(self, h: torch.Tensor) -> torch.Tensor:
        """Row-normalised evidence graph ``S`` [N, N] from ``h`` [N, d] (Eq. 15/16).

        ``S_ii = 0``; each row is a softmax of ``cos / tau_g`` over the other nodes (or over
        the ``topk`` nearest); a single node gets an all-zero row.
        """
        h = F.normalize(h.detach().float(), dim=-1)
        n = h.shape[0]
        cos = h @ h.t()
        allowed = ~torch.eye(n, dtype=torch.bool, device=h.device)
        if self.topk is not None and self.topk < n - 1:
            masked = cos.masked_fill(~allowed, float('-inf'))
            idx = masked.topk(self.topk, dim=1).indices
            keep = torch.zeros_like(allowed)
            keep.scatter_(1, idx, True)
            allowed = keep & allowed
        return _masked_row_softmax(cos / self.tau_g, allowed)

    @torch.no_grad()
    def propagate(self, s_i: torch.Tensor, y: torch.Tensor, s_t: torch.Tensor) -> torch.Tensor:
        """Eq. 17 for ``steps`` steps: ``P <- S_I P S_T + Y`` from ``P = Y``."""
        p = y
        for _ in range(self.steps):
            p = s_i @ p @ s_t + y
        return p

    @torch.no_grad()
    def relations(self, H_I: torch.Tensor, H_R: torch.Tensor, y: torch.Tensor,
                  image_paired: torch.Tensor, report_paired: torch.Tensor):
        """The propagated relations ``P`` [B_I, B_R] (Eq. 15-17) and extra diagnostics
        ({} here); subclasses replace this step and keep masking / normalisation."""
        return self.propagate(self.build_graph(H_I), y, self.build_graph(H_R)), {}

    @torch.no_grad()
    def _normalise_rows(self, p: torch.Tensor):
        mass = p.sum(dim=1)
        threshold = self.min_mass * mass.max() if mass.numel() else mass.new_zeros(())
        keep = (mass > 0) & (mass >= threshold)
        targets = torch.where(keep[:, None], p / mass.clamp_min(1e-30)[:, None],
                              torch.zeros_like(p))
        if self.row_weight == 'mass' and bool(keep.any()):
            w = torch.where(keep, mass, torch.zeros_like(mass))
            weights = w / w[keep].mean()
        else:
            weights = keep.to(p.dtype)
        return targets, keep, weights, mass

    @torch.no_grad()
    def forward(self,
                H_I: torch.Tensor,
                H_R: torch.Tensor,
                Y: torch.Tensor,
                image_paired: torch.Tensor,
                report_paired: torch.Tensor,
                propagate: bool = True,
                image_study_ids: Optional[StudyIds] = None,
                report_study_ids: Optional[StudyIds] = None,
                **relation_inputs) -> Dict:
        """
        Args:
            H_I: [B_I, d] image evidence representations (Eq. 14).
            H_R: [B_R, d] report evidence representations (Eq. 13).
            Y: [B_I, B_R] seed links (0/1).
            image_paired, report_paired: [B_I], [B_R] bool, whether each item's study is
                paired.
            propagate: propagate (Eq. 17) or use ``P = Y``.
            image_study_ids, report_study_ids: study ids (int64 keys [B] or lists) for the
                hidden-pair diagnostic: over unpaired images whose study's report is in the
                batch, the fraction whose argmax target is that report (a masked row counts
                as a miss); ``hidden_pair_chance`` = 1 / B_R.
            **relation_inputs: extra inputs of a subclass's :meth:`relations` (the oracle's
                finding labels); the evidence graphs take none.

        Returns:
            dict(P [B_I, B_R] raw propagated relations, propagated (bool),
            targets_i2t [B_I, B_R], mask_i [B_I] bool, weights_i [B_I],
            targets_t2i [B_R, B_I], mask_t [B_R] bool, weights_t [B_R],
            mass_i [B_I], mass_t [B_R], diagnostics = dict of scalar tensors).
        """
        if H_I.dim() != 2 or H_R.dim() != 2 or H_I.shape[1] != H_R.shape[1]:
            raise ValueError('EvidencePropagation: H_I and H_R must be [B_I, d] and [B_R, d] '
                             f'with the same d, got {tuple(H_I.shape)} and {tuple(H_R.shape)}.')
        if tuple(Y.shape) != (H_I.shape[0], H_R.shape[0]):
            raise ValueError(f'EvidencePropagation: Y must be [B_I, B_R]=({H_I.shape[0]}, '
                             f'{H_R.shape[0]}), got {tuple(Y.shape)}; build it with '
                             'lgdea.models.utils.build_pair_targets.')
        image_paired = image_paired.to(Y.device).bool()
        report_paired = report_paired.to(Y.device).bool()
        fully_paired = bool(image_paired.all()) and bool(report_paired.all())
        if propagate and self.at_full_pairing == 'hard' and fully_paired:
            propagate = False
        y = Y.detach().float()
        extra: Dict[str, torch.Tensor] = {}
        if propagate:
            p, extra = self.relations(H_I, H_R, y, image_paired, report_paired,
                                      **relation_inputs)
        else:
            p = y
        targets_i2t, mask_i, weights_i, mass_i = self._normalise_rows(p)
        targets_t2i, mask_t, weights_t, mass_t = self._normalise_rows(p.t())
        diag = self._diagnostics(p, targets_i2t, mask_i, mask_t, mass_i, image_paired,
                                 image_study_ids, report_study_ids)
        diag.update(extra)
        return dict(P=p, propagated=propagate, targets_i2t=targets_i2t, mask_i=mask_i,
                    weights_i=weights_i, targets_t2i=targets_t2i, mask_t=mask_t,
                    weights_t=weights_t, mass_i=mass_i, mass_t=mass_t, diagnostics=diag)

    @torch.no_grad()
    def _diagnostics(self, p, targets_i2t, mask_i, mask_t, mass_i, image_paired,
                     image_study_ids, report_study_ids) -> Dict[str, torch.Tensor]:
        diag = dict(prop_masked_i=(~mask_i).sum().float(),
                    prop_masked_t=(~mask_t).sum().float(),
                    prop_kept_unpaired_i=(mask_i & ~image_paired).sum().float())
        qs = torch.tensor([0.1, 0.5, 0.9], device=p.device)
        for name, rows in (('paired', image_paired), ('unpaired', ~image_paired)):
            if bool(rows.any()):
                q = torch.quantile(mass_i[rows], qs)
                for qi, tag in zip(q, ('q10', 'q50', 'q90')):
                    diag[f'mass_{name}_{tag}'] = qi
        if image_study_ids is not None and report_study_ids is not None:
            same = _same_study(image_study_ids, report_study_ids, p.device)   # [B_I, B_R]
            hidden = (~image_paired) & same.any(dim=1)
            n_hidden = hidden.sum()
            diag['hidden_pair_count'] = n_hidden.float()
            if bool(n_hidden > 0):
                top = targets_i2t.argmax(dim=1)
                hit = same.gather(1, top[:, None]).squeeze(1) & mask_i
                diag['hidden_pair_acc'] = (hit & hidden).sum().float() / n_hidden.float()
                diag['hidden_pair_chance'] = p.new_tensor(1.0 / p.shape[1])
        return diag

    @staticmethod
    @torch.no_grad()
    def class_target_precision(targets_i2t: torch.Tensor, mask_i: torch.Tensor,
                               image_paired: torch.Tensor, image_labels: torch.Tensor,
                               report_labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Share of the unpaired images' target mass on reports with the same finding set.

        Args:
            targets_i2t: [B_I, B_R] row-normalised targets (rows of masked images are 0).
            mask_i: [B_I] bool, rows kept by the alignment loss.
            image_paired: [B_I] bool.
            image_labels, report_labels: [B_I], [B_R] int64 finding-set keys (-1: unknown).

        Returns:
            ``target_class_precision``: mean over kept unpaired images with a label of
            ``sum_j targets[i, j] * [labels_R[j] == labels_I[i]]`` (over labelled reports,
            renormalised); ``target_class_chance``: the same for uniform targets over the
            batch's labelled reports; ``target_class_rows``: the number of rows measured.
            Empty when no row qualifies.
        """
        known_r = report_labels >= 0
        rows = mask_i & ~image_paired.bool() & (image_labels >= 0)
        if not bool(rows.any()) or not bool(known_r.any()):
            return {}
        match = (image_labels[rows][:, None] == report_labels[None, :]) & known_r[None, :]
        t = targets_i2t[rows] * known_r[None, :].to(targets_i2t.dtype)
        mass = t.sum(dim=1).clamp_min(1e-12)
        precision = (t * match.to(t.dtype)).sum(dim=1) / mass
        chance = match.sum(dim=1).to(t.dtype) / known_r.sum().to(t.dtype)
        return dict(target_class_precision=precision.mean(),
                    target_class_chance=chance.mean(),
                    target_class_rows=rows.sum().to(t.dtype))

    def extra_repr(self) -> str:
        return (f'steps={self.steps}, tau_g={self.tau_g}, topk={self.topk}, '
                f'min_mass={self.min_mass}, row_weight={self.row_weight!r}, '
                f'at_full_pairing={self.at_full_pairing!r}')
