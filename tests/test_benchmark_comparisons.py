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
    def __init__(self, sid, seed, value):
        self.run, self.status = _Run(sid, seed), 'finished'
        self.metrics = {'synthetic_5x200/zero_shot/accuracy': value}


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
