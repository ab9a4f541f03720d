"""Phrase grounding contrast-to-noise ratio (BioViL / MS-CXR, docs/baselines.md, sec. 3b)."""
from collections import OrderedDict
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from lgdea.datasets.transforms.geometry import invert_map
from lgdea.registry import METRICS
from ..functional import boxes_mask, contrast_to_noise_ratio
from .base import BaseVLMetric

__all__ = ['GroundingCNR']


@METRICS.register_module()
class GroundingCNR(BaseVLMetric):
    """CNR of the phrase grounding map in original pixels, per (image, phrase) record.

    For each record: ``model.grounding_map`` on the patch grid [h, w] -> optional Gaussian
    smoothing on the grid (``smooth_sigma``; BioViL uses 1.5) -> :func:`invert_map` to the
    record's ``ori_shape`` (the frame of its boxes; NaN outside the field of view) -> CNR
    (Eq. C1 of :func:`contrast_to_noise_ratio`) with A = the union of the record's boxes.

    Degenerate records (constant map, boxes covering the image, no valid pixel) give NaN; they
    are counted in ``num_degenerate`` and left out of the means.

    Outputs: ``cnr`` (mean over the valid (image, phrase) pairs), ``cnr_<category>`` (mean per
    class), ``num_pairs``, ``num_degenerate``, and ``signed_cnr`` / ``signed_cnr_<category>``
    when ``signed=True``.

    Args:
        smooth_sigma: Gaussian sigma in patch units (None = no smoothing).
        signed: also report the signed CNR (an inverted map scores negative).
        batch_size, feat_keys, collect_device, prefix, collect_dir: see :class:`BaseVLMetric`.
    """

    default_prefix = 'grounding'
    record_keys = ('phrase', 'boxes', 'category', 'geometry', 'ori_shape', 'img_path')

    def __init__(self, smooth_sigma: Optional[float] = None, signed: bool = False,
                 batch_size: int = 64, feat_keys: Optional[Sequence[str]] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None):
        super().__init__(batch_size=batch_size, feat_keys=feat_keys,
                         collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if smooth_sigma is not None and smooth_sigma <= 0:
            raise ValueError(f'smooth_sigma must be positive or None, got {smooth_sigma}')
        self.smooth_sigma = smooth_sigma
        self.signed = signed

    @staticmethod
    def _check(r: dict) -> None:
        for key in ('phrase', 'boxes', 'ori_shape'):
            if r.get(key) is None:
                raise KeyError(f'GroundingCNR: the record of {r.get("img_path")} has no `{key}`; '
                               'grounding datasets give phrase, boxes (x, y, w, h) and '
                               'ori_shape.')

    def original_maps(self, results: List[dict]) -> Iterator[Tuple[dict, np.ndarray]]:
        """Yield ``(record, map)`` per record, in order: ``model.grounding_map`` of its phrase
        on the patch grid [h, w] -> optional smoothing (``smooth_sigma``) -> :func:`invert_map`
        to ``ori_shape`` [H, W] (float64, NaN outside the field of view).

        This is the map the CNR is computed on; figures (``lgdea.visualization``) draw it.
        """
        from scipy.ndimage import gaussian_filter
        for r in results:
            self._check(r)
        for start, img in self.image_batches(results):
            part = results[start:start + self.batch_size]
            txt = self.encode_texts([r['phrase'] for r in part], kind='phrase')[0]
            maps = self.model.grounding_map(img, txt)
            if maps.dim() != 3 or maps.shape[0] != len(part):
                raise ValueError(f'model.grounding_map must return [B, h, w] for B={len(part)}, '
                                 f'got {tuple(maps.shape)}')
            maps = maps.detach().double().cpu().numpy()
            for r, m in zip(part, maps):
                if self.smooth_sigma is not None:
                    m = gaussian_filter(m, sigma=self.smooth_sigma)
                ori_shape = tuple(int(s) for s in r['ori_shape'])
                yield r, invert_map(m, r.get('geometry'), ori_shape)

    @staticmethod
    def score_map(full: np.ndarray, record: dict) -> dict:
        """``dict(category, cnr, signed_cnr)`` of a map in original pixels [H, W] against the
        union of the record's boxes."""
        inside = boxes_mask(np.asarray(record['boxes']), full.shape)
        return dict(category=record.get('category'),
                    cnr=contrast_to_noise_ratio(full, inside),
                    signed_cnr=contrast_to_noise_ratio(full, inside, signed=True))

    def pair_scores(self, results: List[dict]) -> List[dict]:
        """Per-record ``dict(category, cnr, signed_cnr)``."""
        return [self.score_map(full, r) for r, full in self.original_maps(results)]

    def _categories(self, pairs: List[dict]) -> List[str]:
        present = []
        for p in pairs:
            if p['category'] is not None and p['category'] not in present:
                present.append(p['category'])
        classes = list((self.dataset_meta or {}).get('classes') or [])
        ordered = [c for c in classes if c in present]
        return ordered + sorted(c for c in present if c not in ordered)

    def compute_from_results(self, results: List[dict]) -> Dict[str, float]:
        # encode phrases in the same chunks as the images: one model call per chunk
        pairs = self.pair_scores(results)
        cnr = np.array([p['cnr'] for p in pairs], dtype=np.float64)
        valid = np.isfinite(cnr)
        metrics = OrderedDict()
        metrics['cnr'] = float(cnr[valid].mean()) if valid.any() else float('nan')
        self.per_case['cnr'] = cnr  # NaN: a degenerate map, left out of the mean (nanmean)
        keys = ['cnr', 'signed_cnr'] if self.signed else ['cnr']
        if self.signed:
            s = np.array([p['signed_cnr'] for p in pairs], dtype=np.float64)
            metrics['signed_cnr'] = float(s[valid].mean()) if valid.any() else float('nan')
        for cat in self._categories(pairs):
            idx = [i for i, p in enumerate(pairs) if p['category'] == cat]
            for key in keys:
                v = np.array([pairs[i][key] for i in idx], dtype=np.float64)
                v = v[np.isfinite(v)]
                metrics[f'{key}_{cat}'] = float(v.mean()) if v.size else float('nan')
        metrics['num_pairs'] = len(pairs)
        metrics['num_degenerate'] = int((~valid).sum())
        return dict(metrics)
