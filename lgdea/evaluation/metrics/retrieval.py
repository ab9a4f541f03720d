"""Class-based image-to-text retrieval Precision@K (docs/baselines.md, sec. 3a)."""
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from lgdea.registry import METRICS
from ..functional import retrieval_per_query
from .base import BaseVLMetric, label_of

__all__ = ['RetrievalPrecisionAtK']


@METRICS.register_module()
class RetrievalPrecisionAtK(BaseVLMetric):
    """Image-to-text retrieval Precision@K and Hit@K (in %).

    Queries are the evaluated images; candidates are the reports of the evaluated studies (the
    ``text`` of each image, one per ``study_id``, first occurrence, with that image's class;
    ``evidence`` passed to ``model.extract_text(kind='report')`` when present) or the list
    given in ``candidates``. Candidates are ranked by ``model.similarity``, ties by candidate
    index (stable sort); a retrieved report is a hit when its class equals the query's
    ``gt_label`` (Eq. R1, R2 of :func:`retrieval_precision_at_k`).

    Args:
        topk: the K values.
        candidates: optional ``[dict(text=..., label=int | class name, evidence=[...],
            study_id=...)]``.
        exclude_own_study: drop the query's own report from its ranking (default: exclude
            nothing).
        batch_size, feat_keys, collect_device, prefix, collect_dir: see :class:`BaseVLMetric`.
    """

    default_prefix = 'retrieval'
    record_keys = ('gt_label', 'text', 'study_id', 'evidence', 'img_path')

    def __init__(self, topk: Sequence[int] = (1, 2, 5, 10),
                 candidates: Optional[Sequence[dict]] = None, exclude_own_study: bool = False,
                 batch_size: int = 64, feat_keys: Optional[Sequence[str]] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None):
        super().__init__(batch_size=batch_size, feat_keys=feat_keys,
                         collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.topk = tuple(int(k) for k in topk)
        if not self.topk or min(self.topk) <= 0:
            raise ValueError(f'topk must hold positive integers, got {topk}')
        self.candidates = None if candidates is None else [dict(c) for c in candidates]
        self.exclude_own_study = exclude_own_study

    def _class_index(self, label: Union[int, str]) -> int:
        if isinstance(label, str):
            classes = list((self.dataset_meta or {}).get('classes') or [])
            if label not in classes:
                raise ValueError(f'candidate label {label!r} is not a dataset class {classes}')
            return classes.index(label)
        return int(label)

    def build_candidates(self, results: List[dict]) -> List[dict]:
        """Candidate reports: ``[dict(text, label, evidence, study_id)]``."""
        if self.candidates is not None:
            out = []
            for i, c in enumerate(self.candidates):
                if not str(c.get('text') or '').strip() or c.get('label') is None:
                    raise ValueError(f'candidate {i} needs non-empty `text` and a `label`: {c}')
                out.append(dict(text=str(c['text']), label=self._class_index(c['label']),
                                evidence=c.get('evidence'), study_id=c.get('study_id')))
            return out
        out, seen = [], set()
        for i, r in enumerate(results):
            text = r.get('text')
            if text is None or not str(text).strip():
                continue
            key = r.get('study_id')
            key = ('study', key) if key is not None else ('text', str(text))
            if key in seen:
                continue
            seen.add(key)
            out.append(dict(text=str(text),
                            label=label_of(r['gt_label'], f'image {r.get("img_path")}'),
                            evidence=r.get('evidence'), study_id=r.get('study_id')))
        if not out:
            raise ValueError('RetrievalPrecisionAtK: no evaluated record carries report text; '
                             'the dataset must give `report` (packed as `text`) or the metric '
                             '`candidates`.')
        return out

    def encode_candidates(self, cands: List[dict]) -> List[Dict]:
        """Encode candidate reports (``kind='report'``, with their evidence when any has it);
        returns the chunk features of :meth:`encode_texts`."""
        evidence = None
        if any(c['evidence'] is not None for c in cands):
            evidence = [c['evidence'] for c in cands]
        return self.encode_texts([c['text'] for c in cands], kind='report', evidence=evidence)

    def exclusion_mask(self, results: List[dict], cands: List[dict]) -> Optional[np.ndarray]:
        """[N_q, N_c] candidates removed from each query's ranking (its own study when
        ``exclude_own_study``), or None."""
        if not self.exclude_own_study:
            return None
        q_study = np.array([str(r.get('study_id')) for r in results])
        c_study = np.array([str(c['study_id']) for c in cands])
        return q_study[:, None] == c_study[None, :]

    def compute_from_results(self, results: List[dict]) -> Dict[str, float]:
        cands = self.build_candidates(results)
        sim = self.similarity_matrix(results, self.encode_candidates(cands))
        q_labels = [label_of(r['gt_label'], f'image {r.get("img_path")}') for r in results]
        per_query = retrieval_per_query(sim, q_labels, [c['label'] for c in cands], self.topk,
                                        exclude=self.exclusion_mask(results, cands))
        self.per_case = {k: v * 100.0 for k, v in per_query.items()}
        metrics = {k: float(v.mean()) for k, v in self.per_case.items()}
        metrics['num_candidates'] = len(cands)
        return metrics
