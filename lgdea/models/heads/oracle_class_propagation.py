"""An oracle in place of Eq. 15-17, for measuring what perfect propagation would be worth.

**Never a default, never a result of the method**: it reads the dataset's finding labels, which
in a limited-pairing experiment stand for the withheld links. It answers one question of the
benchmark (docs/benchmark.md, "Unpaired data"): if every unpaired image and report received
the targets that a perfect propagation over the evidence graphs could give them, how much would
LGDEA gain over the paired-only control? Report identity beyond the finding set cannot be
recovered from evidence, so "perfect" is class-level: an unpaired image's targets are the
batch's reports with the same finding set as its own (withheld) report.

Shapes: ``B_I`` images, ``B_R`` reports (the gathered batch).
"""
from typing import Optional

import torch

from lgdea.registry import MODELS
from .evidence_propagation import EvidencePropagation


@MODELS.register_module()
class OracleClassPropagation(EvidencePropagation):
    """``P = Y + O`` with class-level oracle links instead of the propagated relations.

    ``O[i, j] = [c_i = c_j] / n_i`` for every image-report pair of which at least one item is
    unpaired, where ``c`` is the finding-set key of an item (``lgdea.models.utils.
    finding_labels``; -1 = unknown, never linked) and ``n_i`` the number of such matches of
    image ``i`` (each row's oracle mass is 1). Links between two paired items stay ``Y``. Row
    masking, normalisation and ``row_weight`` are those of :class:`EvidencePropagation`; with
    ``propagate=False`` (a phase without propagation) or a fully paired batch under
    ``at_full_pairing='hard'``, ``P = Y`` as there. The graph arguments (``steps``, ``tau_g``,
    ``topk``) are not used and must stay at their defaults.

    LGDEA passes ``image_labels`` / ``report_labels`` to a propagation module whose
    ``requires_labels`` is True, and stops when the batch has none.
    """

    requires_labels = True

    def __init__(self, min_mass: float = 1e-3, row_weight: str = 'none',
                 at_full_pairing: str = 'hard', **graph_args):
        unused = {k: v for k, v in graph_args.items()
                  if (k, v) not in (('steps', 2), ('tau_g', 0.1), ('topk', None))}
        if unused:
            raise ValueError(f'OracleClassPropagation builds no evidence graph; remove '
                             f'{sorted(unused)} from its config.')
        super().__init__(min_mass=min_mass, row_weight=row_weight,
                         at_full_pairing=at_full_pairing)

    @torch.no_grad()
    def relations(self, H_I: torch.Tensor, H_R: torch.Tensor, y: torch.Tensor,
                  image_paired: torch.Tensor, report_paired: torch.Tensor,
                  image_labels: Optional[torch.Tensor] = None,
                  report_labels: Optional[torch.Tensor] = None):
        """``P = Y + O`` from ``image_labels`` [B_I] and ``report_labels`` [B_R] int64
        finding-set keys (required; passed through :meth:`EvidencePropagation.forward`)."""
        if image_labels is None or report_labels is None:
            raise ValueError('OracleClassPropagation needs the finding labels of the batch '
                             '(gt_score on every image and report sample).')
        if image_labels.shape[0] != y.shape[0] or report_labels.shape[0] != y.shape[1]:
            raise ValueError(f'OracleClassPropagation: labels [{image_labels.shape[0]}], '
                             f'[{report_labels.shape[0]}] do not match Y {tuple(y.shape)}.')
        o = self.oracle_links(image_labels.to(y.device), report_labels.to(y.device),
                              image_paired, report_paired)
        return y + o, {}

    @staticmethod
    @torch.no_grad()
    def oracle_links(image_labels: torch.Tensor, report_labels: torch.Tensor,
                     image_paired: torch.Tensor, report_paired: torch.Tensor) -> torch.Tensor:
        """``O`` [B_I, B_R] float: same known finding set, at least one side unpaired, each
        non-empty row summing to 1."""
        same = (image_labels[:, None] == report_labels[None, :]) & (image_labels[:, None] >= 0)
        touches_unpaired = ~(image_paired[:, None] & report_paired[None, :])
        o = (same & touches_unpaired).float()
        return o / o.sum(dim=1, keepdim=True).clamp_min(1.0)
