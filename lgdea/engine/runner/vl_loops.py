"""Evaluation loops that bind the model to the metrics and write the results to the work dir.

- :class:`VLValLoop` / :class:`VLTestLoop`: mmengine's loops plus ``metric.bind_model(model)``
  (the unwrapped model) before running; the test loop writes the metrics to
  ``<work_dir>/<timestamp>_test_results.json`` (NaN -> null) and the per-case values of the
  metrics (``BaseVLMetric.per_case``, the benchmark bootstraps over them) to
  ``<work_dir>/<timestamp>_test_cases.json``.
- :class:`VLMultiValLoop` / :class:`VLMultiTestLoop`: several (dataloader, evaluator) pairs in
  one run (retrieval + zero-shot + grounding sets), each metric key prefixed by its set name.
"""
import json
import contextlib
import math
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.evaluator import Evaluator
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner.loops import TestLoop, ValLoop, _parse_losses
from torch.utils.data import DataLoader

from lgdea.registry import LOOPS

from .strategies import gathered_params

__all__ = ['VLValLoop', 'VLTestLoop', 'VLMultiValLoop', 'VLMultiTestLoop', 'bind_model_to_metrics',
           'to_jsonable', 'dump_test_results', 'dump_test_cases', 'evaluator_per_case']


def bind_model_to_metrics(evaluator: Evaluator, model) -> None:
    """Call ``metric.bind_model(unwrapped model)`` for every metric that has it."""
    if is_model_wrapper(model):
        model = model.module
    for metric in evaluator.metrics:
        if hasattr(metric, 'bind_model'):
            metric.bind_model(model)


