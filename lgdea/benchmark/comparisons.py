"""Paired differences between two settings over the seeds both finished.

A spec's ``comparisons`` (docs/benchmark.md, section 8) lists the claims a benchmark is run
for, e.g. "LGDEA at 5% beats CLIP on the evidence phrases at 5%":

    comparisons = [dict(a='LGDEA_p5', b='CLIP-evidence_p5',
                        metrics=['zero_shot', 'P@1'])]

For each metric the difference ``a - b`` is taken per seed (same seed = same initialisation
draw and data order, so the pairing removes the shared part of the seed-to-seed spread), and
reported as the mean, the sample std and the two-sided 95% Student-t interval of the mean
(``mean +- t_{0.975, n-1} sd / sqrt(n)``; at least two seeds), and, when every run wrote
per-case values, the 95% bootstrap interval over the same seeds *and* the evaluation cases
(:mod:`lgdea.benchmark.bootstrap`, pairs by seed and by case). A claim "a beats b" needs the
hull of the two intervals above 0 (:func:`claim_interval`): the bootstrap carries the finite
evaluation set's noise, the Student-t interval the small-sample seed spread.
"""
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy import stats

from .bootstrap import bootstrap_interval, paired_cases

#: Short metric names a comparison may use, resolved with the spec's dataset prefixes.
METRIC_ALIASES = {
    'zero_shot': '{retrieval}/zero_shot/accuracy',
    'P@1': '{retrieval}/retrieval/P@1',
    'P@5': '{retrieval}/retrieval/P@5',
    'P@10': '{retrieval}/retrieval/P@10',
    'cnr': '{grounding}/grounding/cnr',
}


@dataclass
class PairedDifference:
    """``a - b`` of one metric over ``seeds`` (values in the metric's own unit)."""

    a: str
    b: str
    metric: str
    key: str
    seeds: List[int]
    mean: Optional[float]
    std: Optional[float]
    ci_low: Optional[float]
    ci_high: Optional[float]
    boot_low: Optional[float] = None
    boot_high: Optional[float] = None

    @property
    def interval(self) -> Optional[tuple]:
        """The interval a claim rests on: the hull of the Student-t interval over seeds and the
        bootstrap interval over seeds and cases (:func:`claim_interval`)."""
        return claim_interval((self.ci_low, self.ci_high), (self.boot_low, self.boot_high))

    @property
    def excludes_zero(self) -> bool:
        interval = self.interval
        return interval is not None and (interval[0] > 0 or interval[1] < 0)

    def to_json(self) -> dict:
        return dict(a=self.a, b=self.b, metric=self.metric, key=self.key, seeds=self.seeds,
                    n=len(self.seeds), mean=self.mean, std=self.std,
                    ci95=[self.ci_low, self.ci_high],
                    bootstrap_ci95=([self.boot_low, self.boot_high]
                                    if self.boot_low is not None else None),
                    excludes_zero=self.excludes_zero)


def claim_interval(t_interval, boot_interval) -> Optional[tuple]:
    """Hull of the Student-t interval over seeds and the bootstrap interval over seeds and
    cases (either may be ``(None, None)`` or None).

    Each misses something: the t interval ignores the finite evaluation set; the percentile
    bootstrap over few seeds underestimates the seed-to-seed spread (with 2 seeds it can only
    draw 3 seed mixtures, and it uses normal rather than t quantiles). The hull is
    conservative where either is; with one seed only the (case-level) bootstrap exists."""
    parts = [iv for iv in (t_interval, boot_interval) if iv is not None and iv[0] is not None]
    if not parts:
        return None
    return min(iv[0] for iv in parts), max(iv[1] for iv in parts)


