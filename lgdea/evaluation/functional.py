"""Pure numpy scoring functions of the evaluation protocols (docs/baselines.md, sec. 3a-3b).

They take plain arrays, so every number can be checked by hand.
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

__all__ = ['boxes_mask', 'contrast_to_noise_ratio', 'zscore_columns', 'aggregate_prompt_scores',
           'argmax_first', 'macro_f1', 'rank_candidates', 'retrieval_precision_at_k']


def boxes_mask(boxes: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """Union of ``x, y, w, h`` boxes as a boolean [H, W] mask.

    Pixel ``(r, c)`` (centre ``(c + 0.5, r + 0.5)``) is inside a box when
    ``x <= c + 0.5 < x + w`` and ``y <= r + 0.5 < y + h``; for integer boxes this is the slice
    ``[y:y + h, x:x + w]``. Boxes are clipped to the image.
    """
    h, w = int(shape[0]), int(shape[1])
    mask = np.zeros((h, w), dtype=bool)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    for x, y, bw, bh in boxes:
        if not np.all(np.isfinite([x, y, bw, bh])) or bw <= 0 or bh <= 0:
            continue
        c0, c1 = int(np.ceil(x - 0.5)), int(np.ceil(x + bw - 0.5))
        r0, r1 = int(np.ceil(y - 0.5)), int(np.ceil(y + bh - 0.5))
        c0, c1 = max(c0, 0), min(c1, w)
        r0, r1 = max(r0, 0), min(r1, h)
        if c1 > c0 and r1 > r0:
            mask[r0:r1, c0:c1] = True
    return mask


def contrast_to_noise_ratio(sim_map: np.ndarray, inside: np.ndarray,
                            signed: bool = False) -> float:
    """CNR of a map against a region (BioViL):

    ``CNR = |mu_A - mu_Abar| / sqrt(var_A + var_Abar)`` (Eq. C1)

    with population variances (ddof = 0) over the finite pixels only (NaN = outside the field
    of view). ``signed=True`` drops the absolute value (an inverted map scores negative).

    Args:
        sim_map: [H, W] map in original pixels.
        inside: [H, W] boolean mask of A (the union of the boxes).

    Returns:
        The CNR, or NaN when degenerate: no finite pixel inside or outside A (e.g. a box
        covering the whole image), or ``var_A + var_Abar == 0`` (a constant map).
    """
    sim_map = np.asarray(sim_map, dtype=np.float64)
    inside = np.asarray(inside, dtype=bool)
    if sim_map.shape != inside.shape:
        raise ValueError(f'map {sim_map.shape} and mask {inside.shape} differ in shape')
    finite = np.isfinite(sim_map)
    a, abar = sim_map[inside & finite], sim_map[~inside & finite]
    if a.size == 0 or abar.size == 0:
        return float('nan')
    denom = np.sqrt(a.var() + abar.var())
    if not denom > 0:
        return float('nan')
    diff = a.mean() - abar.mean()
    return float((diff if signed else abs(diff)) / denom)


def zscore_columns(scores: np.ndarray) -> np.ndarray:
    """Per-class z-score across images: ``(s - mean_0(s)) / std_0(s)`` with population std
    (GLoRIA's zero-shot normalisation, Eq. Z1); a constant column is only centred."""
    scores = np.asarray(scores, dtype=np.float64)
    mean = scores.mean(axis=0, keepdims=True)
    std = scores.std(axis=0, keepdims=True)
    std = np.where(std > 0, std, 1.0)
    return (scores - mean) / std


def aggregate_prompt_scores(prompt_scores: np.ndarray, prompt_class: Sequence[int],
                            num_classes: int, aggregation: str) -> np.ndarray:
    """[N, P] image-prompt similarities -> [N, C] class scores by ``max`` or ``mean_logit``
    over each class's prompts (Eq. Z2)."""
    prompt_scores = np.asarray(prompt_scores, dtype=np.float64)
    prompt_class = np.asarray(prompt_class)
    out = np.empty((prompt_scores.shape[0], num_classes))
    for c in range(num_classes):
        cols = prompt_scores[:, prompt_class == c]
        if cols.shape[1] == 0:
            raise ValueError(f'class {c} has no prompt')
        if aggregation == 'max':
            out[:, c] = cols.max(axis=1)
        elif aggregation == 'mean_logit':
            out[:, c] = cols.mean(axis=1)
        else:
            raise ValueError(f'aggregation must be max|mean_logit here, got {aggregation!r}')
    return out


def argmax_first(scores: np.ndarray) -> np.ndarray:
    """Row-wise argmax; ties go to the lowest index (deterministic)."""
    return np.argmax(np.asarray(scores), axis=1)


def macro_f1(pred: np.ndarray, target: np.ndarray) -> float:
    """Macro F1 over the classes present in ``target`` or ``pred`` (sklearn's default label
    set): ``F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)`` averaged over classes."""
    pred, target = np.asarray(pred), np.asarray(target)
    labels = np.union1d(pred, target)
    f1 = []
    for c in labels:
        tp = np.sum((pred == c) & (target == c))
        fp = np.sum((pred == c) & (target != c))
        fn = np.sum((pred != c) & (target == c))
        denom = 2 * tp + fp + fn
        f1.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1)) if f1 else float('nan')


