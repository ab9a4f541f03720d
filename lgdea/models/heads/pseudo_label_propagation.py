"""Cross-modal pseudo-links for unpaired images, an alternative to Eq. 15-17.

The evidence graphs of Eq. 15-17 reach an unpaired image's reports only through its
image-image neighbours, whose class-level precision stays near chance at demo scale
(``target_class_precision``, docs/benchmark.md section 8). This module links an unpaired image
directly to the batch's reports by the current image-report similarity, keeps only confident
images, and leaves everything else to :class:`EvidencePropagation` (row masks, normalisation,
``row_weight``, ``at_full_pairing``, diagnostics).

Shapes: ``B_I`` images, ``B_R`` reports (the gathered batch), width ``d``.
"""

import torch

from lgdea.registry import MODELS
from .evidence_propagation import EvidencePropagation


@MODELS.register_module()
class PseudoLabelPropagation(EvidencePropagation):
    """``P = Y + O``: confident cross-modal pseudo-links of the unpaired images.

    For an unpaired image ``i``: ``q_ij = softmax_j(cos(H_I_i, H_R_j) / tau_pl)`` over the
    batch's reports. Reports whose ``H_R`` are (near-)identical (``cos >= same_evidence``:
    the same evidence set) form one group; the image's confidence is the ``q`` mass of its most
    likely group, and ``O[i] = q_i`` restricted to that group (renormalised) when the
    confidence is at least ``threshold``, else 0 (the row is masked unless other links reach
    it). Unpaired reports receive their targets through ``P^T`` (the images pseudo-linked to
    them). Paired rows stay ``Y``; ``propagate=False`` gives ``P = Y``.

    ``report_links=True`` adds links from the report side, where the text is read directly:
    every unpaired report ``j`` is linked to the image of the paired study whose report is
    nearest to it, ``k*(j) = argmax_k cos(H_R_k, H_R_j)`` over the paired reports (every ``k``
    within 1e-4 of the maximum, so identical evidence links to all its copies), when that
    cosine is at least ``report_link_cos``: ``E[i, j] = [Y_ik = 1 for such k]``, each non-empty
    row of ``E`` normalised to 1, and ``P = Y + O + E``. The default 0.999 links only reports
    with the same evidence set; lower values reach reports of the same findings worded,
    located or graded differently. It uses only the reports and the known pairs;
    ``report_linked_frac`` is the share of unpaired reports that received a link.

    Args:
        tau_pl: temperature of the pseudo-label softmax (0.05).
        threshold: minimum group confidence (0.5; 0 keeps every unpaired image).
        same_evidence: cosine above which two reports count as the same evidence (0.999).
        report_links: add the report links ``E`` of the unpaired reports (False).
        report_link_cos: minimum cosine of a report link (0.999: the same evidence set).
        min_mass, row_weight, at_full_pairing: as :class:`EvidencePropagation`.
    """

    def __init__(self, tau_pl: float = 0.05, threshold: float = 0.5,
                 same_evidence: float = 0.999, report_links: bool = False,
                 report_link_cos: float = 0.999,
                 min_mass: float = 1e-3,
                 row_weight: str = 'none', at_full_pairing: str = 'hard', **graph_args):
        unused = {k: v for k, v in graph_args.items()
                  if (k, v) not in (('steps', 2), ('tau_g', 0.1), ('topk', None))}
        if unused:
            raise ValueError(f'PseudoLabelPropagation builds no evidence graph; remove '
                             f'{sorted(unused)} from its config.')
        if tau_pl <= 0 or not 0 <= threshold <= 1:
            raise ValueError(f'PseudoLabelPropagation: need tau_pl > 0 and 0 <= threshold <= '
                             f'1, got tau_pl={tau_pl}, threshold={threshold}.')
        super().__init__(min_mass=min_mass, row_weight=row_weight,
                         at_full_pairing=at_full_pairing)
        self.tau_pl, self.threshold, self.same_evidence = tau_pl, threshold, same_evidence
        if not -1 <= report_link_cos <= 1:
            raise ValueError(f'PseudoLabelPropagation: report_link_cos must be in [-1, 1], got '
                             f'{report_link_cos}.')
        self.report_links, self.report_link_cos = bool(report_links), float(report_link_cos)

    @torch.no_grad()
    def relations(self, H_I: torch.Tensor, H_R: torch.Tensor, y: torch.Tensor,
                  image_paired: torch.Tensor, report_paired: torch.Tensor):
        """``P = Y + O``; diagnostics ``pseudo_kept_frac`` (share of unpaired images above the
        threshold) and ``pseudo_confidence`` (mean group confidence of the unpaired images)."""
        o, conf, kept = self.pseudo_links(H_I, H_R, image_paired)
        unpaired = ~image_paired.bool()
        extra = {}
        if bool(unpaired.any()):
            extra = dict(pseudo_kept_frac=kept[unpaired].float().mean(),
                         pseudo_confidence=conf[unpaired].mean())
        if self.report_links:
            e = self.evidence_links(H_R, y, report_paired)
            unpaired_r = ~report_paired.bool()
            if bool(unpaired_r.any()):
                extra['report_linked_frac'] = (e.sum(dim=0) > 0)[unpaired_r].float().mean()
            o = o + e
        return y + o, extra

    @torch.no_grad()
    def evidence_links(self, H_R: torch.Tensor, y: torch.Tensor,
                       report_paired: torch.Tensor) -> torch.Tensor:
        """``E`` [B_I, B_R]: paired image ``i`` -> the unpaired reports whose nearest paired
        report is its partner (``Y`` [B_I, B_R] seed links), rows normalised to 1 (or 0)."""
        h_r = torch.nn.functional.normalize(H_R.detach().float(), dim=-1)
        paired_r = report_paired.bool()
        if not bool(paired_r.any()) or bool(paired_r.all()):
            return torch.zeros_like(y)
        cos = (h_r @ h_r.t()).masked_fill(~paired_r[:, None], -2.0)      # [B_R (k), B_R (j)]
        best = cos.max(dim=0, keepdim=True).values
        nearest = (cos >= best - 1e-4) & (cos >= self.report_link_cos) & ~paired_r[None, :]
        e = ((y @ nearest.to(y.dtype)) > 0).to(y.dtype)
        return e / e.sum(dim=1, keepdim=True).clamp_min(1.0)

    @torch.no_grad()
    def pseudo_links(self, H_I: torch.Tensor, H_R: torch.Tensor, image_paired: torch.Tensor):
        """``O`` [B_I, B_R], group confidence [B_I], kept [B_I] bool (paired rows: 0, 0, False)."""
        h_i = torch.nn.functional.normalize(H_I.detach().float(), dim=-1)
        h_r = torch.nn.functional.normalize(H_R.detach().float(), dim=-1)
        q = torch.softmax(h_i @ h_r.t() / self.tau_pl, dim=1)              # [B_I, B_R]
        same = (h_r @ h_r.t()) >= self.same_evidence                       # [B_R, B_R]
        group_mass = q @ same.float()                  # mass of each report's evidence group
        conf, top = group_mass.max(dim=1)
        in_group = same[top]                                               # [B_I, B_R]
        kept = (~image_paired.bool()) & (conf >= self.threshold)
        o = q * in_group.float()
        o = o / o.sum(dim=1, keepdim=True).clamp_min(1e-12)
        o = torch.where(kept[:, None], o, torch.zeros_like(o))
        return o, torch.where(image_paired.bool(), torch.zeros_like(conf), conf), kept

    def extra_repr(self) -> str:
        return (f'tau_pl={self.tau_pl}, threshold={self.threshold}, '
                f'same_evidence={self.same_evidence}, report_links={self.report_links}, '
                f'report_link_cos={self.report_link_cos}, '
                f'min_mass={self.min_mass}, '
                f'row_weight={self.row_weight!r}, at_full_pairing={self.at_full_pairing!r}')
