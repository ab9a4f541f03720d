"""Bootstrap intervals over evaluation cases combined with the seed spread.

A benchmark number has two sources of noise: the training run (seed: initialisation and data
order) and the finite evaluation set (which 1000 images happened to be in the 5 x 200 split).
The Student-t interval over seeds sees only the first; a bootstrap over cases only the second.
:func:`bootstrap_interval` resamples both, hierarchically:

- values ``M[s, i]``: the per-case value of case ``i`` in the run of seed ``s`` (e.g. 100 for a
  correctly classified image, 0 otherwise; NaN for a case the metric leaves out);
- one replicate draws ``S`` seeds with replacement and ``N`` case indices with replacement
  (the same indices for every seed: every run is evaluated on the same cases) and takes
  ``mean_s nanmean_i M[s, i]`` over the drawn seeds and cases (Eq. B1);
- the interval is the percentile interval of ``n_boot`` replicates (two-sided, 95% default).

For the paired difference of two settings, ``M = M_a - M_b`` over the seeds both finished and
the same cases (:func:`paired_cases`): pairing by seed and by case removes what the two runs
share (the same hard images, the same data order), so a difference can be resolved that is
smaller than either setting's own spread. With one seed the interval is over cases alone and
says nothing about run-to-run variation: callers report the number of seeds next to it.
"""
import warnings
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

__all__ = ['bootstrap_interval', 'paired_cases', 'stack_cases']

#: Replicates of every interval; the interval's own Monte-Carlo error at 2000 replicates is
#: about 1-2% of its width.
N_BOOT = 2000


def stack_cases(per_seed: Dict[int, Sequence[float]], seeds: Sequence[int]
                ) -> Optional[np.ndarray]:
    """``[S, N]`` float64 matrix of the per-case values of ``seeds`` (None if a seed has no
    values or the seeds' case counts differ: then they were not evaluated on the same cases)."""
    rows = []
    for s in seeds:
        values = per_seed.get(s)
        if values is None:
            return None
        rows.append(np.asarray([np.nan if v is None else v for v in values], dtype=np.float64))
    if not rows or len({r.size for r in rows}) != 1 or rows[0].size == 0:
        return None
    return np.stack(rows)


def paired_cases(cases_a: Dict[int, Sequence[float]], cases_b: Dict[int, Sequence[float]],
                 seeds: Sequence[int]) -> Optional[np.ndarray]:
    """``[S, N]`` differences ``a - b`` per seed and case (NaN where either is NaN), or None
    when a seed lacks per-case values or the two settings were evaluated on different numbers
    of cases."""
    a, b = stack_cases(cases_a, seeds), stack_cases(cases_b, seeds)
    if a is None or b is None or a.shape != b.shape:
        return None
    return a - b


def bootstrap_interval(values: np.ndarray, confidence: float = 0.95, n_boot: int = N_BOOT,
                       seed: int = 0) -> Optional[Tuple[float, float]]:
    """Percentile interval of Eq. B1 over seeds and cases.

    Args:
        values: ``[S, N]`` per-case values of ``S`` seeds on the same ``N`` cases (NaN: a case
            left out of the mean).
        confidence: two-sided coverage.
        n_boot: replicates.
        seed: of the resampling (fixed: the same results give the same interval).

    Returns:
        ``(low, high)``, or None when no case has a finite value.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f'bootstrap_interval: expected [seeds, cases] values, got shape '
                         f'{values.shape}')
    valid = np.isfinite(values)
    if not valid.any():
        return None
    filled = np.where(valid, values, 0.0)
    n_seeds, n_cases = values.shape
    rng = np.random.default_rng(seed)
    case_draws = rng.integers(0, n_cases, size=(n_boot, n_cases))
    # case weights of every replicate: how often each case was drawn, [n_boot, N]
    weights = np.zeros((n_boot, n_cases))
    np.add.at(weights, (np.repeat(np.arange(n_boot), n_cases), case_draws.ravel()), 1.0)
    totals = filled @ weights.T  # [S, n_boot]
    counts = valid.astype(np.float64) @ weights.T
    with np.errstate(invalid='ignore', divide='ignore'):
        per_seed = totals / counts  # nanmean over the drawn cases, per seed and replicate
    seed_draws = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    with warnings.catch_warnings():  # a replicate whose drawn cases are all NaN: dropped
        warnings.simplefilter('ignore', RuntimeWarning)
        replicates = np.nanmean(per_seed[seed_draws, np.arange(n_boot)[:, None]], axis=1)
    replicates = replicates[np.isfinite(replicates)]
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(replicates, [alpha, 1.0 - alpha])
    return float(low), float(high)