def rank_candidates(sim: np.ndarray, exclude: Optional[np.ndarray] = None) -> np.ndarray:
    """[N_q, N_c] candidate indices of each query by descending similarity, ties by candidate
    index (stable sort); excluded candidates (``exclude`` [N_q, N_c] boolean) go last."""
    sim = np.asarray(sim, dtype=np.float64)
    if exclude is not None:
        sim = np.where(exclude, -np.inf, sim)
    return np.argsort(-sim, axis=1, kind='stable')


def retrieval_per_query(sim: np.ndarray, query_labels: Sequence[int],
                        cand_labels: Sequence[int], topk: Sequence[int],
                        exclude: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """Per-query terms of Eq. R1 / R2 (:func:`retrieval_precision_at_k` is their mean).

    Returns:
        ``{'P@K': [N_q] #{hits in top-K} / K, 'Hit@K': [N_q] [hits >= 1]}`` (float64) for
        each K.
    """
    sim = np.asarray(sim, dtype=np.float64)
    q, c = np.asarray(query_labels), np.asarray(cand_labels)
    order = rank_candidates(sim, exclude)
    hits = c[order] == q[:, None]  # [N_q, N_c]
    out = {}
    for k in topk:
        if exclude is not None:
            n_avail = (~np.asarray(exclude)).sum(axis=1)
            if np.any(n_avail < k):
                raise ValueError(f'K={k} exceeds the number of candidates left for some query')
        elif k > sim.shape[1]:
            raise ValueError(f'K={k} exceeds the number of candidates ({sim.shape[1]})')
        top = hits[:, :k]
        out[f'P@{k}'] = top.sum(axis=1).astype(np.float64) / k
        out[f'Hit@{k}'] = top.any(axis=1).astype(np.float64)
    return out


def retrieval_precision_at_k(sim: np.ndarray, query_labels: Sequence[int],
                             cand_labels: Sequence[int], topk: Sequence[int],
                             exclude: Optional[np.ndarray] = None) -> Dict[str, float]:
    """Class-based image-to-text retrieval (GLoRIA style, docs/baselines.md sec. 3a).

    Candidates are ranked by descending similarity, ties by candidate index (stable sort).
    A retrieved candidate is a hit when its class equals the query's class:

    ``P@K = 1/N_q sum_q #{hits in top-K} / K`` (Eq. R1), ``Hit@K = 1/N_q sum_q [hits >= 1]``
    (Eq. R2).

    Args:
        sim: [N_q, N_c] similarities.
        query_labels: [N_q] classes of the queries.
        cand_labels: [N_c] classes of the candidates.
        topk: the K values (each <= N_c).
        exclude: optional [N_q, N_c] boolean mask of candidates removed from a query's ranking.

    Returns:
        ``{'P@K': fraction, 'Hit@K': fraction}`` for each K.
    """
    per_query = retrieval_per_query(sim, query_labels, cand_labels, topk, exclude)
    return {k: float(v.mean()) for k, v in per_query.items()}
