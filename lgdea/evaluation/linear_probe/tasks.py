"""Linear-probe tasks: which datasets make the train / val / test subsets of each fraction.

A task (one entry of ``linear_probe['tasks']``) is written in one of two forms.

``dataset`` form, for datasets with ``subset`` / ``train_fraction`` arguments
(``SyntheticCXRDataset`` classification splits)::

    dict(name='synthetic_cls_binary', dataset=dict(synthetic, split='cls_binary'),
         fractions=[1, 10, 100], multilabel=False)

gives ``train = dict(dataset, subset='train', train_fraction=pct / 100)``,
``val = dict(dataset, subset='val')`` (``use_val=False`` drops it) and
``test = dict(dataset, subset='test')``.

Explicit form, for the real datasets and their ID lists (``tools/build_eval_splits.py``)::

    dict(name='rsna', multilabel=False, fractions=[1, 10, 100],
         train=dict(rsna, split_file=splits + '/rsna_train.csv'),
         val=dict(rsna, split_file=splits + '/rsna_val.csv'),        # optional
         test=dict(rsna, split_file=splits + '/rsna_test.csv'),
         train_fraction_override=dict(split_file=splits + '/rsna_train_{pct}pct.csv'))

At 100 % ``train`` is used as is; at another fraction ``train_fraction_override`` is merged
into it, each string formatted with ``pct`` (``1``, ``10``, ``0p5`` for 0.5: the file names
of ``tools/build_eval_splits.py``).

Other task keys: ``multilabel`` (bool, default False), ``pipeline`` (overrides the section's),
``allow_labels_without_positives`` (multi-label only: a label without a positive training
example is then a warning, not an error; e.g. NIH's Hernia at 1 %).
"""
import copy
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

__all__ = ['ProbeTask', 'SubsetData', 'parse_task', 'pct_label', 'pct_file_name',
           'load_subset', 'check_train_labels']


def pct_label(pct: float) -> str:
    """Fraction in the result keys: ``1``, ``10``, ``100``, ``0.5``."""
    pct = float(pct)
    return str(int(pct)) if pct.is_integer() else f'{pct:g}'


def pct_file_name(pct: float) -> str:
    """Fraction in file names (as ``tools/build_eval_splits.py``): ``1``, ``10``, ``0p5``."""
    return pct_label(pct).replace('.', 'p')


