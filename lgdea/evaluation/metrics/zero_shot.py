"""Zero-shot classification by class-prompt similarity (docs/baselines.md, sec. 3a)."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from lgdea.registry import METRICS
from ..functional import aggregate_prompt_scores, argmax_first, macro_f1, zscore_columns
from .base import BaseVLMetric, label_of

__all__ = ['ZeroShotAccuracy']

AGGREGATIONS = ('mean_embedding', 'max', 'mean_logit')


@METRICS.register_module()
class ZeroShotAccuracy(BaseVLMetric):
    """Zero-shot accuracy and macro F1 (in %) from class prompts.

    Each class ``c`` has prompts ``p_{c,1..m}`` encoded as phrases (``kind='phrase'``). Class
    scores ``s[i, c]`` of image ``i`` (Eq. Z2):

    - ``mean_embedding`` (default): ``t_c = normalize(mean_j normalize(embed(p_{c,j})))`` and
      ``s[i, c] = model.similarity(image_i, t_c)`` (the text features passed to ``similarity``
      hold only ``embed``);
    - ``max``: ``s[i, c] = max_j model.similarity(image_i, p_{c,j})``;
    - ``mean_logit``: ``s[i, c] = mean_j model.similarity(image_i, p_{c,j})``.

    With ``zscore=True`` every class column is z-scored across the evaluated images (Eq. Z1).
    The prediction is ``argmax_c s[i, c]`` with ties to the lowest class index.

    Extra protocols (e.g. GLoRIA's official one) reuse the same similarities and are reported
    under ``<name>/accuracy`` and ``<name>/macro_f1``.

    Args:
        prompts: ``{class name: [prompts]}`` (a single string is one prompt); None takes
            ``dataset_meta['prompts']``. Classes follow ``dataset_meta['classes']`` when set
            (prompts of other classes are ignored), else the prompt dict order.
        aggregation: ``'mean_embedding' | 'max' | 'mean_logit'``.
        zscore: per-class z-scoring across images.
        extra_protocols: e.g. ``[dict(name='official_gloria', aggregation='max', zscore=True)]``.
        batch_size, feat_keys, collect_device, prefix, collect_dir: see :class:`BaseVLMetric`.
    """

    default_prefix = 'zero_shot'
    record_keys = ('gt_label', 'img_path')

    def __init__(self, prompts: Optional[Dict[str, Union[str, Sequence[str]]]] = None,
                 aggregation: str = 'mean_embedding', zscore: bool = False,
                 extra_protocols: Sequence[dict] = (), batch_size: int = 64,
                 feat_keys: Optional[Sequence[str]] = None, collect_device: str = 'cpu',
                 prefix: Optional[str] = None, collect_dir: Optional[str] = None):
        super().__init__(batch_size=batch_size, feat_keys=feat_keys,
                         collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.prompts = prompts
        self.protocols = [dict(name=None, aggregation=aggregation, zscore=bool(zscore))]
        names = set()
        for p in extra_protocols:
            p = dict(p)
            unknown = set(p) - {'name', 'aggregation', 'zscore'}
            if 'name' not in p or unknown:
                raise ValueError(f'an extra protocol needs `name` (and optionally aggregation, '
                                 f'zscore); got {p}')
            if p['name'] in names:
                raise ValueError(f'duplicate extra protocol name {p["name"]!r}')
            names.add(p['name'])
            self.protocols.append(dict(name=str(p['name']),
                                       aggregation=p.get('aggregation', aggregation),
                                       zscore=bool(p.get('zscore', zscore))))
        for p in self.protocols:
            if p['aggregation'] not in AGGREGATIONS:
                raise ValueError(f'aggregation must be one of {AGGREGATIONS}, got '
                                 f'{p["aggregation"]!r}')

    # ---------------------------------------------------------------- prompts
    def class_prompts(self) -> Tuple[List[str], List[List[str]]]:
        """(class names, prompts per class) in class-index order."""
        meta = self.dataset_meta or {}
        prompts = self.prompts if self.prompts is not None else meta.get('prompts')
        if not prompts:
            raise ValueError('ZeroShotAccuracy needs class prompts: set `prompts` in the metric '
                             "config or `prompts` in the dataset's metainfo.")
        classes = list(meta['classes']) if meta.get('classes') else list(prompts)
        missing = [c for c in classes if c not in prompts]
        if missing:
            raise ValueError(f'ZeroShotAccuracy: no prompt for classes {missing} (prompts given '
                             f'for {list(prompts)})')
        per_class = []
        for c in classes:
            p = prompts[c]
            p = [p] if isinstance(p, str) else [str(x) for x in p]
            if not p:
                raise ValueError(f'ZeroShotAccuracy: empty prompt list for class {c!r}')
            per_class.append(p)
        return classes, per_class

    # ---------------------------------------------------------------- compute
    def class_scores(self, results: List[dict], per_class: List[List[str]]
                     ) -> Dict[str, np.ndarray]:
        """Raw [N, C] class scores of every aggregation the protocols use."""
        flat = [p for ps in per_class for p in ps]
        owner = [c for c, ps in enumerate(per_class) for _ in ps]
        chunks = self.encode_texts(flat, kind='phrase')
        needed = {p['aggregation'] for p in self.protocols}
        scores = {}
        if needed & {'max', 'mean_logit'}:
            prompt_scores = self.similarity_matrix(results, chunks)  # [N, P]
            for agg in needed & {'max', 'mean_logit'}:
                scores[agg] = aggregate_prompt_scores(prompt_scores, owner, len(per_class), agg)
        if 'mean_embedding' in needed:
            embed = F.normalize(torch.cat([c['embed'] for c in chunks], dim=0).float(), dim=-1)
            owner_t = torch.tensor(owner, device=embed.device)
            class_embed = torch.stack([embed[owner_t == c].mean(0)
                                       for c in range(len(per_class))])
            class_feats = dict(embed=F.normalize(class_embed, dim=-1))
            scores['mean_embedding'] = self.similarity_matrix(results, [class_feats])
        return scores

    def compute_from_results(self, results: List[dict]) -> Dict[str, float]:
        classes, per_class = self.class_prompts()
        labels = np.array([label_of(r['gt_label'], f'image {r.get("img_path")}')
                           for r in results])
        if labels.min() < 0 or labels.max() >= len(classes):
            raise ValueError(f'ZeroShotAccuracy: gt_label outside [0, {len(classes)}) '
                             f'(classes {classes})')
        raw = self.class_scores(results, per_class)
        metrics = {}
        for proto in self.protocols:
            scores = raw[proto['aggregation']]
            if proto['zscore']:
                scores = zscore_columns(scores)
            pred = argmax_first(scores)
            key = '' if proto['name'] is None else f'{proto["name"]}/'
            correct = (pred == labels).astype(np.float64) * 100.0
            self.per_case[f'{key}accuracy'] = correct
            metrics[f'{key}accuracy'] = float(correct.mean())
            metrics[f'{key}macro_f1'] = macro_f1(pred, labels) * 100.0
        return metrics
