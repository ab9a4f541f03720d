"""Paired differences of the benchmark (hand-computed t intervals)."""
import math

import pytest

from lgdea.benchmark.comparisons import (check_comparisons, compute_comparisons,
                                         format_comparisons, paired_difference)


def test_paired_difference_against_hand_values():
    a = {0: 52.0, 1: 55.0, 2: 50.0, 3: 60.0}
    b = {0: 50.0, 1: 51.0, 2: 49.0, 4: 1.0}               # seed 3 / 4 unpaired: left out
    seeds, mean, sd, lo, hi = paired_difference(a, b)
    assert seeds == [0, 1, 2]
    assert mean == pytest.approx(7 / 3)                   # d = 2, 4, 1
    assert sd == pytest.approx(math.sqrt(((2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2
                                          + (1 - 7 / 3) ** 2) / 2))
    half = 4.302652729911275 * sd / math.sqrt(3)           # t_{0.975, 2}
    assert lo == pytest.approx(mean - half) and hi == pytest.approx(mean + half)
    assert paired_difference({0: 1.0}, {0: 0.5})[2:] == (None, None, None)
    assert paired_difference({0: float('nan')}, {0: 0.5})[0] == []


class _Setting:
    def __init__(self, sid):
        self.setting_id = sid


class _Run:
    def __init__(self, sid, seed):
        self.setting, self.seed = _Setting(sid), seed


class _Record:
    def __init__(self, sid, seed, value, cases=None):
        self.run, self.status = _Run(sid, seed), 'finished'
        self.metrics = {'synthetic_5x200/zero_shot/accuracy': value}
        self._cases = cases

    def cases(self, key):
        return self._cases


def test_compute_and_format_comparisons():
    records = [_Record('A_p5', s, 60 + s) for s in range(3)] + \
        [_Record('B_p5', s, 50.0) for s in range(3)]
    diffs = compute_comparisons([dict(a='A_p5', b='B_p5', metrics=['zero_shot'])], records,
                                dict(retrieval='synthetic_5x200', grounding='g'))
    (d,) = diffs
    assert d.mean == pytest.approx(11.0) and d.excludes_zero
    md = format_comparisons(diffs)
    assert '| A_p5 | B_p5 | zero_shot | 3 | +11.00 | 1.00 |' in md
    with pytest.raises(ValueError, match='not a setting id'):
        check_comparisons([dict(a='A_p5', b='C_p5', metrics=['zero_shot'])], ['A_p5', 'B_p5'])
    with pytest.raises(ValueError, match='needs'):
        check_comparisons([dict(a='A_p5', b='B_p5')], ['A_p5', 'B_p5'])


def _correct(n_right, n=200):
    return [100.0] * n_right + [0.0] * (n - n_right)


def test_comparison_bootstrap_over_seeds_and_cases_decides_the_claim():
    """Per seed, A is right on 10 more of 200 cases than B (a superset): the seed-only
    interval is degenerate-narrow (sd 0), the bootstrap over cases is not and still excludes 0;
    with 2 more cases it does not (a resample misses both in about 13% of the draws); with B
    right on other cases the claim does not hold either."""
    key = dict(retrieval='synthetic_5x200', grounding='g')
    spec = [dict(a='A_p5', b='B_p5', metrics=['zero_shot'])]
    same = [_Record('A_p5', s, 55.0, _correct(110)) for s in range(3)] + \
        [_Record('B_p5', s, 50.0, _correct(100)) for s in range(3)]
    (d,) = compute_comparisons(spec, same, key)
    assert d.std == 0.0 and d.ci_low == d.ci_high == pytest.approx(5.0)
    assert 0 < d.boot_low < 5.0 < d.boot_high and d.excludes_zero
    two = [_Record('A_p5', s, 51.0, _correct(102)) for s in range(3)] + \
        [_Record('B_p5', s, 50.0, _correct(100)) for s in range(3)]
    (d,) = compute_comparisons(spec, two, key)
    assert d.boot_low == 0.0 and not d.excludes_zero
    # B right on other cases: a - b is +1 on average but +-100 case by case
    other = [_Record('A_p5', s, 51.0, _correct(102)) for s in range(3)] + \
        [_Record('B_p5', s, 50.0, _correct(100)[::-1]) for s in range(3)]
    (d,) = compute_comparisons(spec, other, key)
    assert d.boot_low < 0 < d.boot_high and not d.excludes_zero
    md = format_comparisons([d])
    assert '95% interval (seeds x cases)' in md and f'[{d.boot_low:+.2f}, {d.boot_high:+.2f}]' in md
    assert d.to_json()['bootstrap_ci95'] == [d.boot_low, d.boot_high]
    # without per-case values: the Student-t interval over seeds decides
    plain = [_Record('A_p5', s, 51.0 + s) for s in range(3)] + \
        [_Record('B_p5', s, 50.0) for s in range(3)]
    (d,) = compute_comparisons(spec, plain, key)
    assert d.boot_low is None and d.interval == (d.ci_low, d.ci_high)


def test_claim_needs_the_hull_of_the_seed_and_the_case_interval():
    """Two seeds, +15 and +5 points: the bootstrap (3 seed mixtures, cases) excludes 0, the
    Student-t interval with one degree of freedom does not, so the claim is not made."""
    key = dict(retrieval='synthetic_5x200', grounding='g')
    spec = [dict(a='A_p5', b='B_p5', metrics=['zero_shot'])]
    records = [_Record('A_p5', 0, 60.0, _correct(120)), _Record('A_p5', 1, 40.0, _correct(80)),
               _Record('B_p5', 0, 45.0, _correct(90)), _Record('B_p5', 1, 35.0, _correct(70))]
    (d,) = compute_comparisons(spec, records, key)
    assert d.boot_low > 0 and d.ci_low < 0
    assert d.interval == (d.ci_low, max(d.ci_high, d.boot_high)) and not d.excludes_zero
