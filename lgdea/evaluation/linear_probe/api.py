"""Run the linear-probe evaluation of a model from a config's ``linear_probe`` section.

One implementation for ``tools/test.py`` (after the test loop, merged into
``<work_dir>/<timestamp>_test_results.json``) and ``tools/linear_probe.py`` (its own JSON).
The section (docs/linear_probe.md)::

    linear_probe = dict(
        tasks=[dict(name='rsna', ...), ...],     # lgdea/evaluation/linear_probe/tasks.py
        pipeline=[...],                          # image pipeline (no EvidenceTokenizer)
        mode='linear',                           # or 'finetune'
        epochs=100, lr=1e-3, weight_decays=[0.0, 1e-4, 1e-2], batch_size=256,
        standardize=True, val_interval=1, seed=0,
        feature_batch_size=128, num_workers=0,
        save_features=True, feature_cache_dir=None,   # default <work_dir>/linear_probe_features
        finetune=dict(epochs=10, lr=1e-3, weight_decay=1e-4, encoder_lr_mult=0.1,
                      batch_size=32, max_iters=None, train_pipeline=None))

Result keys: ``<task>/linear_probe@<pct>/<metric>`` (``<task>/finetune@<pct>/...`` in
finetune mode); metrics in :mod:`.metrics`, plus ``num_train``, ``num_test``,
``selected_epoch``, ``selected_weight_decay`` and ``val_<primary metric>``.
"""
import copy
import json
import logging
import os
import os.path as osp
import time
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from ..metrics.base import model_device
from .features import build_feature_table, feature_cache_key, model_fingerprint
from .metrics import classification_metrics, primary_metric
from .tasks import (ProbeTask, SubsetData, _plain, check_train_labels, load_subset, parse_task,
                    pct_label)
from .trainer import finetune_classifier, finetune_scores, predict_scores, train_linear_probe

__all__ = ['LINEAR_PROBE_DEFAULTS', 'resolve_linear_probe_cfg', 'run_linear_probe',
           'run_linear_probe_with_runner', 'merge_results_json', 'MODE_KEYS']

#: Defaults of the ``linear_probe`` section (every key may be overridden in the config).
LINEAR_PROBE_DEFAULTS = dict(
    mode='linear',
    pipeline=None,
    tasks=[],
    epochs=100,
    lr=1e-3,
    weight_decays=[0.0],
    batch_size=256,
    standardize=True,
    val_interval=1,
    optimizer=None,
    seed=0,
    feature_batch_size=128,
    num_workers=0,
    save_features=True,
    feature_cache_dir=None,
    finetune=dict(epochs=10, lr=1e-3, weight_decay=1e-4, encoder_lr_mult=0.1, batch_size=32,
                  max_iters=None, train_pipeline=None),
)
#: Result-key word of each mode.
MODE_KEYS = dict(linear='linear_probe', finetune='finetune')


def resolve_linear_probe_cfg(section: dict, tasks: Optional[Sequence[str]] = None,
                             mode: Optional[str] = None) -> dict:
    """The section merged over :data:`LINEAR_PROBE_DEFAULTS`, checked, with its tasks parsed
    (``cfg['tasks']`` -> list of :class:`ProbeTask`) and optionally filtered by name."""
    section = _plain(section or {})
    unknown = set(section) - set(LINEAR_PROBE_DEFAULTS) - {'weight_decay'}
    if unknown:
        raise ValueError(f'linear_probe: unknown keys {sorted(unknown)}; allowed: '
                         f'{sorted(LINEAR_PROBE_DEFAULTS)}.')
    cfg = _plain(LINEAR_PROBE_DEFAULTS)
    finetune = dict(cfg['finetune'], **(section.pop('finetune', None) or {}))
    if 'weight_decay' in section:  # a single value is accepted too
        section['weight_decays'] = [section.pop('weight_decay')]
    cfg.update(section)
    cfg['finetune'] = finetune
    if mode is not None:
        cfg['mode'] = mode
    if cfg['mode'] not in MODE_KEYS:
        raise ValueError(f"linear_probe: mode must be 'linear' or 'finetune', got {cfg['mode']!r}.")
    if isinstance(cfg['weight_decays'], (int, float)):
        cfg['weight_decays'] = [cfg['weight_decays']]
    if not cfg['tasks']:
        raise ValueError('linear_probe: `tasks` is empty; list at least one classification task '
                         '(docs/linear_probe.md).')
    parsed = [parse_task(t, cfg['pipeline']) for t in cfg['tasks']]
    names = [t.name for t in parsed]
    if len(set(names)) != len(names):
        raise ValueError(f'linear_probe: task names must be unique, got {names}.')
    if tasks:
        wanted = list(tasks)
        missing = [t for t in wanted if t not in names]
        if missing:
            raise ValueError(f'linear_probe: unknown task(s) {missing}; the config has {names}.')
        parsed = [t for t in parsed if t.name in wanted]
    cfg['tasks'] = parsed
    return cfg