def _format_strings(obj, **values):
    if isinstance(obj, str):
        return obj.format(**values) if '{' in obj else obj
    if isinstance(obj, dict):
        return type(obj)((k, _format_strings(v, **values)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_format_strings(v, **values) for v in obj)
    return obj


def _plain(obj):
    """ConfigDict / tuple trees -> plain dicts and lists (deep copy)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return copy.deepcopy(obj)


@dataclass
class ProbeTask:
    """One classification task of the probe.

    Attributes:
        name: prefix of the result keys.
        multilabel: BCE / macro AUROC (True) or cross-entropy / accuracy (False).
        fractions: training fractions in % (each in (0, 100]).
        train: fraction -> dataset config of the training subset.
        val: dataset config of the validation subset (None: no model selection).
        test: dataset config of the test subset.
        allow_labels_without_positives: see the module docstring.
    """
    name: str
    multilabel: bool
    fractions: List[float]
    train: Dict[float, dict]
    val: Optional[dict]
    test: dict
    allow_labels_without_positives: bool = False
    pipeline: Optional[list] = field(default=None)


def parse_task(task: dict, pipeline: Optional[Sequence] = None) -> ProbeTask:
    """Check one ``linear_probe['tasks']`` entry and resolve its subsets.

    Args:
        task: the entry (see the module docstring).
        pipeline: the section's ``pipeline``, used when the task has none; it replaces the
            ``pipeline`` of every subset's dataset config.
    """
    task = _plain(task)
    name = task.pop('name', None)
    if not name or not isinstance(name, str) or '/' in name:
        raise ValueError(f'linear_probe task {task}: `name` must be a non-empty string without '
                         '"/" (it prefixes the result keys).')
    where = f'linear_probe task {name!r}'
    multilabel = bool(task.pop('multilabel', False))
    fractions = task.pop('fractions', [100])
    if isinstance(fractions, (int, float)):
        fractions = [fractions]
    fractions = [float(p) for p in fractions]
    if not fractions or any(not 0 < p <= 100 for p in fractions):
        raise ValueError(f'{where}: fractions must be percentages in (0, 100], got {fractions}.')
    if len(set(fractions)) != len(fractions):
        raise ValueError(f'{where}: repeated fraction in {fractions}.')
    pipe = task.pop('pipeline', None)
    pipe = _plain(pipe if pipe is not None else pipeline)
    if not pipe:
        raise ValueError(f'{where}: no image pipeline; set linear_probe.pipeline (e.g. the test '
                         'pipeline without EvidenceTokenizer) or the task\'s `pipeline`.')
    allow = bool(task.pop('allow_labels_without_positives', False))
    use_val = bool(task.pop('use_val', True))

    def with_pipe(cfg):
        cfg = dict(cfg)
        cfg['pipeline'] = copy.deepcopy(pipe)
        return cfg

    if 'dataset' in task:
        base = task.pop('dataset')
        for key in ('train', 'val', 'test', 'train_fraction_override'):
            if key in task:
                raise ValueError(f'{where}: give either `dataset` (subset / train_fraction form) '
                                 f'or train / val / test, not both (found {key!r}).')
        if not isinstance(base, dict) or 'type' not in base:
            raise ValueError(f'{where}: `dataset` must be a dataset config with a type.')
        train = {p: with_pipe(dict(base, subset='train', train_fraction=p / 100.0))
                 for p in fractions}
        val = with_pipe(dict(base, subset='val')) if use_val else None
        test = with_pipe(dict(base, subset='test'))
    else:
        if 'train' not in task or 'test' not in task:
            raise ValueError(f'{where}: needs `dataset` (subset / train_fraction form) or both '
                             '`train` and `test` dataset configs (see docs/linear_probe.md).')
        base_train = task.pop('train')
        override = task.pop('train_fraction_override', None)
        val_cfg = task.pop('val', None)
        test_cfg = task.pop('test')
        train = {}
        for p in fractions:
            if p == 100:
                train[p] = with_pipe(base_train)
            elif override is None:
                raise ValueError(f'{where}: fraction {pct_label(p)} % needs '
                                 '`train_fraction_override` (e.g. dict(split_file=".../'
                                 'rsna_train_{pct}pct.csv")).')
            else:
                train[p] = with_pipe(dict(base_train, **_format_strings(
                    override, pct=pct_file_name(p))))
        val = with_pipe(val_cfg) if (val_cfg is not None and use_val) else None
        test = with_pipe(test_cfg)
    if task:
        raise ValueError(f'{where}: unknown keys {sorted(task)}; allowed: name, multilabel, '
                         'fractions, dataset | train / val / test / train_fraction_override, '
                         'pipeline, use_val, allow_labels_without_positives.')
    return ProbeTask(name=name, multilabel=multilabel, fractions=fractions, train=train,
                     val=val, test=test, allow_labels_without_positives=allow, pipeline=pipe)


@dataclass
class SubsetData:
    """The records of one subset that the probe needs.

    Attributes:
        dataset: the built dataset (with the probe pipeline).
        img_paths: [N] image paths (the feature-cache keys).
        targets: [N] int64 class indices, or [N, K] float32 multi-hot (NaN = unknown).
        classes: class / label names.
    """
    dataset: object
    img_paths: List[str]
    targets: np.ndarray
    classes: List[str]


def load_subset(cfg: dict, task: ProbeTask, subset: str) -> SubsetData:
    """Build one subset's dataset and read its labels, with clear errors.

    Raises:
        ValueError: the subset is empty, a record has no image, or no label of the kind the
            task needs (``gt_label`` for single-label, ``gt_score`` for multi-label).
    """
    from lgdea.registry import DATASETS
    where = f'linear_probe task {task.name!r}, {subset} subset'
    dataset = DATASETS.build(copy.deepcopy(cfg))
    n = len(dataset)
    if n == 0:
        raise ValueError(f'{where} ({cfg.get("type")}) is empty; check its split / split_file '
                         'and data_root.')
    classes = [str(c) for c in (dataset.metainfo.get('classes') or ())]
    img_paths, targets = [], []
    key = 'gt_score' if task.multilabel else 'gt_label'
    for i in range(n):
        info = dataset.get_data_info(i)
        path = info.get('img_path')
        if not path:
            raise ValueError(f'{where}: record {i} has no img_path; the probe needs images.')
        if info.get(key) is None:
            other = 'gt_label' if task.multilabel else 'gt_score'
            hint = (f' It has `{other}`: set multilabel={not task.multilabel} for this task.'
                    if info.get(other) is not None else '')
            raise ValueError(f'{where} ({type(dataset).__name__}): record {i} ({path}) has no '
                             f'`{key}`, which a {"multi" if task.multilabel else "single"}-label '
                             f'probe needs; this dataset carries no such labels.{hint}')
        img_paths.append(str(path))
        targets.append(info[key])
    if task.multilabel:
        arr = np.stack([np.asarray(t, dtype=np.float32).reshape(-1) for t in targets])
        if classes and arr.shape[1] != len(classes):
            raise ValueError(f'{where}: gt_score has {arr.shape[1]} labels but the dataset has '
                             f'{len(classes)} classes {classes}.')
        if not classes:
            classes = [f'label_{k}' for k in range(arr.shape[1])]
    else:
        arr = np.asarray([int(t) for t in targets], dtype=np.int64)
        if not classes:
            classes = [f'class_{k}' for k in range(int(arr.max()) + 1)]
        bad = arr[(arr < 0) | (arr >= len(classes))]
        if bad.size:
            raise ValueError(f'{where}: gt_label {int(bad[0])} is outside the {len(classes)} '
                             f'classes {classes}.')
    return SubsetData(dataset=dataset, img_paths=img_paths, targets=arr, classes=classes)


def check_train_labels(task: ProbeTask, pct: float, data: SubsetData) -> List[str]:
    """Every class (single-label) must have a training sample at this fraction, and every
    label (multi-label) a positive one unless ``allow_labels_without_positives``.

    Returns:
        Names of the labels without a positive training example (multi-label, allowed).

    Raises:
        ValueError: naming the task, the fraction and the classes left without samples.
    """
    where = f'linear_probe task {task.name!r} at {pct_label(pct)} % of the training labels'
    if task.multilabel:
        positives = np.nansum(data.targets > 0.5, axis=0)
        empty = [c for c, n in zip(data.classes, positives) if n == 0]
        if empty and not task.allow_labels_without_positives:
            raise ValueError(f'{where}: label(s) {empty} have no positive training example '
                             f'({len(data.targets)} training images). Use a larger fraction or '
                             'set allow_labels_without_positives=True for this task.')
        return empty
    counts = np.bincount(data.targets, minlength=len(data.classes))
    empty = [c for c, n in zip(data.classes, counts) if n == 0]
    if empty:
        raise ValueError(f'{where}: class(es) {empty} have no training sample ({len(data.targets)}'
                         f' training images; counts {dict(zip(data.classes, counts.tolist()))}). '
                         'Use a larger fraction or a stratified split file.')
    return []
