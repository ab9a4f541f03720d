"""Seeding and fast scalar sampling helpers (``Generator.choice`` with ``p`` is slow per call)."""
import bisect
import itertools
from typing import List, Sequence

import numpy as np


def make_rng(seed: int, *key: int) -> np.random.Generator:
    """Independent generator of the item ``key`` under the master ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=tuple(key)))


def categorical(rng: np.random.Generator, probs: Sequence[float]) -> int:
    """Index drawn with probabilities ``probs`` (need not be normalised; sum > 0)."""
    cum = list(itertools.accumulate(float(p) for p in probs))
    return min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)


def sample_without_replacement(rng: np.random.Generator, probs: Sequence[float],
                               n: int) -> List[int]:
    """``n`` distinct indices, each drawn proportionally to the remaining ``probs`` (sorted)."""
    weights = [float(p) for p in probs]
    out = []
    for _ in range(n):
        if sum(weights) <= 0:
            break
        k = categorical(rng, weights)
        out.append(k)
        weights[k] = 0.0
    return sorted(out)


def pick(rng: np.random.Generator, options: Sequence):
    """Uniformly chosen element of ``options``."""
    return options[int(rng.integers(len(options)))]
