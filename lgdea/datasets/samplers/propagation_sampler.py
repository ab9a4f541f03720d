"""Batch sampler of the limited-pairing setting (paper Alg. 1, line 2)."""
import logging
import math
from typing import Iterator, List, Optional, Tuple

import numpy as np
from mmengine.logging import print_log
from torch.utils.data import Sampler

from lgdea.registry import DATA_SAMPLERS
from lgdea.utils.dist import get_rank, get_world_size


@DATA_SAMPLERS.register_module()
class PropagationSampler(Sampler):
    """Builds every mini-batch from the three pools of a :class:`LimitedPairingDataset`.

    Each **global** batch holds ``B`` images and ``B`` reports (Eq. 11): ``n_paired`` paired
    studies (one of their images + their report) and ``B - n_paired`` unpaired images and
    unpaired reports, so every batch has seed links. One epoch draws every unpaired image once
    (shuffled); paired studies are resampled as needed and unpaired reports are cycled. With no
    unpaired image (``pair_ratio=1``) every batch is fully paired.

    Used as mmengine's ``batch_sampler``; ``batch_size`` is the per-rank batch size (as in
    mmengine's dataloader config), the global batch is ``batch_size * world_size``. Both
    halves of a pair stay on one rank and the ranks get disjoint shards of each global batch.
    Deterministic for a given ``seed`` and epoch.

    A batch never repeats an item: a global batch that needs more paired studies, unpaired
    images or unpaired reports than the pools hold is refused at construction with the pool
    sizes and the largest batch size that fits, unless the dataset was built with
    ``resample_small_pools=True`` (then items repeat within a batch and a warning says so).

    Args:
        sampler: the dataloader's sampler (mmengine passes it; its ``dataset``, ``seed`` and
            ``epoch`` are used).
        batch_size: per-rank number of images (= number of reports).
        n_paired: paired studies per global batch. ``None`` = ``B // 2`` (docs/method.md default).
        paired_mode: ``'half'`` (``B // 2``) or ``'proportional'``
            (``max(min_paired, round(B * N_pairs / N_images))``); ignored when ``n_paired``.
        min_paired: lower bound for ``'proportional'``.
        seed: overrides the sampler's seed.
    """

    def __init__(self, sampler, batch_size: int, n_paired: Optional[int] = None,
                 paired_mode: str = 'half', min_paired: int = 8, seed: Optional[int] = None,
                 drop_last: bool = False):
        self.sampler = sampler
        self.dataset = sampler.dataset
        for attr in ('paired_image_index', 'report_index', 'unpaired_image_ids',
                     'unpaired_report_ids', 'num_images'):
            if not hasattr(self.dataset, attr):
                raise TypeError('PropagationSampler needs a LimitedPairingDataset with '
                                f'include_unpaired=True, got {type(self.dataset).__name__}.')
        if not getattr(self.dataset, 'include_unpaired', True):
            raise ValueError('PropagationSampler needs include_unpaired=True; use the default '
                             'sampler for paired-only training.')
        self.world_size = get_world_size()
        self.rank = get_rank()
        self.batch_size = int(batch_size)
        self.global_batch = self.batch_size * self.world_size
        self.seed = seed if seed is not None else getattr(sampler, 'seed', 0)
        self.epoch = None
        self.drop_last = drop_last
        self.paired_studies = list(self.dataset.paired_image_index.keys())
        n_unpaired = len(self.dataset.unpaired_image_ids)
        B = self.global_batch
        if n_unpaired == 0:
            n_p = B
        elif n_paired is not None:
            n_p = int(n_paired)
        elif paired_mode == 'half':
            n_p = B // 2
        elif paired_mode == 'proportional':
            n_pairs = len(self.paired_studies)
            n_p = max(min_paired, int(round(B * n_pairs / max(1, self.dataset.num_images))))
        else:
            raise ValueError(f'paired_mode must be "half" or "proportional", got {paired_mode!r}')
        if not 1 <= n_p <= B:
            raise ValueError(f'n_paired={n_p} must be within [1, global batch {B}]')
        if n_p < B and n_p % self.world_size:
            raise ValueError(f'n_paired={n_p} must be divisible by the world size '
                             f'{self.world_size} so that each rank keeps whole pairs.')
        if n_p < B and not self.dataset.unpaired_report_ids:
            raise ValueError('There are unpaired images but no unpaired report to fill the '
                             'batch; use n_paired=batch size or disjoint_unpaired=False.')
        self.n_paired = n_p
        self.n_unpaired = B - n_p
        self._check_pools(paired_mode, n_paired, min_paired)
        if self.n_unpaired:
            self._num_batches = (n_unpaired // self.n_unpaired if drop_last
                                 else math.ceil(n_unpaired / self.n_unpaired))
        else:
            n_img = sum(len(v) for v in self.dataset.paired_image_index.values())
            self._num_batches = n_img // B if drop_last else math.ceil(n_img / B)
        self._num_batches = max(1, self._num_batches)

    def _composition(self, B: int, paired_mode: str, n_paired: Optional[int],
                     min_paired: int) -> Tuple[int, int]:
        """``(paired studies, unpaired images = unpaired reports)`` of a global batch ``B``."""
        if not self.dataset.unpaired_image_ids:
            return B, 0
        if n_paired is not None:
            n_p = int(n_paired)
        elif paired_mode == 'half':
            n_p = B // 2
        else:
            n_p = max(min_paired, int(round(B * len(self.paired_studies)
                                            / max(1, self.dataset.num_images))))
        return n_p, B - n_p

    def _check_pools(self, paired_mode: str, n_paired: Optional[int], min_paired: int) -> None:
        """Refuse (or, with the dataset's ``resample_small_pools=True``, warn about) a batch
        that needs more distinct paired studies, unpaired images or unpaired reports than the
        pools hold: such a batch would repeat items within itself."""
        P = len(self.paired_studies)
        U = len(self.dataset.unpaired_image_ids)
        R = len(self.dataset.unpaired_report_ids)

        def fits(n_p, n_u):
            return 1 <= n_p <= P and 0 <= n_u <= min(U, R)

        if fits(self.n_paired, self.n_unpaired):
            return
        W = self.world_size
        largest = next((b for b in range(self.global_batch - W, 0, -W)
                        if fits(*self._composition(b, paired_mode, n_paired, min_paired))), 0)
        need = (f'a global batch of {self.global_batch} (batch_size={self.batch_size} x '
                f'{W} rank(s)) takes {self.n_paired} paired studies, {self.n_unpaired} unpaired '
                f'images and {self.n_unpaired} unpaired reports, but the pools hold {P} paired '
                f'studies, {U} unpaired images and {R} unpaired reports')
        if getattr(self.dataset, 'resample_small_pools', False):
            print_log(f'PropagationSampler: {need}; items are repeated within a batch '
                      '(resample_small_pools=True).', logger='current', level=logging.WARNING)
            return
        hint = (f'the largest batch_size is {largest // W} per rank (global {largest})'
                if largest else 'no batch size fits (lower n_paired)')
        raise ValueError(f'PropagationSampler: {need}, so a batch would repeat items; {hint}. '
                         'Lower batch_size (or n_paired), or set resample_small_pools=True on '
                         'the LimitedPairingDataset to repeat items with a warning.')

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _current_epoch(self) -> int:
        if self.epoch is not None:
            return self.epoch
        return int(getattr(self.sampler, 'epoch', 0))

    def global_batches(self) -> List[List[int]]:
        """All global batches of the current epoch as dataset indices
        (``n_paired`` image+report pairs first, then unpaired images and reports)."""
        ds = self.dataset
        rng = np.random.default_rng([self.seed, self._current_epoch()])
        n_img = ds.num_images
        paired_cycle = _Cycle(self.paired_studies, rng)
        report_cycle = _Cycle(ds.unpaired_report_ids, rng) if self.n_unpaired else None
        unpaired = list(rng.permutation(ds.unpaired_image_ids)) if self.n_unpaired else []
        batches = []
        for b in range(self._num_batches):
            pair_imgs, pair_reps = [], []
            for sid in paired_cycle.take(self.n_paired):
                imgs = ds.paired_image_index[sid]
                pair_imgs.append(int(imgs[rng.integers(len(imgs))]))
                pair_reps.append(n_img + ds.report_index[sid])
            un_imgs = unpaired[b * self.n_unpaired:(b + 1) * self.n_unpaired]
            if self.n_unpaired and len(un_imgs) < self.n_unpaired:
                # last batch: top up from the start of the permutation
                un_imgs = un_imgs + unpaired[:self.n_unpaired - len(un_imgs)]
            un_reps = ([n_img + j for j in report_cycle.take(self.n_unpaired)]
                       if self.n_unpaired else [])
            batches.append((pair_imgs, pair_reps, [int(i) for i in un_imgs], un_reps))
        return batches

    def __iter__(self) -> Iterator[List[int]]:
        W, r = self.world_size, self.rank
        for pair_imgs, pair_reps, un_imgs, un_reps in self.global_batches():
            p = len(pair_imgs) // W
            u = len(un_imgs) // W
            yield (pair_imgs[r * p:(r + 1) * p] + un_imgs[r * u:(r + 1) * u] +
                   pair_reps[r * p:(r + 1) * p] + un_reps[r * u:(r + 1) * u])

    def __len__(self) -> int:
        return self._num_batches


class _Cycle:
    """Endless shuffled cycle over a list (re-shuffled at each wrap)."""

    def __init__(self, items, rng: np.random.Generator):
        self.items = list(items)
        self.rng = rng
        self.order: List = []

    def take(self, n: int) -> list:
        out = []
        while len(out) < n:
            if not self.order:
                if not self.items:
                    raise ValueError('cannot draw from an empty pool')
                self.order = [self.items[i] for i in self.rng.permutation(len(self.items))]
                self._keep_distinct(out, n - len(out))
            out.append(self.order.pop())
        return out

    def _keep_distinct(self, taken: list, still: int) -> None:
        """After a re-shuffle in the middle of a draw: when one of the next ``still`` items
        was already drawn, move the drawn items to the far end of the new order (the draw stays
        distinct while the pool is large enough; other orders are left untouched)."""
        if not taken:
            return
        seen = set(taken)
        if not seen & set(self.order[-still:]):
            return
        self.order = ([x for x in self.order if x in seen]
                      + [x for x in self.order if x not in seen])
