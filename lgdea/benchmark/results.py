"""Finished runs as records, and their aggregation over seeds (mean and std per metric).

:func:`collect_run` reads what a run left in its work dir: the newest
``*_test_results.json`` (``tools/test.py``; a ``{'metrics': ...}`` wrapper is unwrapped), the
wall times of ``benchmark_run.json`` and, from the config, whether the run used early stopping
(``early_stopping`` set in the config, or an ``EarlyStoppingHook``) and its
``model_selection``.
"""
import json
import math
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .runs import (latest_results_file, load_config, read_run_info, run_cfg_options,
                   select_checkpoint)
from .spec import RunSpec

__all__ = ['WALL_TIME_KEY', 'TRAIN_DIAGNOSTICS_FILE', 'THROUGHPUT_FILE', 'THROUGHPUT_KEY',
           'read_throughput', 'RunRecord', 'collect_run', 'cases_file_of',
           'read_cases',
           'read_train_diagnostics', 'config_facts', 'read_metrics',
           'MetricSummary', 'summarize']

#: Pseudo metric key under which a run's wall time (train + test, seconds) enters the tables.
WALL_TIME_KEY = 'benchmark/wall_time_s'


def cases_file_of(results_file: Optional[str]) -> Optional[str]:
    """The ``<timestamp>_test_cases.json`` written with ``<timestamp>_test_results.json``."""
    if not results_file or not results_file.endswith('_test_results.json'):
        return None
    path = results_file[:-len('_test_results.json')] + '_test_cases.json'
    return path if osp.isfile(path) else None


def read_cases(path: str) -> Dict[str, list]:
    """``{metric key: [per-case value or None]}`` of a ``*_test_cases.json``."""
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError(f'{path}: expected an object of per-case value lists; delete it and '
                         'rerun the test of that run (tools/test.py writes it again).')
    return data


def read_metrics(path: str) -> Dict[str, float]:
    """Metrics of a results JSON; ``{'metrics': {...}}`` is unwrapped, null stays None."""
    with open(path) as f:
        data = json.load(f)
    if isinstance(data, dict) and isinstance(data.get('metrics'), dict):
        data = data['metrics']
    if not isinstance(data, dict):
        raise ValueError(f'{path}: expected a JSON object of metrics')
    return data


def _training_summary(work_dir: str, name: str, key: str, kind: type, what: str):
    """``data[key]`` of the JSON object ``<work_dir>/<name>`` a training hook wrote (None when
    the file is absent); an error naming the file when it is not such an object."""
    path = osp.join(work_dir, name)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        data = json.load(f)
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, kind) or (kind is list and not value):
        raise ValueError(f'{path}: expected an object with {what}; delete the file or rerun '
                         'the training.')
    return value


#: Written by ``UnpairedDiagnosticsHook`` at the end of training; its ``summary``
#: (``train/...`` keys: partner rank, propagated-target precision, ...) joins the run's metrics.
TRAIN_DIAGNOSTICS_FILE = 'unpaired_diagnostics.json'


def read_train_diagnostics(work_dir: str) -> Dict[str, float]:
    """The ``summary`` of ``<work_dir>/unpaired_diagnostics.json`` ({} when absent)."""
    summary = _training_summary(work_dir, TRAIN_DIAGNOSTICS_FILE, 'summary', dict,
                                'a `summary` of metrics')
    return {str(k): v for k, v in (summary or {}).items()}


#: Written by ``ThroughputHook`` at the end of training (``ranks``: one summary per rank).
THROUGHPUT_FILE = 'throughput.json'
#: Key of the training throughput (samples/s over all ranks) in a run's metrics.
THROUGHPUT_KEY = 'throughput/samples_per_s'


def read_throughput(work_dir: str) -> Dict[str, float]:
    """Training throughput of a run as ``throughput/...`` metrics ({} without the file):
    samples/s and achieved TFLOP/s summed over the ranks, the data-wait share and MFU averaged
    over them (MFU only where the hook knew the device's peak), the peak memory (MB) of the
    busiest rank (CUDA allocated, else the process max RSS), and the counted FLOPs per sample."""
    ranks = _training_summary(work_dir, THROUGHPUT_FILE, 'ranks', list,
                              'a non-empty `ranks` list')
    if ranks is None:
        return {}

    def values(key):
        return [float(r[key]) for r in ranks
                if isinstance(r.get(key), (int, float)) and math.isfinite(float(r[key]))]

    out = {}
    for key, agg, name in (('samples_per_s', sum, 'samples_per_s'),
                           ('achieved_tflops', sum, 'achieved_tflops'),
                           ('data_wait_share', np.mean, 'data_wait_share'),
                           ('mfu', np.mean, 'mfu'),
                           ('flops_per_sample', np.mean, 'flops_per_sample')):
        v = values(key)
        if v:
            out[f'throughput/{name}'] = float(agg(v))
    mem = values('peak_cuda_mem_mb') or values('peak_rss_mb')
    if mem:
        out['throughput/peak_mem_mb'] = max(mem)
    return out


_FACTS_CACHE: Dict[Tuple[str, Tuple[str, ...]], Tuple[Optional[bool], Optional[str]]] = {}


