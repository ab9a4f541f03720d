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

    ``label_noise = eps`` turns the oracle into a *degraded* oracle of known precision: before
    the links are formed, each unpaired item's key is replaced, with probability ``eps``, by a
    different key drawn uniformly from the keys present on the other side of the batch, so an
    unpaired image puts about ``1 - eps`` of its target mass on its own finding set (the
    measured share is ``target_class_precision``). It answers how precise a propagation must
    be to pay. The draws come from a generator of the module seeded with ``noise_seed`` (same
    on every rank, so the gathered batch gets the same targets everywhere); it is not part of
    a checkpoint, so a resumed run draws afresh.

    ``links`` restricts the oracle to one side, to tell which side's targets carry its gain:
    ``'all'`` (default) as above; ``'unpaired_images'``: only the rows of unpaired images (to
    every report of their set); ``'unpaired_reports'``: only links from paired images to
    unpaired reports of their set (an unpaired image gets no target).

    LGDEA passes ``image_labels`` / ``report_labels`` to a propagation module whose
    ``requires_labels`` is True, and stops when the batch has none.

    Args:
        links: ``'all'``, ``'unpaired_images'`` or ``'unpaired_reports'``.
        label_noise: probability ``eps`` in [0, 1) that an unpaired item's key is replaced by a
            wrong one (0: the perfect oracle).
        noise_seed: seed of the generator of those draws.
        min_mass, row_weight, at_full_pairing: as :class:`EvidencePropagation`.
    """

    requires_labels = True

    LINKS = ('all', 'unpaired_images', 'unpaired_reports')

    def __init__(self, label_noise: float = 0.0, noise_seed: int = 0, links: str = 'all',
                 min_mass: float = 1e-3, row_weight: str = 'none',
                 at_full_pairing: str = 'hard', **graph_args):
        unused = {k: v for k, v in graph_args.items()
                  if (k, v) not in (('steps', 2), ('tau_g', 0.1), ('topk', None))}
        if unused:
            raise ValueError(f'OracleClassPropagation builds no evidence graph; remove '
                             f'{sorted(unused)} from its config.')
        if not 0 <= label_noise < 1:
            raise ValueError(f'OracleClassPropagation: label_noise must be in [0, 1), got '
                             f'{label_noise}.')
        if links not in self.LINKS:
            raise ValueError(f'OracleClassPropagation: links must be one of {self.LINKS}, got '
                             f'{links!r}.')
        super().__init__(min_mass=min_mass, row_weight=row_weight,
                         at_full_pairing=at_full_pairing)
        self.links = links
        self.label_noise, self.noise_seed = float(label_noise), int(noise_seed)
        self._noise_generator = None

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
        image_labels, report_labels = image_labels.to(y.device), report_labels.to(y.device)
        decided_image, decided_report = image_labels, report_labels
        if self.label_noise > 0:
            decided_image = self.corrupt(image_labels, ~image_paired.bool(), report_labels)
            decided_report = self.corrupt(report_labels, ~report_paired.bool(), image_labels)
        o = self.oracle_links(image_labels, report_labels, image_paired, report_paired,
                              decided_image, decided_report)
        if self.links == 'unpaired_images':
            o = o * (~image_paired.bool())[:, None].to(o.dtype)
        elif self.links == 'unpaired_reports':
            o = o * (image_paired.bool()[:, None] & ~report_paired.bool()[None, :]).to(o.dtype)
            o = o / o.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return y + o, {}

    @torch.no_grad()
    def corrupt(self, labels: torch.Tensor, unpaired: torch.Tensor,
                other_side: torch.Tensor) -> torch.Tensor:
        """``labels`` [N] with each known key of an ``unpaired`` [N] item replaced, with
        probability ``label_noise``, by a different key drawn uniformly from the known keys of
        ``other_side`` (unchanged where no other key is present)."""
        if self._noise_generator is None:
            self._noise_generator = torch.Generator().manual_seed(self.noise_seed)
        candidates = torch.unique(other_side[other_side >= 0])          # sorted [C]
        flip = torch.rand(labels.shape[0], generator=self._noise_generator) < self.label_noise
        pick = torch.rand(labels.shape[0], generator=self._noise_generator).to(labels.device)
        if candidates.numel() == 0:
            return labels
        own = torch.searchsorted(candidates, labels)                   # own key's slot
        own_present = candidates[own.clamp_max(candidates.numel() - 1)] == labels
        n_wrong = candidates.numel() - own_present.long()              # keys other than own
        k = (pick * n_wrong).long()
        k = k + (own_present & (k >= own)).long()                      # skip the own key
        change = (flip.to(labels.device) & unpaired.bool() & (labels >= 0) & (n_wrong > 0))
        return torch.where(change, candidates[k.clamp_max(candidates.numel() - 1)], labels)

    def extra_repr(self) -> str:
        return (f'links={self.links!r}, label_noise={self.label_noise}, '
                f'noise_seed={self.noise_seed}, '
                f'min_mass={self.min_mass}, row_weight={self.row_weight!r}, '
                f'at_full_pairing={self.at_full_pairing!r}')

    @staticmethod
    @torch.no_grad()
    def oracle_links(image_labels: torch.Tensor, report_labels: torch.Tensor,
                     image_paired: torch.Tensor, report_paired: torch.Tensor,
                     decided_image: Optional[torch.Tensor] = None,
                     decided_report: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``O`` [B_I, B_R] float: same known finding set, at least one side unpaired, each
        non-empty row summing to 1.

        ``decided_image`` / ``decided_report`` (default: the true keys) are the keys the
        degraded oracle decided for the unpaired items: an unpaired image's row compares its
        decided key with the reports' true keys, a paired image's row compares its true key
        with the decided keys of the unpaired reports, so each unpaired item's links carry one
        decision (precision ``1 - label_noise`` in expectation), not two."""
        decided_image = image_labels if decided_image is None else decided_image
        decided_report = report_labels if decided_report is None else decided_report
        same = torch.where(image_paired.bool()[:, None],
                           image_labels[:, None] == decided_report[None, :],
                           decided_image[:, None] == report_labels[None, :])
        same = same & (image_labels[:, None] >= 0)
        touches_unpaired = ~(image_paired[:, None] & report_paired[None, :])
        o = (same & touches_unpaired).float()
        return o / o.sum(dim=1, keepdim=True).clamp_min(1.0)
