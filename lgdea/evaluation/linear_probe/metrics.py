"""Scores of the linear-probe evaluation (plain numpy; percentages like the other metrics).

Single-label (RSNA, COVID, synthetic ``cls_binary`` / ``cls_multiclass``): top-1 ``accuracy``
(primary) and ``auroc`` (class-1 score for two classes, one-vs-rest macro otherwise).
Multi-label (NIH, synthetic ``cls_multilabel``): ``auroc_macro`` (primary; mean over the
labels whose test targets hold both classes, the others skipped and counted in
``auroc_skipped_labels``), per-label ``auroc/<class>`` and
``mean_label_accuracy_not_paper_comparable`` (mean over labels of the accuracy of
``score >= 0.5``: the paper's NIH "accuracy" is defined differently, so this number must not
be compared with it). Everything in % (0-100) except the counts.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ['top1_accuracy', 'rank_auroc', 'macro_auroc', 'mean_label_accuracy',
           'classification_metrics', 'primary_metric', 'MEAN_LABEL_ACCURACY_KEY']

#: Key of the mean per-label accuracy at 0.5 (multi-label): not the paper's "accuracy".
MEAN_LABEL_ACCURACY_KEY = 'mean_label_accuracy_not_paper_comparable'


def primary_metric(multilabel: bool) -> str:
    """Name of the metric used for model selection and as the headline number."""
    return 'auroc_macro' if multilabel else 'accuracy'


def top1_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in %: scores [N, K], labels [N] (ties go to the lowest class index)."""
    scores = np.asarray(scores)
    labels = np.asarray(labels).astype(np.int64)
    if scores.ndim != 2 or len(scores) != len(labels) or len(labels) == 0:
        raise ValueError(f'top1_accuracy: scores {scores.shape} and labels {labels.shape} must '
                         'be [N, K] and [N] with N > 0')
    return float(100.0 * np.mean(np.argmax(scores, axis=1) == labels))


def rank_auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Binary AUROC as the Mann-Whitney statistic with average ranks for ties (equal to
    sklearn's ``roc_auc_score``; used for the many validation evaluations of model selection).

    Args:
        y: [N] 1 / 0 with both classes present; s: [N] scores.
    """
    from scipy.stats import rankdata
    y = np.asarray(y) > 0.5
    ranks = rankdata(np.asarray(s, dtype=np.float64))
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def macro_auroc(scores: np.ndarray, targets: np.ndarray, backend: str = 'sklearn',
                ) -> Tuple[float, List[float], int]:
    """Macro AUROC over labels (sklearn ``roc_auc_score`` per label).

    Args:
        scores: [N, K] scores (higher = more likely positive).
        targets: [N, K] 1 / 0, NaN = unknown (left out of that label's AUROC).
        backend: ``'sklearn'`` (``roc_auc_score``, the reported numbers) or ``'rank'``
            (:func:`rank_auroc`, the same value computed faster).

    Returns:
        ``(mean AUROC in % over the valid labels (NaN if none), per-label AUROC in %
        (NaN where skipped), number of skipped labels)``; a label is skipped when its known
        targets hold only one class.
    """
    if backend == 'sklearn':
        from sklearn.metrics import roc_auc_score
    elif backend == 'rank':
        roc_auc_score = rank_auroc
    else:
        raise ValueError(f"macro_auroc: backend must be 'sklearn' or 'rank', got {backend!r}")
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if scores.shape != targets.shape or scores.ndim != 2:
        raise ValueError(f'macro_auroc: scores {scores.shape} and targets {targets.shape} must '
                         'both be [N, K]')
    per_label = []
    for k in range(targets.shape[1]):
        known = ~np.isnan(targets[:, k])
        y = targets[known, k]
        if y.size == 0 or np.unique(y).size < 2:
            per_label.append(float('nan'))
            continue
        per_label.append(100.0 * float(roc_auc_score(y, scores[known, k])))
    valid = [v for v in per_label if not np.isnan(v)]
    mean = float(np.mean(valid)) if valid else float('nan')
    return mean, per_label, len(per_label) - len(valid)


def mean_label_accuracy(scores: np.ndarray, targets: np.ndarray,
                        threshold: float = 0.5) -> float:
    """Mean over labels of the accuracy of ``scores >= threshold`` in % (NaN targets ignored;
    labels without a known target left out)."""
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    accs = []
    for k in range(targets.shape[1]):
        known = ~np.isnan(targets[:, k])
        if known.any():
            pred = scores[known, k] >= threshold
            accs.append(np.mean(pred == (targets[known, k] > 0.5)))
    return float(100.0 * np.mean(accs)) if accs else float('nan')


def classification_metrics(scores: np.ndarray, targets: np.ndarray, multilabel: bool,
                           class_names: Optional[Sequence[str]] = None,
                           auroc_backend: str = 'sklearn') -> Dict[str, float]:
    """All probe metrics of one evaluation (see the module docstring for the keys).

    Args:
        scores: [N, K] softmax (single-label) or sigmoid (multi-label) scores.
        targets: [N] class indices, or [N, K] multi-hot (NaN = unknown).
        multilabel: which family of metrics.
        class_names: names for the per-label AUROC keys (default ``label_<k>``).
        auroc_backend: see :func:`macro_auroc`.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if multilabel:
        mean, per_label, skipped = macro_auroc(scores, targets, auroc_backend)
        names = list(class_names) if class_names is not None else [
            f'label_{k}' for k in range(scores.shape[1])]
        out = dict(auroc_macro=mean, auroc_skipped_labels=skipped)
        out[MEAN_LABEL_ACCURACY_KEY] = mean_label_accuracy(scores, targets)
        for name, value in zip(names, per_label):
            out[f'auroc/{name}'] = value
        return out
    labels = np.asarray(targets).astype(np.int64)
    out = dict(accuracy=top1_accuracy(scores, labels))
    k = scores.shape[1]
    onehot = np.zeros_like(scores)
    onehot[np.arange(len(labels)), labels] = 1.0
    if k == 2:
        value, _, _ = macro_auroc(scores[:, 1:], onehot[:, 1:], auroc_backend)
    else:
        value, _, _ = macro_auroc(scores, onehot, auroc_backend)
    out['auroc'] = value
    return out
