"""Per-rank training throughput: samples/s, data-wait share, peak memory, FLOPs and MFU."""
import json
import os.path as osp
import resource
import sys
import time
from typing import Optional

import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size, is_main_process
from mmengine.hooks import Hook, LoggerHook
from mmengine.logging import print_log
from torch.utils.flop_counter import FlopCounterMode

from lgdea.registry import HOOKS

__all__ = ['ThroughputHook', 'PEAK_BF16_FLOPS', 'peak_flops_for']

# Dense bf16 tensor-core peak per GPU (vendor data sheets). Checked in order, first substring of
# ``torch.cuda.get_device_name()`` that matches wins (so 'H100 PCIe' precedes 'H100').
PEAK_BF16_FLOPS = (
    ('A100', 312e12),
    ('H100 PCIe', 756e12),
    ('H100', 989e12),  # SXM
    ('H200', 989e12),
)


def peak_flops_for(device_name: str) -> Optional[float]:
    """Peak dense bf16 FLOP/s of a GPU by name, or None when the name is not in the table."""
    for key, peak in PEAK_BF16_FLOPS:
        if key.lower() in device_name.lower():
            return peak
    return None


def _batch_size(data_batch) -> int:
    """Number of samples in an mmengine data batch (``data_samples`` first: ``inputs`` may be
    None for report-only batches)."""
    if isinstance(data_batch, dict):
        for key in ('data_samples', 'inputs'):
            value = data_batch.get(key)
            if value is not None:
                return len(value)
    if isinstance(data_batch, (list, tuple, torch.Tensor)):
        return len(data_batch)
    raise TypeError(f'ThroughputHook cannot tell the batch size of a {type(data_batch).__name__}; '
                    'expected a dict with data_samples or inputs')


def _max_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == 'darwin' else rss / 2**10  # bytes on macOS, KiB on Linux


