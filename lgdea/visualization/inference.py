"""Models, evaluation sets and metric features for the figures (docs/visualization.md).

Every figure goes through the shared inference interface (docs/architecture.md, section 4)
and through the metric that scores it: images are packed by the method's own test pipeline,
encoded by ``model.test_step`` (``predict`` attaches ``image_feats``), collected by the
metric's ``process`` and then queried with the metric's own methods
(:meth:`GroundingCNR.original_maps`, :meth:`RetrievalPrecisionAtK.encode_candidates`, ...),
so a figure shows exactly what the numbers measure, for every method alike.
"""
import copy
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose

__all__ = ['load_config', 'init_model', 'eval_sets', 'find_eval_set', 'build_eval_dataset',
           'eval_pipeline', 'build_metric', 'image_results', 'report_results',
           'check_runs']

ConfigType = Union[str, Config]


def load_config(config: ConfigType, cfg_options: Optional[dict] = None) -> Config:
    """Read a config (path or :class:`Config`, copied) and register every lgdea module.

    ``custom_imports`` of project configs (``projects.gloria.gloria``, ...) are imported by
    :meth:`Config.fromfile`; the repository root must be importable (``tools/`` scripts put it
    on ``sys.path``).
    """
    from lgdea.utils import register_all_modules
    register_all_modules()
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        if not osp.isfile(config):
            raise FileNotFoundError(f'config file not found: "{config}"')
        cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def init_model(config: ConfigType, checkpoint: Optional[str] = None,
               device: Union[str, torch.device] = 'cpu', cfg_options: Optional[dict] = None,
               strict: bool = True):
    """Build the model of a config, load a checkpoint, move it to ``device``, eval mode.

    The image encoder's ``checkpoint`` (starting weights of training) is dropped: the trained
    weights come from ``checkpoint``, so a figure does not need the pretraining files.

    Args:
        config: config path or :class:`Config`.
        checkpoint: mmengine checkpoint (``state_dict`` inside) or a plain state dict; None
            keeps the initial weights.
        device: ``'cpu'`` (default), ``'cuda'``, ``'cuda:1'``, ...
        cfg_options: overrides merged into the config.
        strict: fail on missing / unexpected keys (a figure of a half-loaded model would
            mislead).

    Returns:
        The model (a :class:`lgdea.models.BaseVLPModel`) with ``model.cfg`` set.
    """
    from mmengine.runner import load_checkpoint

    from lgdea.registry import MODELS
    cfg = load_config(config, cfg_options)
    if cfg.get('model') is None:
        raise KeyError(f'{config} has no `model`.')
    image_cfg = cfg.model.get('image_encoder')
    if isinstance(image_cfg, dict):
        image_cfg.pop('checkpoint', None)  # the trained weights come from `checkpoint`
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        if not osp.isfile(osp.expanduser(checkpoint)) and '://' not in checkpoint:
            raise FileNotFoundError(f'checkpoint file not found: "{checkpoint}"')
        load_checkpoint(model, checkpoint, map_location='cpu', strict=strict)
    model.cfg = cfg
    model.to(torch.device(device))
    model.eval()
    return model


def _metric_list(evaluator) -> List[dict]:
    """Metric configs of an evaluator config (a metric dict, a list of them, or
    ``dict(type='Evaluator', metrics=...)``)."""
    if evaluator is None:
        return []
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator = evaluator['metrics']
    if isinstance(evaluator, dict):
        return [evaluator]
    return [m for m in evaluator if isinstance(m, dict)]


def eval_sets(cfg: Config) -> List[Tuple[str, dict, List[dict]]]:
    """``(prefix, dataloader cfg, metric cfgs)`` of every test set, as ``VLMultiTestLoop``
    (or the single-set test loops) would run them."""
    test_cfg = cfg.get('test_cfg') or {}
    loader, evaluator = cfg.get('test_dataloader'), cfg.get('test_evaluator')
    loaders, evaluators = test_cfg.get('dataloaders'), test_cfg.get('evaluators')
    if loaders is None:
        if loader is None:
            loaders, evaluators = [], []
        elif isinstance(loader, (list, tuple)):
            loaders, evaluators = list(loader), list(evaluator or [])
        else:
            loaders, evaluators = [loader], [evaluator]
    loaders = list(loaders) + list(test_cfg.get('extra_dataloaders') or [])
    evaluators = list(evaluators or []) + list(test_cfg.get('extra_evaluators') or [])
    evaluators += [None] * (len(loaders) - len(evaluators))
    prefixes = list(test_cfg.get('prefixes') or [])
    prefixes += [f'set{i}' for i in range(len(prefixes), len(loaders))]
    return [(str(p), dl, _metric_list(ev)) for p, dl, ev in zip(prefixes, loaders, evaluators)]


def _type_name(metric_cfg: dict) -> str:
    t = metric_cfg.get('type', '')
    return (t if isinstance(t, str) else getattr(t, '__name__', str(t))).split('.')[-1]


def find_eval_set(cfg: Config, metric_type: str,
                  name: Optional[str] = None) -> Tuple[Optional[dict], dict]:
    """The test set of a figure and the config of its metric.

    The set is the first one whose prefix contains ``name`` (e.g. ``'grounding'``), else the
    first one evaluated by a ``metric_type`` metric. The metric config is that set's
    ``metric_type`` entry (so e.g. ``smooth_sigma`` of ``GroundingCNR`` is honoured), else
    ``dict(type=metric_type)``.

    Returns:
        ``(dataloader cfg or None, metric cfg)``.
    """
    sets = eval_sets(cfg)
    chosen = None
    if name is not None:
        chosen = next((s for s in sets if name.lower() in s[0].lower()), None)
    if chosen is None:
        chosen = next((s for s in sets if any(_type_name(m) == metric_type for m in s[2])),
                      None)
    if chosen is None:
        return None, dict(type=metric_type)
    metric = next((m for m in chosen[2] if _type_name(m) == metric_type), None)
    metric = copy.deepcopy(dict(metric)) if metric is not None else dict(type=metric_type)
    return chosen[1], metric