def _check_same_classes(task: ProbeTask, subsets: Dict[str, SubsetData]) -> List[str]:
    classes = None
    for name, data in subsets.items():
        if classes is None:
            classes = data.classes
        elif data.classes != classes:
            raise ValueError(f'linear_probe task {task.name!r}: the {name} subset has classes '
                             f'{data.classes} but another subset has {classes}; all subsets '
                             'must share the label space.')
    return classes


def _log_line(prefix: str, metrics: Dict[str, float]) -> str:
    shown = {k: v for k, v in metrics.items() if '/auroc/' not in k}
    return ', '.join(f'{k[len(prefix):]}: {v:.4f}' if isinstance(v, float) else
                     f'{k[len(prefix):]}: {v}' for k, v in shown.items())


def _run_task(model, task: ProbeTask, cfg: dict, *, cache_dir: Optional[str],
              fingerprint: str, model_cfg, show_progress: bool) -> 'OrderedDict[str, float]':
    t0 = time.time()
    mode = cfg['mode']
    test = load_subset(task.test, task, 'test')
    val = load_subset(task.val, task, 'val') if task.val is not None else None
    trains = {p: load_subset(c, task, f'train ({pct_label(p)} %)') for p, c in task.train.items()}
    subsets = dict(test=test, **({'val': val} if val is not None else {}),
                   **{f'train@{pct_label(p)}': d for p, d in trains.items()})
    classes = _check_same_classes(task, subsets)
    empty_labels = {p: check_train_labels(task, p, d) for p, d in trains.items()}
    device = model_device(model)
    out: 'OrderedDict[str, float]' = OrderedDict()
    primary = primary_metric(task.multilabel)
    if mode == 'linear':
        cache_file = None
        if cache_dir:
            key = feature_cache_key(fingerprint, model_cfg, task.pipeline,
                                    [task.test, task.val] + [task.train[p] for p in
                                                             sorted(task.train)])
            cache_file = osp.join(cache_dir, f'{task.name}_{key}.npz')
        table, computed = build_feature_table(
            model, subsets, cache_file, cfg['feature_batch_size'], cfg['num_workers'],
            desc=f'linear probe features [{task.name}]', show_progress=show_progress)
        print_log(f'[linear probe] {task.name}: {len(table)} image features '
                  f'({computed} computed, {len(table) - computed} from '
                  f'{cache_file or "memory"}) in {time.time() - t0:.1f}s', logger='current')
        test_x = table.take(test.img_paths)
        val_x = table.take(val.img_paths) if val is not None else None
    ft = cfg['finetune']
    for p in task.fractions:
        t1 = time.time()
        train = trains[p]
        prefix = f'{task.name}/{MODE_KEYS[mode]}@{pct_label(p)}/'
        log_prefix = f'[{MODE_KEYS[mode].replace("_", " ")}] {task.name} @{pct_label(p)}%: '
        if empty_labels[p]:
            print_log(f'{log_prefix}label(s) {empty_labels[p]} have no positive training '
                      'example (allowed for this task); their AUROC is still scored on test',
                      logger='current', level=logging.WARNING)
        if mode == 'linear':
            head, sel = train_linear_probe(
                table.take(train.img_paths), train.targets, val_x,
                val.targets if val is not None else None, num_classes=len(classes),
                multilabel=task.multilabel, epochs=cfg['epochs'], lr=cfg['lr'],
                weight_decays=cfg['weight_decays'], batch_size=cfg['batch_size'],
                standardize=cfg['standardize'], val_interval=cfg['val_interval'],
                optimizer=cfg['optimizer'], seed=cfg['seed'], device=device,
                log_prefix=log_prefix)
            scores = predict_scores(head, test_x)
            extra = {}
        else:
            train_ds = train
            if ft.get('train_pipeline'):
                train_cfg = dict(task.train[p], pipeline=copy.deepcopy(ft['train_pipeline']))
                train_ds = load_subset(train_cfg, task, f'train ({pct_label(p)} %)')
            items = [(train_ds.dataset, i) for i in range(len(train_ds.img_paths))]
            val_items = ([(val.dataset, i) for i in range(len(val.img_paths))]
                         if val is not None else None)
            clf, sel, extra = finetune_classifier(
                model, items, train_ds.targets, val_items,
                val.targets if val is not None else None, num_classes=len(classes),
                multilabel=task.multilabel, epochs=ft['epochs'], lr=ft['lr'],
                weight_decay=ft['weight_decay'], encoder_lr_mult=ft['encoder_lr_mult'],
                batch_size=ft['batch_size'], max_iters=ft['max_iters'],
                num_workers=cfg['num_workers'], optimizer=cfg['optimizer'], seed=cfg['seed'],
                log_prefix=log_prefix)
            scores = finetune_scores(clf, [(test.dataset, i) for i in range(len(test.img_paths))],
                                     ft['batch_size'], cfg['num_workers'])
            del clf
        metrics = classification_metrics(scores, test.targets, task.multilabel, classes)
        row = OrderedDict((prefix + k, v) for k, v in metrics.items())
        row[prefix + 'num_train'] = len(train.img_paths)
        row[prefix + 'num_test'] = len(test.img_paths)
        row[prefix + 'selected_epoch'] = sel.epoch
        row[prefix + 'selected_weight_decay'] = sel.weight_decay
        if val is not None:
            row[prefix + f'val_{primary}'] = sel.val_score
        if task.multilabel:
            row[prefix + 'train_labels_without_positives'] = len(empty_labels[p])
        for k, v in extra.items():
            row[prefix + k] = v
        print_log(log_prefix + _log_line(prefix, row) + f' ({time.time() - t1:.1f}s)',
                  logger='current')
        out.update(row)
    return out


