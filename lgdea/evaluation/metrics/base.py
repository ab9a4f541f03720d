"""Base class of the metrics that query the model (docs/architecture.md, section 4).

What the metrics expect from ``model.predict`` (``forward(mode='predict')``): a list with one
DataSample per input image, in input order, carrying the input sample's fields (``gt_label``,
``text``, ``study_id``, ``evidence``, ``phrase``, ``boxes``, ``category``, ``ori_shape``,
``geometry``, ``sample_idx``, ...) plus ``image_feats``: a dict of **per-image** values,
tensors detached on the CPU without the batch dimension (``embed`` [D], ``patch_embed``
[P, D], extras of the method), and non-tensor values such as ``grid`` (h, w).

``process`` keeps a reference to ``image_feats`` (no copy: the metrics of one dataset share
the tensors, so features are extracted and stored once per image). ``compute_metrics``
restacks them to batches of ``batch_size`` images (tensors stacked on a new dim 0 -> [B, ...],
non-tensor values passed once when equal for all images, else as a list) on the model's
device, and calls ``model.extract_text`` / ``model.similarity`` / ``model.grounding_map``
under ``torch.no_grad()``.
"""
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

__all__ = ['BaseVLMetric', 'stack_image_feats', 'feats_to_device', 'model_device']


def _equal(a: Any, b: Any) -> bool:
    try:
        if torch.is_tensor(a) or torch.is_tensor(b):
            return torch.is_tensor(a) and torch.is_tensor(b) and a.shape == b.shape and bool(
                torch.equal(a, b))
        eq = a == b
        return bool(np.all(eq)) if isinstance(eq, np.ndarray) else bool(eq)
    except Exception:
        return False