def to_jsonable(obj: Any) -> Any:
    """Numbers / arrays / tensors to plain JSON values; NaN and inf become None (null)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if torch.is_tensor(obj):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        obj = float(obj)
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def dump_test_results(runner, metrics: Dict[str, Any]) -> Optional[str]:
    """Write ``metrics`` to ``<work_dir>/<timestamp>_test_results.json`` (main process only)."""
    path = osp.join(runner.work_dir, f'{runner.timestamp}_test_results.json')
    if is_main_process():
        with open(path, 'w') as f:
            json.dump(to_jsonable(dict(metrics)), f, indent=2, allow_nan=False)
        print_log(f'test results written to {path}', logger='current')
    return path


def evaluator_per_case(evaluator: Evaluator, prefix: str = '') -> Dict[str, List[float]]:
    """Per-case values of the evaluator's metrics (``BaseVLMetric.per_case``) under the keys of
    their metrics, ``prefix`` prepended (``'<set>/'`` in the multi-set loops)."""
    out: Dict[str, List[float]] = OrderedDict()
    for metric in evaluator.metrics:
        if hasattr(metric, 'keyed_per_case'):
            for key, values in metric.keyed_per_case().items():
                out[f'{prefix}{key}'] = np.asarray(values, dtype=np.float64).tolist()
    return out


def dump_test_cases(runner, per_case: Dict[str, List[float]]) -> Optional[str]:
    """Write ``per_case`` to ``<work_dir>/<timestamp>_test_cases.json`` (main process only;
    nothing when no metric has per-case values). NaN -> null: a case the metric left out."""
    if not per_case:
        return None
    path = osp.join(runner.work_dir, f'{runner.timestamp}_test_cases.json')
    if is_main_process():
        with open(path, 'w') as f:
            json.dump(to_jsonable(dict(per_case)), f, allow_nan=False)
    return path


@contextlib.contextmanager
def _gathered_eval(runner):
    """The batches and metrics of an evaluation run with full parameters (DeepSpeed ZeRO-3).

    Under FSDP evaluation is refused: the metrics are computed on rank 0 alone with the
    unwrapped model, whose per-block FSDP units would start collectives that the other ranks
    never join.
    """
    from torch.distributed.fsdp import FullyShardedDataParallel
    model = runner.model
    if isinstance(model, FullyShardedDataParallel):
        raise RuntimeError(
            'Validation / testing inside an FSDP run (configs/_base_/strategies/fsdp.py) is not '
            'supported: the retrieval and zero-shot metrics call the unwrapped model on rank 0 '
            'only. Train with --no-validate and evaluate the checkpoint (one file, full '
            'weights) with tools/test.py, which uses the standard Runner.')
    with gathered_params(model):
        yield


def _run_single(loop, stage: str) -> dict:
    """mmengine's ``ValLoop.run`` / ``TestLoop.run``, with the batches and the metric
    computation inside :func:`_gathered_eval` (full parameters under FSDP / ZeRO-3, where
    the metrics call the unwrapped model); the epoch hooks run outside it."""
    runner = loop.runner
    losses = getattr(loop, f'{stage}_loss')
    runner.call_hook(f'before_{stage}')
    runner.call_hook(f'before_{stage}_epoch')
    runner.model.eval()
    losses.clear()
    with _gathered_eval(runner):
        for idx, data_batch in enumerate(loop.dataloader):
            loop.run_iter(idx, data_batch)
        metrics = loop.evaluator.evaluate(len(loop.dataloader.dataset))
    if losses:
        metrics.update(_parse_losses(losses, stage))
    runner.call_hook(f'after_{stage}_epoch', metrics=metrics)
    runner.call_hook(f'after_{stage}')
    return metrics


@LOOPS.register_module()
class VLValLoop(ValLoop):
    """``ValLoop`` that binds the model to the metrics first (same arguments)."""

    def run(self) -> dict:
        bind_model_to_metrics(self.evaluator, self.runner.model)
        return _run_single(self, 'val')


@LOOPS.register_module()
class VLTestLoop(TestLoop):
    """``TestLoop`` that binds the model to the metrics and writes the results JSON.

    Args:
        dump_results: write ``<work_dir>/<timestamp>_test_results.json``.
        (others as ``mmengine.runner.TestLoop``)
    """

    def __init__(self, runner, dataloader, evaluator, fp16: bool = False,
                 dump_results: bool = True):
        super().__init__(runner, dataloader, evaluator, fp16=fp16)
        self.dump_results = dump_results
        self.results_file: Optional[str] = None

    def run(self) -> dict:
        bind_model_to_metrics(self.evaluator, self.runner.model)
        metrics = _run_single(self, 'test')
        if self.dump_results:
            self.results_file = dump_test_results(self.runner, metrics)
            dump_test_cases(self.runner, evaluator_per_case(self.evaluator))
        return metrics


class _MultiLoopMixin:
    """Builds and runs several (dataloader, evaluator) pairs."""

    _stage = 'test'

    def _init_multi(self, runner, dataloader, evaluator, dataloaders, evaluators,
                    extra_dataloaders, extra_evaluators, prefixes, fp16):
        if dataloaders is None:
            if dataloader is None:
                dataloaders = []
            elif isinstance(dataloader, (list, tuple)):
                dataloaders = list(dataloader)
                evaluators = evaluator if evaluators is None else evaluators
            else:
                dataloaders = [dataloader]
                evaluators = [evaluator] if evaluators is None else evaluators
        elif evaluators is None:
            raise ValueError(f'{type(self).__name__}: `evaluators` is required with '
                             '`dataloaders` (one evaluator per dataloader).')
        if isinstance(evaluators, (dict, Evaluator)):
            evaluators = [evaluators]
        evaluators = list(evaluators or [])
        dataloaders = list(dataloaders) + list(extra_dataloaders or [])
        evaluators = evaluators + list(extra_evaluators or [])
        if len(evaluators) != len(dataloaders):
            raise ValueError(f'{type(self).__name__}: {len(dataloaders)} dataloaders but '
                             f'{len(evaluators)} evaluators; give one evaluator (a metric '
                             'dict, a list of metric dicts or an Evaluator) per dataloader.')
        if not dataloaders:
            raise ValueError(f'{type(self).__name__}: no dataloader given')
        self._runner = runner
        self.dataloaders: List[DataLoader] = [self._build_dataloader(runner, d)
                                              for d in dataloaders]
        self.evaluators: List[Evaluator] = [
            e if isinstance(e, Evaluator) else runner.build_evaluator(e) for e in evaluators]
        self.prefixes = self._make_prefixes(prefixes)
        for dl, ev in zip(self.dataloaders, self.evaluators):
            if hasattr(dl.dataset, 'metainfo'):
                ev.dataset_meta = dl.dataset.metainfo
        self.dataloader = self.dataloaders[0]
        self.evaluator = self.evaluators[0]
        self.fp16 = fp16

    @staticmethod
    def _build_dataloader(runner, dataloader: Union[DataLoader, dict]) -> DataLoader:
        if isinstance(dataloader, dict):
            diff_rank_seed = runner._randomness_cfg.get('diff_rank_seed', False)
            return runner.build_dataloader(dataloader, seed=runner.seed,
                                           diff_rank_seed=diff_rank_seed)
        return dataloader

    def _make_prefixes(self, prefixes: Optional[Sequence[str]]) -> List[str]:
        if prefixes is None:
            names = [type(dl.dataset).__name__ for dl in self.dataloaders]
            prefixes = [n if names.count(n) == 1 else f'{n}_{i}' for i, n in enumerate(names)]
        prefixes = [str(p) for p in prefixes]
        if len(prefixes) != len(self.dataloaders):
            raise ValueError(f'{type(self).__name__}: {len(prefixes)} prefixes for '
                             f'{len(self.dataloaders)} dataloaders')
        if len(set(prefixes)) != len(prefixes):
            raise ValueError(f'{type(self).__name__}: prefixes must be unique, got {prefixes}')
        return prefixes

    def _run_all(self, losses_attr: str) -> Dict[str, Any]:
        model = self.runner.model
        all_metrics: Dict[str, Any] = OrderedDict()
        self.per_case: Dict[str, List[float]] = OrderedDict()
        for dl, ev, prefix in zip(self.dataloaders, self.evaluators, self.prefixes):
            bind_model_to_metrics(ev, model)
            self.dataloader, self.evaluator = dl, ev
            if hasattr(dl.dataset, 'metainfo'):
                self.runner.visualizer.dataset_meta = dl.dataset.metainfo
            getattr(self, losses_attr).clear()
            with _gathered_eval(self.runner):
                for idx, data_batch in enumerate(dl):
                    self.run_iter(idx, data_batch)
                metrics = ev.evaluate(len(dl.dataset))
            losses = getattr(self, losses_attr)
            if losses:
                metrics.update(_parse_losses(losses, self._stage))
            print_log(f'[{prefix}] ' + ', '.join(
                f'{k}: {v:.4f}' if isinstance(v, float) else f'{k}: {v}'
                for k, v in metrics.items()), logger='current')
            for k, v in metrics.items():
                all_metrics[f'{prefix}/{k}'] = v
            self.per_case.update(evaluator_per_case(ev, f'{prefix}/'))
        return all_metrics


@LOOPS.register_module()
class VLMultiTestLoop(_MultiLoopMixin, TestLoop):
    """Test on several datasets in one run.

    Config (either form)::

        test_dataloader = [dl_retrieval, dl_grounding]        # runner arguments
        test_evaluator = [[dict(type='RetrievalPrecisionAtK'), dict(type='ZeroShotAccuracy')],
                          dict(type='GroundingCNR')]          # one evaluator per dataloader
        test_cfg = dict(type='VLMultiTestLoop', prefixes=['mimic_5x200', 'ms_cxr'])

    or the runner's single ``test_dataloader`` / ``test_evaluator`` first, then more sets::

        test_cfg = dict(type='VLMultiTestLoop', extra_dataloaders=[dl_grounding],
                        extra_evaluators=[[dict(type='GroundingCNR')]],
                        prefixes=['retrieval', 'grounding'])

    or ``test_cfg = dict(type='VLMultiTestLoop', dataloaders=[...], evaluators=[...],
    prefixes=[...])`` (then the runner's ``test_dataloader`` / ``test_evaluator`` are ignored but
    must still be set, as mmengine requires the three together).

    Metric keys are ``<prefix>/<metric key>``; the union goes to the hooks, the log and
    ``<work_dir>/<timestamp>_test_results.json``.

    Args:
        runner, dataloader, evaluator: given by the runner.
        dataloaders: dataloader configs / objects (None: ``dataloader``, a list).
        evaluators: one evaluator per dataloader (metric dict, list of metric dicts or
            Evaluator); None: ``evaluator``.
        extra_dataloaders, extra_evaluators: sets appended after the ones above.
        prefixes: unique names of the sets (default: dataset class names).
        fp16: autocast.
        dump_results: write the results JSON.
    """

    _stage = 'test'

    def __init__(self, runner, dataloader=None, evaluator=None,
                 dataloaders: Optional[Sequence] = None, evaluators: Optional[Sequence] = None,
                 extra_dataloaders: Optional[Sequence] = None,
                 extra_evaluators: Optional[Sequence] = None,
                 prefixes: Optional[Sequence[str]] = None, fp16: bool = False,
                 dump_results: bool = True):
        self._init_multi(runner, dataloader, evaluator, dataloaders, evaluators,
                         extra_dataloaders, extra_evaluators, prefixes, fp16)
        self.test_loss = dict()
        self.dump_results = dump_results
        self.results_file: Optional[str] = None

    def run(self) -> dict:
        self.runner.call_hook('before_test')
        self.runner.call_hook('before_test_epoch')
        self.runner.model.eval()
        metrics = self._run_all('test_loss')
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        if self.dump_results:
            self.results_file = dump_test_results(self.runner, metrics)
            dump_test_cases(self.runner, self.per_case)
        return metrics


@LOOPS.register_module()
class VLMultiValLoop(_MultiLoopMixin, ValLoop):
    """Validation on several datasets (same arguments as :class:`VLMultiTestLoop`, without
    ``dump_results``); ``val_dataloader`` / ``val_evaluator`` / ``val_cfg`` as in the test
    loop."""

    _stage = 'val'

    def __init__(self, runner, dataloader=None, evaluator=None,
                 dataloaders: Optional[Sequence] = None, evaluators: Optional[Sequence] = None,
                 extra_dataloaders: Optional[Sequence] = None,
                 extra_evaluators: Optional[Sequence] = None,
                 prefixes: Optional[Sequence[str]] = None, fp16: bool = False):
        self._init_multi(runner, dataloader, evaluator, dataloaders, evaluators,
                         extra_dataloaders, extra_evaluators, prefixes, fp16)
        self.val_loss = dict()

    def run(self) -> dict:
        self.runner.call_hook('before_val')
        self.runner.call_hook('before_val_epoch')
        self.runner.model.eval()
        metrics = self._run_all('val_loss')
        self.runner.call_hook('after_val_epoch', metrics=metrics)
        self.runner.call_hook('after_val')
        return metrics