def run_linear_probe(model, linear_probe: dict, *, work_dir: Optional[str] = None,
                     checkpoint: Optional[str] = None, model_cfg=None,
                     tasks: Optional[Sequence[str]] = None, mode: Optional[str] = None,
                     show_progress: bool = True) -> 'OrderedDict[str, float]':
    """Linear probe (or fine-tuning) of ``model`` on every task of the section.

    Args:
        model: a :class:`lgdea.models.BaseVLPModel` (a DDP wrapper is unwrapped); it is
            not changed (finetune mode trains a copy).
        linear_probe: the config section (see the module docstring).
        work_dir: where the feature cache goes by default
            (``<work_dir>/linear_probe_features``).
        checkpoint: the checkpoint the weights came from (feature-cache key; without it the
            weights are hashed).
        model_cfg: the model config (part of the cache key).
        tasks: names of the tasks to run (default: all).
        mode: overrides the section's ``mode`` (``'linear'`` / ``'finetune'``).
        show_progress: tqdm bars while extracting features.

    Returns:
        Ordered ``{'<task>/<linear_probe|finetune>@<pct>/<metric>': value}``.
    """
    if is_model_wrapper(model):
        model = model.module
    cfg = resolve_linear_probe_cfg(linear_probe, tasks, mode)
    cache_dir = None
    if cfg['save_features'] and cfg['mode'] == 'linear':
        cache_dir = cfg['feature_cache_dir'] or (
            osp.join(work_dir, 'linear_probe_features') if work_dir else None)
    fingerprint = model_fingerprint(model, checkpoint) if cache_dir else ''
    metrics: 'OrderedDict[str, float]' = OrderedDict()
    t0 = time.time()
    for task in cfg['tasks']:
        metrics.update(_run_task(model, task, cfg, cache_dir=cache_dir, fingerprint=fingerprint,
                                 model_cfg=_plain(model_cfg) if model_cfg is not None else None,
                                 show_progress=show_progress))
    print_log(f'[linear probe] {len(cfg["tasks"])} task(s), mode {cfg["mode"]}: '
              f'{time.time() - t0:.1f}s', logger='current')
    return metrics


def merge_results_json(path: str, metrics: Dict[str, float]) -> str:
    """Add ``metrics`` to the results JSON at ``path`` (created when absent; NaN -> null)."""
    from lgdea.engine.runner.vl_loops import to_jsonable
    existing = {}
    if osp.isfile(path):
        with open(path) as f:
            existing = json.load(f)
    existing.update(to_jsonable(dict(metrics)))
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(existing, f, indent=2, allow_nan=False)
    os.replace(tmp, path)
    return path


def run_linear_probe_with_runner(runner, linear_probe: dict, checkpoint: Optional[str] = None,
                                 results_file: Optional[str] = None,
                                 tasks: Optional[Sequence[str]] = None,
                                 mode: Optional[str] = None) -> 'OrderedDict[str, float]':
    """:func:`run_linear_probe` on a runner's (loaded) model, in the main process only, and
    merge the metrics into ``results_file``.

    Other ranks of a distributed run return an empty dict (the probe is cheap next to
    pretraining and runs on one process).
    """
    if not is_main_process():
        return OrderedDict()
    metrics = run_linear_probe(runner.model, linear_probe, work_dir=runner.work_dir,
                               checkpoint=checkpoint, model_cfg=runner.cfg.get('model'),
                               tasks=tasks, mode=mode)
    if results_file:
        merge_results_json(results_file, metrics)
        print_log(f'linear probe results written to {results_file}', logger='current')
    return metrics