def stack_image_feats(per_image: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """List of per-image feature dicts -> one batched dict.

    Tensors of equal shape are stacked on a new dim 0 ([B, ...]); tensors of different shapes
    become a list; non-tensor values (e.g. ``grid``) are passed once when equal for all images,
    else as a list.
    """
    if not per_image:
        raise ValueError('no image features to stack')
    keys = per_image[0].keys()
    out = {}
    for key in keys:
        values = [f[key] for f in per_image]
        if all(torch.is_tensor(v) for v in values):
            if len({tuple(v.shape) for v in values}) == 1:
                out[key] = torch.stack(values, dim=0)
            else:
                out[key] = values
        elif all(_equal(v, values[0]) for v in values[1:]):
            out[key] = values[0]
        else:
            out[key] = values
    return out


def feats_to_device(feats: Any, device: torch.device) -> Any:
    """Move the tensors of a (nested) feature dict / list to ``device``."""
    if torch.is_tensor(feats):
        return feats.to(device)
    if isinstance(feats, dict):
        return {k: feats_to_device(v, device) for k, v in feats.items()}
    if isinstance(feats, list):
        return [feats_to_device(v, device) for v in feats]
    return feats


def model_device(model) -> torch.device:
    """Device of a model: its data preprocessor's, else its first parameter's, else CPU."""
    pre = getattr(model, 'data_preprocessor', None)
    if pre is not None and isinstance(getattr(pre, 'device', None), torch.device):
        return pre.device
    if isinstance(model, torch.nn.Module):
        p = next(model.parameters(), None)
        if p is not None:
            return p.device
    return torch.device('cpu')


def _get(sample, key, default=None):
    if isinstance(sample, dict):
        return sample.get(key, default)
    return sample.get(key, default)


class BaseVLMetric(BaseMetric):
    """A metric that collects per-image features in ``process`` and queries the bound model
    in ``compute_metrics``.

    Subclasses set ``record_keys`` (the sample fields each result keeps) and implement
    :meth:`compute_from_results`. A metric that is a mean over evaluation cases also stores
    the per-case values in :attr:`per_case` (``{metric key: [N] float64}``, cases in
    ``sample_idx`` order, the metric's unit, so ``nanmean(per_case[k]) == metrics[k]``; NaN
    marks a case the metric leaves out, e.g. a degenerate grounding map): the
    test loops write them to ``<work_dir>/<timestamp>_test_cases.json`` and the benchmark
    bootstraps over them (docs/benchmark.md, intervals).

    Args:
        batch_size: images / texts per model call in ``compute_metrics``.
        feat_keys: keep only these ``image_feats`` keys (None: all; the tensors are shared
            with the other metrics, not copied).
        collect_device, prefix, collect_dir: see ``mmengine.evaluator.BaseMetric``.
    """

    record_keys: Tuple[str, ...] = ()

    def __init__(self, batch_size: int = 64, feat_keys: Optional[Sequence[str]] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if int(batch_size) <= 0:
            raise ValueError(f'batch_size must be positive, got {batch_size}')
        self.batch_size = int(batch_size)
        self.feat_keys = None if feat_keys is None else tuple(feat_keys)
        self._model = None
        self.per_case: Dict[str, np.ndarray] = {}

    # ----------------------------------------------------------------------- model
    def bind_model(self, model) -> None:
        """Give the metric the (unwrapped) model whose interface it queries."""
        self._model = model

    @property
    def model(self):
        if self._model is None:
            raise RuntimeError(
                f'{type(self).__name__} has no model: evaluate it with VLValLoop / VLTestLoop '
                '/ VLMultiTestLoop (they call metric.bind_model(model)), or call bind_model '
                'yourself.')
        return self._model

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    # --------------------------------------------------------------------- process
    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        for sample in data_samples:
            self.results.append(self._result_of(sample))

    def _result_of(self, sample) -> dict:
        feats = _get(sample, 'image_feats')
        if feats is None:
            raise KeyError(
                f'{type(self).__name__}: the prediction of {_get(sample, "img_path")} has no '
                '`image_feats`; model.predict must attach a dict of per-image CPU tensors '
                '(embed [D], patch_embed [P, D], grid, ...) to each DataSample.')
        if self.feat_keys is not None:
            missing = [k for k in self.feat_keys if k not in feats]
            if missing:
                raise KeyError(f'{type(self).__name__}: image_feats lacks {missing} '
                               f'(has {sorted(feats)})')
            feats = {k: feats[k] for k in self.feat_keys}
        # CPU (a no-op for CPU tensors, so the metrics still share them): results are
        # pickled across ranks and kept until the end of the evaluation
        result = dict(image_feats=feats_to_device(dict(feats), torch.device('cpu')),
                      sample_idx=_get(sample, 'sample_idx'))
        for key in self.record_keys:
            value = _get(sample, key)
            result[key] = value.cpu() if torch.is_tensor(value) else value
        return result

    # --------------------------------------------------------------------- compute
    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        if not results:
            raise ValueError(f'{type(self).__name__}: no result was collected')
        if all(r.get('sample_idx') is not None for r in results):
            results = sorted(results, key=lambda r: int(r['sample_idx']))
        self.per_case = {}
        was_training = getattr(self.model, 'training', False)
        if isinstance(self.model, torch.nn.Module):
            self.model.eval()
        try:
            with torch.no_grad():
                metrics = self.compute_from_results(results)
        finally:
            if was_training:
                self.model.train()
        print_log(f'{type(self).__name__}: ' + ', '.join(
            f'{k}={v:.4f}' if isinstance(v, float) else f'{k}={v}' for k, v in metrics.items()),
            logger='current')
        return metrics

    def compute_from_results(self, results: List[dict]) -> Dict[str, float]:
        raise NotImplementedError

    def keyed_per_case(self) -> Dict[str, np.ndarray]:
        """:attr:`per_case` under the keys ``evaluate`` reports (``<prefix>/<key>``)."""
        if not self.prefix:
            return dict(self.per_case)
        return {f'{self.prefix}/{k}': v for k, v in self.per_case.items()}

    # ------------------------------------------------------------ model helpers
    def image_batches(self, results: Sequence[dict]) -> Iterator[Tuple[int, Dict[str, Any]]]:
        """Yield ``(start, batched image features on the model's device)``."""
        device = self.device
        for start in range(0, len(results), self.batch_size):
            chunk = [r['image_feats'] for r in results[start:start + self.batch_size]]
            yield start, feats_to_device(stack_image_feats(chunk), device)

    def encode_texts(self, texts: Sequence[str], kind: str,
                     evidence: Optional[Sequence] = None) -> List[Dict[str, Any]]:
        """Encode texts in chunks of ``batch_size``; returns the list of chunk features (kept
        apart: method extras such as padded token features need not share a length)."""
        texts = [str(t) for t in texts]
        if evidence is not None and len(evidence) != len(texts):
            raise ValueError(f'{len(evidence)} evidence lists for {len(texts)} texts')
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            part = texts[start:start + self.batch_size]
            if evidence is not None:
                feats = self.model.extract_text(
                    part, kind=kind, evidence=list(evidence[start:start + self.batch_size]))
            else:
                feats = self.model.extract_text(part, kind=kind)
            if 'embed' not in feats:
                raise KeyError(f'model.extract_text returned no `embed` (keys {sorted(feats)})')
            chunks.append(feats)
        return chunks

    def similarity_matrix(self, results: Sequence[dict],
                          text_chunks: Sequence[Dict[str, Any]]) -> np.ndarray:
        """[N_img, N_txt] ``model.similarity`` over all image and text chunks (float64)."""
        rows = []
        for _, img in self.image_batches(results):
            cols = [self.model.similarity(img, txt).float().cpu() for txt in text_chunks]
            rows.append(torch.cat(cols, dim=1))
        return torch.cat(rows, dim=0).double().numpy()


def label_of(value, where: str) -> int:
    """Single-label class index of a ``gt_label`` (int or 1-element tensor)."""
    if value is None:
        raise KeyError(f'{where} has no gt_label')
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        n = value.size if isinstance(value, np.ndarray) else value.numel()
        if n != 1:
            raise ValueError(f'{where}: expected one class index, got gt_label {value}')
        return int(value.reshape(-1)[0])
    return int(value)