def paired_difference(values_a: Dict[int, float], values_b: Dict[int, float],
                      confidence: float = 0.95):
    """(seeds, mean, sample std, ci_low, ci_high) of ``a[s] - b[s]`` over the common seeds
    with finite values; std / interval are None below two seeds."""
    seeds = sorted(s for s in values_a if s in values_b
                   and _finite(values_a[s]) and _finite(values_b[s]))
    if not seeds:
        return seeds, None, None, None, None
    d = np.asarray([float(values_a[s]) - float(values_b[s]) for s in seeds], dtype=np.float64)
    mean = float(d.mean())
    if d.size < 2:
        return seeds, mean, None, None, None
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, d.size - 1)) * sd / math.sqrt(d.size)
    return seeds, mean, sd, mean - half, mean + half


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def resolve_metric(metric: str, datasets: Dict[str, str]) -> str:
    """An alias of :data:`METRIC_ALIASES` or a full metric key (``{retrieval}`` etc. allowed)."""
    return METRIC_ALIASES.get(metric, metric).format(**datasets)


def check_comparisons(comparisons: Sequence[dict], setting_ids: Sequence[str]) -> None:
    """Stop on a comparison that names an unknown setting or has no metric."""
    known = set(setting_ids)
    for i, c in enumerate(comparisons):
        missing = [k for k in ('a', 'b', 'metrics') if not c.get(k)]
        if missing:
            raise ValueError(f'comparisons[{i}] needs {missing} (dict(a=<setting id>, '
                             'b=<setting id>, metrics=[...]))')
        for side in ('a', 'b'):
            if c[side] not in known:
                raise ValueError(f'comparisons[{i}].{side}={c[side]!r} is not a setting id of '
                                 f'the spec; use one of {sorted(known)}.')


def compute_comparisons(comparisons: Sequence[dict], records, datasets: Dict[str, str]
                        ) -> List[PairedDifference]:
    """Every (comparison, metric) of the spec over the finished runs in ``records``."""
    by_setting: Dict[str, Dict[int, object]] = {}
    for r in records:
        if r.status == 'finished':
            by_setting.setdefault(r.run.setting.setting_id, {})[r.run.seed] = r
    out = []
    for c in comparisons:
        runs_a, runs_b = by_setting.get(c['a'], {}), by_setting.get(c['b'], {})
        for metric in c['metrics']:
            key = resolve_metric(metric, datasets)
            va = {s: r.metrics.get(key) for s, r in runs_a.items()}
            vb = {s: r.metrics.get(key) for s, r in runs_b.items()}
            seeds, mean, sd, lo, hi = paired_difference(va, vb)
            boot = None
            if seeds:
                diff = paired_cases({s: runs_a[s].cases(key) for s in seeds},
                                    {s: runs_b[s].cases(key) for s in seeds}, seeds)
                boot = bootstrap_interval(diff) if diff is not None else None
            out.append(PairedDifference(c['a'], c['b'], metric, key, seeds, mean, sd, lo, hi,
                                        *(boot or (None, None))))
    return out


def format_comparisons(diffs: Sequence[PairedDifference]) -> str:
    """Markdown section of the paired differences, in the metrics' own unit."""
    def f(v):
        return 'n/a' if v is None else f'{v:+.2f}'
    lines = ['## Paired differences (a - b, same seeds)', '',
             '| a | b | metric | seeds | mean | sample std | 95% interval (seeds) | '
             '95% interval (seeds x cases) | excludes 0 |',
             '|---|---|---|---|---|---|---|---|---|']
    for d in diffs:
        std = 'n/a' if d.std is None else f'{d.std:.2f}'
        ci = 'n/a' if d.ci_low is None else f'[{f(d.ci_low)}, {f(d.ci_high)}]'
        boot = 'n/a' if d.boot_low is None else f'[{f(d.boot_low)}, {f(d.boot_high)}]'
        lines.append(f'| {d.a} | {d.b} | {d.metric} | {len(d.seeds)} | {f(d.mean)} | {std} | '
                     f'{ci} | {boot} | {"yes" if d.excludes_zero else "no"} |')
    lines.append('')
    lines.append('In the metrics\' unit (accuracies and P@K in percentage points). Seeds: the '
                 'two-sided 95% Student-t interval of the mean paired difference over the seeds; '
                 'seeds x cases: the 95% bootstrap interval resampling the seeds and the '
                 'evaluation cases together (needs per-case values). "Excludes 0": the hull of '
                 'both intervals excludes 0 (with one seed: the bootstrap over cases alone).')
    return '\n'.join(lines) + '\n'