@HOOKS.register_module()
class ThroughputHook(Hook):
    """Log training throughput of this rank every ``interval`` iterations.

    Message-hub scalars (they appear in the training log and ``scalars.json``):

    - ``train/samples_per_s``: samples of this rank over the interval's wall time.
    - ``train/data_wait_share``: share of that wall time spent between ``after_train_iter`` and
      the next ``before_train_iter`` (waiting for the dataloader and other hooks).
    - ``train/peak_cuda_mem_mb`` (``torch.cuda.max_memory_allocated``) on a GPU, otherwise
      ``train/peak_rss_mb`` (process max resident set size).
    - ``train/flops_per_sample``: model FLOPs of one forward + backward per sample, counted once
      with ``torch.utils.flop_counter.FlopCounterMode`` during the real first training iteration
      (no extra forward, so no model state is touched twice). Only matmul/conv/attention ops are
      counted, as ``FlopCounterMode`` does; optimizer updates are not.
    - ``train/achieved_tflops``: ``flops_per_sample * samples_per_s / 1e12`` (TFLOP/s).
    - ``train/mfu``: achieved FLOP/s over the GPU's dense bf16 peak, only when the peak is known
      (``peak_flops`` or :data:`PEAK_BF16_FLOPS`); absent on CPU.

    The first iteration (warm-up, and slowed by the counter) is not timed. At the end of training
    a summary over all timed iterations is kept in ``self.summary`` and written by rank 0 to
    ``<work_dir>/throughput.json`` with every rank's summary.

    Args:
        interval: iterations between logs; None takes the ``LoggerHook`` interval (else 50).
        count_flops: count FLOPs in the first iteration.
        peak_flops: peak FLOP/s per device for MFU; None looks the GPU up in the table.
    """

    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL) so this iteration's values are logged

    def __init__(self, interval: Optional[int] = None, count_flops: bool = True,
                 peak_flops: Optional[float] = None):
        if interval is not None and int(interval) < 1:
            raise ValueError(f'ThroughputHook interval must be >= 1, got {interval}')
        self.interval = None if interval is None else int(interval)
        self.count_flops = bool(count_flops)
        self.peak_flops = None if peak_flops is None else float(peak_flops)
        self.summary: dict = {}

    # -- state -------------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        if self.interval is None:
            loggers = [h for h in runner.hooks if isinstance(h, LoggerHook)]
            self.interval = loggers[0].interval if loggers else 50
        self._counter: Optional[FlopCounterMode] = None
        self.flops_per_sample: Optional[float] = None
        self._last_after: Optional[float] = None
        self._t_before: Optional[float] = None
        self._wait = 0.0
        self._iter_wait = 0.0
        self._win = dict(samples=0, wall=0.0, wait=0.0)
        self._tot = dict(samples=0, wall=0.0, wait=0.0, iters=0)
        self._flops_done = not self.count_flops
        self._device = self._model_device(runner)
        if self._device.type == 'cuda':
            name = torch.cuda.get_device_name(self._device)
            peak = self.peak_flops if self.peak_flops is not None else peak_flops_for(name)
        else:
            name, peak = 'cpu' if self._device.type == 'cpu' else self._device.type, None
        self._device_name, self._peak = name, peak

    @staticmethod
    def _model_device(runner) -> torch.device:
        for p in runner.model.parameters():
            return p.device
        return torch.device('cpu')

    # -- timing ------------------------------------------------------------------------------
    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        now = time.perf_counter()
        self._iter_wait = now - self._last_after if self._last_after is not None else 0.0
        if not self._flops_done:
            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()
        self._t_before = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._device.type == 'cuda':
            torch.cuda.synchronize(self._device)
        now = time.perf_counter()
        n = _batch_size(data_batch)
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.flops_per_sample = self._counter.get_total_flops() / max(n, 1)
            self._counter, self._flops_done = None, True
            # this iteration is the warm-up: not timed
        elif self._t_before is not None and self._last_after is not None:
            wall = self._iter_wait + (now - self._t_before)
            for acc in (self._win, self._tot):
                acc['samples'] += n
                acc['wall'] += wall
                acc['wait'] += self._iter_wait
            self._tot['iters'] += 1
        self._last_after = time.perf_counter()
        if self.every_n_train_iters(runner, self.interval) and self._win['wall'] > 0:
            self._log(runner, self._stats(self._win))
            self._win = dict(samples=0, wall=0.0, wait=0.0)

    # -- values ------------------------------------------------------------------------------
    def _stats(self, acc: dict) -> dict:
        stats = dict(samples_per_s=acc['samples'] / acc['wall'] if acc['wall'] > 0 else 0.0,
                     data_wait_share=acc['wait'] / acc['wall'] if acc['wall'] > 0 else 0.0)
        if self._device.type == 'cuda':
            stats['peak_cuda_mem_mb'] = torch.cuda.max_memory_allocated(self._device) / 2**20
        else:
            stats['peak_rss_mb'] = _max_rss_mb()
        if self.flops_per_sample is not None:
            stats['flops_per_sample'] = self.flops_per_sample
            achieved = self.flops_per_sample * stats['samples_per_s']
            stats['achieved_tflops'] = achieved / 1e12
            if self._peak:
                stats['mfu'] = achieved / self._peak
        return stats

    def _log(self, runner, stats: dict) -> None:
        for key, value in stats.items():
            runner.message_hub.update_scalar(f'train/{key}', float(value))

    def after_train(self, runner) -> None:
        summary = self._stats(self._tot)
        summary.update(rank=get_rank(), timed_iters=self._tot['iters'],
                       samples=self._tot['samples'], device=self._device_name,
                       peak_flops=self._peak,
                       peak_mem_kind=('cuda_max_memory_allocated' if self._device.type == 'cuda'
                                      else 'process_max_rss'),
                       flops_counted_on='first training iteration, forward + backward')
        self.summary = summary
        ranks = all_gather_object(summary) if get_world_size() > 1 else [summary]
        if is_main_process():
            path = osp.join(runner.work_dir, 'throughput.json')
            with open(path, 'w') as f:
                json.dump(dict(world_size=len(ranks), ranks=ranks), f, indent=2)
            print_log(f'throughput (rank 0): {summary["samples_per_s"]:.2f} samples/s, '
                      f'data wait {100 * summary["data_wait_share"]:.1f}% -> {path}',
                      logger='current')