def config_facts(run: RunSpec) -> Tuple[Optional[bool], Optional[str]]:
    """``(early_stopping, model_selection)`` of a run's config (None, None if it is missing).

    Early stopping counts as used when the config sets a truthy ``early_stopping`` or has an
    ``EarlyStoppingHook`` in ``custom_hooks``; ``model_selection`` defaults to ``'last'``.
    """
    key = (run.config_path, tuple(run.cfg_options))
    if key not in _FACTS_CACHE:
        if not osp.isfile(run.config_path):
            return None, None
        cfg = load_config(run.config_path, run.cfg_options)
        hooks = [str(h.get('type', '')) for h in cfg.get('custom_hooks') or []]
        early = bool(cfg.get('early_stopping')) or any('EarlyStopping' in h for h in hooks)
        _FACTS_CACHE[key] = (early, str(cfg.get('model_selection', 'last')))
    return _FACTS_CACHE[key]


@dataclass
class RunRecord:
    """A run as the tables and ``results.json`` see it.

    ``status`` is ``'finished'`` (results present) or ``'missing'``; ``metrics`` is None
    when missing. ``wall_time_s`` = recorded train + test seconds (None if not recorded, e.g.
    results produced outside the benchmark).
    """

    run: RunSpec
    status: str
    metrics: Optional[Dict[str, float]] = None
    results_file: Optional[str] = None
    checkpoint: Optional[str] = None
    train_seconds: Optional[float] = None
    test_seconds: Optional[float] = None
    early_stopping: Optional[bool] = None
    model_selection: Optional[str] = None
    cfg_options: List[str] = field(default_factory=list)
    cases_file: Optional[str] = None
    _cases: Optional[Dict[str, list]] = field(default=None, repr=False, compare=False)

    def cases(self, key: str) -> Optional[list]:
        """Per-case values of metric ``key`` (``*_test_cases.json`` next to the results, written
        by the test loops; None when the run has none, e.g. results from before they existed)."""
        if self._cases is None:
            self._cases = read_cases(self.cases_file) if self.cases_file else {}
        return self._cases.get(key)

    @property
    def wall_time_s(self) -> Optional[float]:
        parts = [s for s in (self.train_seconds, self.test_seconds) if s is not None]
        return round(sum(parts), 1) if parts else None

    def table_metrics(self) -> Dict[str, float]:
        """Metrics plus the wall time under :data:`WALL_TIME_KEY`."""
        out = dict(self.metrics or {})
        if self.wall_time_s is not None:
            out[WALL_TIME_KEY] = self.wall_time_s
        return out

    def to_json(self) -> dict:
        setting = self.run.setting
        return dict(run_id=self.run.run_id, name=setting.name, label=setting.label,
                    group=setting.group, config=setting.config, pairing=setting.pairing,
                    seed=self.run.seed, sweep=setting.sweep or None, work_dir=self.run.work_dir,
                    status=self.status, wall_time_s=self.wall_time_s,
                    train_seconds=self.train_seconds, test_seconds=self.test_seconds,
                    early_stopping=self.early_stopping, model_selection=self.model_selection,
                    cfg_options=self.cfg_options, checkpoint=self.checkpoint,
                    results_file=self.results_file, cases_file=self.cases_file,
                    metrics=self.metrics)


def collect_run(run: RunSpec) -> RunRecord:
    """The record of ``run`` from its work dir (``status='missing'`` without results)."""
    early, selection = config_facts(run)
    info = read_run_info(run.work_dir)
    results = latest_results_file(run.work_dir)
    checkpoint = info.get('checkpoint') or select_checkpoint(run.work_dir, selection or 'last')
    cfg_options = info.get('cfg_options')
    if cfg_options is None:
        try:
            cfg_options = run_cfg_options(run)
        except (FileNotFoundError, ValueError):
            cfg_options = list(run.cfg_options)
    metrics = read_metrics(results) if results else None
    if metrics is not None:
        metrics.update(read_train_diagnostics(run.work_dir))
        metrics.update(read_throughput(run.work_dir))
    return RunRecord(run=run, status='finished' if results else 'missing',
                     metrics=metrics, results_file=results,
                     checkpoint=checkpoint, train_seconds=info.get('train_seconds'),
                     test_seconds=info.get('test_seconds'), early_stopping=early,
                     model_selection=selection, cfg_options=cfg_options,
                     cases_file=cases_file_of(results))


@dataclass
class MetricSummary:
    """Mean and std of one metric over the seeds that have it (``n`` of them); ``std`` is None
    with fewer than two values."""

    mean: Optional[float]
    std: Optional[float]
    n: int


def summarize(values: Sequence[Optional[float]], ddof: int = 1) -> MetricSummary:
    """Mean and std (``ddof`` 1: sample std) of the finite values (None / NaN left out)."""
    finite = [float(v) for v in values
              if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    if not finite:
        return MetricSummary(None, None, 0)
    arr = np.asarray(finite, dtype=np.float64)
    std = float(arr.std(ddof=ddof)) if arr.size > max(1, ddof) else None
    return MetricSummary(float(arr.mean()), std, int(arr.size))