def eval_pipeline(cfg: Config, metric_type: str, name: Optional[str] = None,
                     fallback: Optional[Sequence[dict]] = None) -> List[dict]:
    """The image pipeline a method is evaluated with: that of its ``metric_type`` / ``name``
    test set, else of ``test_dataloader``, else ``fallback``."""
    loader, _ = find_eval_set(cfg, metric_type, name)
    for candidate in (loader, cfg.get('test_dataloader')):
        if isinstance(candidate, dict):
            pipeline = (candidate.get('dataset') or {}).get('pipeline')
            if pipeline:
                return copy.deepcopy(list(pipeline))
    if fallback:
        return copy.deepcopy(list(fallback))
    raise ValueError(f'the config {cfg.filename} has no test pipeline (test_dataloader.dataset'
                     '.pipeline); the figures pack images with the test pipeline.')


def build_eval_dataset(cfg: Config, metric_type: str, name: Optional[str] = None,
                       dataset_cfg: Optional[dict] = None):
    """Build the dataset a figure draws its records from.

    Args:
        cfg: the config of a run.
        metric_type / name: see :func:`find_eval_set`.
        dataset_cfg: an explicit dataset config (its pipeline, if any, is kept).

    Returns:
        The dataset (records via ``get_data_info``; ``metainfo['classes']``).
    """
    from lgdea.registry import DATASETS
    if dataset_cfg is None:
        loader, _ = find_eval_set(cfg, metric_type, name)
        if loader is None or loader.get('dataset') is None:
            raise ValueError(f'the config {cfg.filename} has no test set evaluated by '
                             f'{metric_type}{f" or named {name!r}" if name else ""}; pass '
                             'dataset_cfg explicitly.')
        dataset_cfg = loader['dataset']
    dataset_cfg = copy.deepcopy(dict(dataset_cfg))
    dataset_cfg.setdefault('pipeline', [])
    return DATASETS.build(ConfigDict(dataset_cfg))


def build_metric(metric_cfg: dict, model, dataset_meta: Optional[dict] = None):
    """Build a metric, give it the dataset meta and bind the model (as the VL loops do)."""
    from lgdea.registry import METRICS
    metric = METRICS.build(ConfigDict(copy.deepcopy(dict(metric_cfg))))
    metric.dataset_meta = dict(dataset_meta or {})
    metric.bind_model(model)
    return metric


def _pack(pipeline: Compose, record: dict, where: str) -> dict:
    item = pipeline(copy.deepcopy(record))
    if item is None:
        raise RuntimeError(f'the test pipeline returned None for {where}')
    return item


@torch.no_grad()
def image_results(model, metric, records: Sequence[dict], pipeline: Sequence[dict],
                  batch_size: int = 16) -> List[dict]:
    """Encode the images of ``records`` and collect them into ``metric`` as the test loop does.

    ``pipeline`` (the method's test pipeline, ending with ``PackVLInputs``) -> ``vl_collate``
    -> ``model.test_step`` (data preprocessor + ``predict``: per-image ``image_feats``) ->
    ``metric.process``.

    Returns:
        ``metric.results`` of these records, in order (``image_feats``: per-image CPU tensors,
        e.g. ``embed`` [D], ``patch_embed`` [P, D], plus the metric's ``record_keys``).
    """
    from lgdea.datasets.collate import vl_collate
    compose = Compose(list(pipeline))
    metric.results.clear()
    model.eval()
    for start in range(0, len(records), batch_size):
        items = [_pack(compose, r, r.get('img_path')) for r in records[start:start + batch_size]]
        batch = vl_collate(items)
        if len(batch['data_samples']) != len(items):
            raise ValueError('every record of an image figure needs an image (pipeline with '
                             'LoadCXRImage; kind pair or image)')
        metric.process(batch, model.test_step(batch))
    return list(metric.results)


def report_results(records: Sequence[dict], pipeline: Sequence[dict],
                   keys: Sequence[str]) -> List[dict]:
    """The report side of ``records``: each packed as a ``kind='report'`` item by the test
    pipeline (images are not read; ``EvidenceTokenizer`` attaches the cached evidence), as
    dicts of the ``keys`` fields (e.g. ``RetrievalPrecisionAtK.record_keys``). Records
    without report text are skipped."""
    compose = Compose(list(pipeline))
    out = []
    for r in records:
        text = r.get('report', r.get('text'))
        if text is None or not str(text).strip():
            continue
        sample = _pack(compose, dict(r, kind='report'), r.get('study_id'))['data_samples']
        out.append({k: sample.get(k) for k in keys})
    return out


def check_runs(runs: Sequence[dict]) -> List[Dict[str, str]]:
    """Validate ``runs = [dict(name, config, checkpoint), ...]`` (non-empty, unique names)."""
    runs = [dict(r) for r in runs]
    if not runs:
        raise ValueError('runs is empty; give [dict(name=..., config=..., checkpoint=...)]')
    for i, r in enumerate(runs):
        missing = [k for k in ('name', 'config', 'checkpoint') if not r.get(k)]
        if missing:
            raise KeyError(f'run {i} lacks {missing}: {r}')
    names = [r['name'] for r in runs]
    if len(set(names)) != len(names):
        raise ValueError(f'run names must be unique, got {names}')
    return runs
