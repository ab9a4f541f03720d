"""Protocol cards: how each benchmark number was produced, read from the run's config and the
files the run left behind (docs/benchmark.md, "Protocol card").

A card is a dict ``{field key: value}``, one entry per :data:`PROTOCOL_FIELDS`. A value is
plain JSON data taken from the real config / artefacts, or ``{'unknown': reason}`` when the
field cannot be determined (never a guess). Two halves:

- at run time :class:`~lgdea.benchmark.runs.RunExecutor` records what only the running
  machine knows -- :func:`environment_facts` (CPU, GPUs, torch, world size) and
  :func:`code_version` (``git rev-parse HEAD`` and a dirty flag) -- in the run's
  ``benchmark_run.json``, per step (``training`` / ``evaluation``);
- at collect time :func:`run_card` reads the run's merged config (with its ``--cfg-options``)
  and work dir: prompts and aggregation of every ``ZeroShotAccuracy`` evaluator, z-scoring,
  report sections, image resolution and geometric transforms, pairing ratio and the sha256 of
  the split in ``pairing_split.json`` (:func:`pairing_split_identity`), the evaluation split files' hashes, seed, checkpoint and model
  selection rule, commit, wall time and hardware.

:func:`table_card` merges the cards of the runs behind one table into the fields they share
and, per run, the fields in which they differ; :func:`format_card_markdown` renders that
under a table, :func:`protocol_differences` lists the differences between two results files.
"""
import hashlib
import inspect
import json
import os
import os.path as osp
import platform
import shutil
import subprocess
from typing import Dict, List, Optional, Sequence, Tuple

from .runs import load_config, read_run_info
from .spec import ROOT

__all__ = ['PROTOCOL_FIELDS', 'PAIRING_SPLIT_FILE', 'unknown', 'is_unknown', 'file_sha256',
           'pairing_split_identity',
           'code_version', 'environment_facts', 'run_card', 'table_card', 'format_value',
           'format_card_markdown', 'summarize_field', 'protocol_differences', 'table_run_ids',
           'cards_of']

#: ``(key, label)`` of every card field, in the order the cards list them.
PROTOCOL_FIELDS: Tuple[Tuple[str, str], ...] = (
    ('zero_shot_prompts', 'zero-shot prompts'),
    ('zero_shot_aggregation', 'zero-shot prompt aggregation'),
    ('zero_shot_zscore', 'zero-shot z-scoring'),
    ('report_section', 'report section'),
    ('image_resolution', 'image resolution'),
    ('test_geometry', 'test geometry'),
    ('pairing_ratio', 'pairing ratio'),
    ('pairing_split', 'pairing split'),
    ('eval_splits', 'evaluation splits'),
    ('seed', 'seed'),
    ('checkpoint', 'checkpoint'),
    ('model_selection', 'model selection'),
    ('code_commit', 'code commit'),
    ('wall_time', 'wall time'),
    ('hardware', 'hardware'),
)
_LABELS = dict(PROTOCOL_FIELDS)
#: Written by ``PairingSplitHook`` into a run's work dir before training.
PAIRING_SPLIT_FILE = 'pairing_split.json'
#: Characters of a sha256 shown in markdown (the JSON keeps all 64).
_SHORT_HASH = 12


def unknown(reason: str) -> dict:
    """The value of a field that cannot be determined, with the reason."""
    return {'unknown': str(reason)}


def is_unknown(value) -> bool:
    """Whether ``value`` is an :func:`unknown` marker."""
    return isinstance(value, dict) and set(value) == {'unknown'}


def file_sha256(path: str) -> str:
    """sha256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _json_sha256(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _resolve(path: str) -> str:
    """Config paths are relative to the directory the train / test processes run in."""
    return path if osp.isabs(path) else osp.join(ROOT, path)


# --------------------------------------------------------------------- recorded at run time
def code_version(root: str = ROOT) -> dict:
    """``{'commit': sha, 'dirty': bool}`` of the checkout at ``root`` (dirty: tracked files
    differ from HEAD), or :func:`unknown` when git is missing or ``root`` is no checkout."""
    if shutil.which('git') is None:
        return unknown('git is not installed')
    try:
        head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=root, capture_output=True,
                              text=True, timeout=30)
        if head.returncode:
            return unknown(f'{root} is not a git checkout ({head.stderr.strip()})')
        status = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                                cwd=root, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return unknown(f'git failed in {root}: {exc}')
    if status.returncode:
        return dict(commit=head.stdout.strip(),
                    dirty=unknown(f'git status failed: {status.stderr.strip()}'))
    return dict(commit=head.stdout.strip(), dirty=bool(status.stdout.strip()))


def _cpu_model() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.lower().startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or 'unknown (no /proc/cpuinfo)'


def _visible_gpus(env: Dict[str, str]):
    """GPU names the run's processes see (``CUDA_VISIBLE_DEVICES`` applied) via nvidia-smi."""
    visible = env.get('CUDA_VISIBLE_DEVICES')
    if visible is not None and not visible.strip():
        return []  # CUDA_VISIBLE_DEVICES='' hides every GPU
    if shutil.which('nvidia-smi') is None:
        return unknown('nvidia-smi not found (no NVIDIA driver on this machine, or not on '
                       'PATH)')
    try:
        out = subprocess.run(['nvidia-smi', '--query-gpu=index,name', '--format=csv,noheader'],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return unknown(f'nvidia-smi failed: {exc}')
    if out.returncode:
        return unknown(f'nvidia-smi failed: {out.stderr.strip() or out.stdout.strip()}')
    gpus = [line.split(',', 1) for line in out.stdout.strip().splitlines() if ',' in line]
    names = {i.strip(): n.strip() for i, n in gpus}
    if visible is None:
        return list(names.values())
    return [names.get(v.strip(), f'CUDA_VISIBLE_DEVICES entry {v.strip()}')
            for v in visible.split(',')]


def environment_facts(world_size: int, env: Optional[Dict[str, str]] = None) -> dict:
    """Hardware and software a run step ran on: CPU model and count, visible GPUs, torch and
    python versions, ``world_size`` (processes per run) and the math thread settings.

    Args:
        world_size: processes of the step (``RunSpec.gpus``).
        env: the step's environment (default ``os.environ``).
    """
    from importlib import metadata
    env = dict(os.environ if env is None else env)
    try:
        torch_version = metadata.version('torch')
    except metadata.PackageNotFoundError:
        torch_version = unknown('torch is not installed in the dispatching interpreter')
    return dict(cpu=_cpu_model(), cpu_count=os.cpu_count(), gpus=_visible_gpus(env),
                torch=torch_version, python=platform.python_version(),
                world_size=int(world_size),
                threads={v: env[v] for v in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS') if v in env})


# --------------------------------------------------------------------- read at collect time
def _registry_class(registry_name: str, type_name):
    """The class a config ``type`` names in an lgdea registry (None if it is not found)."""
    if not isinstance(type_name, str):
        return type_name if inspect.isclass(type_name) else None
    from lgdea import registry
    if not _REGISTERED:
        from lgdea.utils import register_all_modules
        register_all_modules(init_default_scope=False)
        _REGISTERED.append(True)
    return getattr(registry, registry_name).get(type_name)


_REGISTERED: List[bool] = []


def _eval_sets(cfg) -> List[Tuple[str, dict, list]]:
    """``(name, dataset config, evaluator configs)`` of the test loop's datasets: the main
    ``test_dataloader`` then ``test_cfg.extra_dataloaders``, named by ``test_cfg.prefixes``."""
    test_cfg = cfg.get('test_cfg') or {}
    loaders = [cfg.get('test_dataloader')] + list(test_cfg.get('extra_dataloaders') or [])
    evaluators = [cfg.get('test_evaluator')] + list(test_cfg.get('extra_evaluators') or [])
    prefixes = list(test_cfg.get('prefixes') or [])
    out = []
    for i, loader in enumerate(loaders):
        if not loader:
            continue
        dataset = dict(loader.get('dataset') or {})
        name = prefixes[i] if i < len(prefixes) else (
            f'{dataset.get("type", "dataset")}:{dataset.get("split", i)}')
        evals = evaluators[i] if i < len(evaluators) else []
        evals = [evals] if isinstance(evals, dict) else list(evals or [])
        out.append((name, dataset, [dict(e) for e in evals]))
    return out


def _inner_dataset(dataset: dict) -> dict:
    """The source dataset of a wrapper (``LimitedPairingDataset(dataset=...)``)."""
    inner = dataset.get('dataset')
    return dict(inner) if isinstance(inner, dict) else dataset


_META_CACHE: Dict[str, object] = {}


def _lazy_dataset(dataset: dict):
    """The dataset object built without loading its data (``lazy_init``, no pipeline); cached
    by config. Raises whatever the dataset class raises."""
    key = json.dumps(dataset, sort_keys=True, default=str)
    if key not in _META_CACHE:
        from lgdea.registry import DATASETS
        _registry_class('DATASETS', dataset.get('type'))
        cwd = os.getcwd()
        os.chdir(ROOT)  # relative cache / data roots resolve where the runs ran
        try:
            _META_CACHE[key] = DATASETS.build(dict(dataset, pipeline=[], lazy_init=True))
        finally:
            os.chdir(cwd)
    return _META_CACHE[key]


def _zero_shot_metrics(cfg):
    """``(eval set name, built ZeroShotAccuracy, dataset config)`` of every zero-shot
    evaluator of the test loop."""
    from lgdea.evaluation.metrics.zero_shot import ZeroShotAccuracy
    found = []
    for name, dataset, evaluators in _eval_sets(cfg):
        for ev in evaluators:
            cls = _registry_class('METRICS', ev.get('type'))
            if cls is None or not issubclass(cls, ZeroShotAccuracy):
                continue
            found.append((name, cls(**{k: v for k, v in ev.items() if k != 'type'}), dataset))
    return found


def _prompts_fields(cfg) -> Tuple[object, object, object]:
    """``(prompts, aggregation, zscore)`` card values from the zero-shot evaluators."""
    try:
        metrics = _zero_shot_metrics(cfg)
    except Exception as exc:  # a config the metric class rejects
        bad = unknown(f'could not build the zero-shot evaluator: {exc}')
        return bad, bad, bad
    if not metrics:
        none = unknown('the test loop has no ZeroShotAccuracy evaluator')
        return none, none, none
    prompts, aggregation, zscore = {}, {}, {}
    for name, metric, dataset in metrics:
        # the metric sees the dataset's metainfo (its classes, and the prompts unless the
        # evaluator config gives them)
        try:
            meta, failure = _lazy_dataset(dataset).metainfo, None
        except Exception as exc:
            meta, failure = None, exc
        if meta is not None:
            metric.dataset_meta = meta
            source = ('evaluator config' if metric.prompts is not None else
                      f'metainfo of {dataset.get("type")} (split {dataset.get("split")})')
        elif metric.prompts is not None:
            classes = _inner_dataset(dataset).get('classes')
            metric.dataset_meta = {'classes': list(classes)} if classes else {}
            source = ('evaluator config; classes from the dataset config (the dataset could '
                      'not be built here)')
        else:
            prompts[name] = unknown(f'prompts come from the metainfo of {dataset.get("type")},'
                                    f' which could not be built here: {failure}')
        if name not in prompts:
            try:
                classes, per_class = metric.class_prompts()
                table = dict(zip(classes, per_class))
                prompts[name] = dict(source=source, classes=len(classes),
                                     prompts=sum(map(len, per_class)),
                                     sha256=_json_sha256(table), by_class=table)
            except (ValueError, KeyError) as exc:
                prompts[name] = unknown(str(exc))
        for protocol in metric.protocols:
            label = name if protocol['name'] is None else f'{name}/{protocol["name"]}'
            aggregation[label] = protocol['aggregation']
            zscore[label] = protocol['zscore']
    return prompts, aggregation, zscore


def _sections(dataset: dict):
    inner = _inner_dataset(dataset)
    cls = _registry_class('DATASETS', inner.get('type'))
    if cls is None:
        return unknown(f'dataset type {inner.get("type")!r} is not registered')
    if 'sections' in inner:
        return list(inner['sections'])
    param = inspect.signature(cls.__init__).parameters.get('sections')
    if param is None:
        return unknown(f'{cls.__name__} has no `sections` option; its report text is used as '
                       'the dataset builds it')
    return list(param.default)


def _report_section(cfg) -> dict:
    out = {}
    train = (cfg.get('train_dataloader') or {}).get('dataset')
    if train:
        out['pretraining'] = _sections(dict(train))
    for name, dataset, _ in _eval_sets(cfg):
        out[name] = _sections(dataset)
    return out


def _transform_text(t: dict) -> str:
    args = ', '.join(f'{k}={v!r}' for k, v in t.items() if k != 'type')
    return f'{t.get("type")}({args})'


def _geometry(pipeline) -> Tuple[List[str], object]:
    """``(geometric transforms as text, output size 'HxW')`` of a pipeline: the transforms of
    :class:`~lgdea.datasets.transforms.processing._GeometricTransform` subclasses, in order."""
    from lgdea.datasets.transforms.processing import _GeometricTransform
    steps, size = [], unknown('the pipeline has no resize or crop')
    for t in pipeline or []:
        cls = _registry_class('TRANSFORMS', t.get('type'))
        if cls is None or not issubclass(cls, _GeometricTransform):
            continue
        steps.append(_transform_text(t))
        shape = t.get('size') if t.get('size') is not None else t.get('scale')
        if shape is None:
            size = unknown(f'{t.get("type")} without a size: the output size depends on the '
                           'input image')
        else:
            h, w = (shape, shape) if isinstance(shape, int) else tuple(shape)
            size = f'{h}x{w}'
    return steps, size


def _resolution_and_geometry(cfg) -> Tuple[dict, dict]:
    resolution, geometry = {}, {}
    train = (cfg.get('train_dataloader') or {}).get('dataset')
    if train:
        pipeline = train.get('pipeline') or _inner_dataset(dict(train)).get('pipeline')
        _, resolution['pretraining'] = _geometry(pipeline)
    for name, dataset, _ in _eval_sets(cfg):
        geometry[name], resolution[name] = _geometry(
            dataset.get('pipeline') or _inner_dataset(dataset).get('pipeline'))
    probe = cfg.get('linear_probe')
    if probe and probe.get('pipeline'):
        geometry['linear_probe'], resolution['linear_probe'] = _geometry(probe['pipeline'])
    return resolution, geometry


def _split_identity(dataset: dict):
    """Hash of what selects the cases of an evaluation set: every ``*_file`` of its config
    (sha256 of the file), else the split index of a generated (synthetic) dataset."""
    inner = _inner_dataset(dataset)
    files = {k: v for k, v in inner.items() if k.endswith('_file') and isinstance(v, str)}
    if files:
        out = {}
        for key, path in sorted(files.items()):
            full = _resolve(path)
            out[key] = (dict(path=path, sha256=file_sha256(full)) if osp.isfile(full)
                        else unknown(f'{path} does not exist here'))
        return out
    try:
        ds = _lazy_dataset(inner)
    except Exception as exc:
        return unknown(f'no *_file in the config and {inner.get("type")} could not be built: '
                       f'{exc}')
    generator = getattr(ds, 'generator', None)
    if generator is None or not hasattr(generator, 'index_path'):
        return unknown(f'{inner.get("type")}: no split file in the config; the dataset class '
                       'chooses its cases itself')
    split = getattr(ds, 'split', inner.get('split'))
    index = generator.index_path(split)
    out = dict(generator_config_sha=generator.config_hash, split=split)
    if getattr(ds, 'subset', None):
        out['subset'] = ds.subset
    out['index_sha256'] = (file_sha256(index) if osp.isfile(index)
                           else unknown('the split index is not generated on this machine'))
    return out


def _eval_splits(cfg) -> dict:
    out = {name: _split_identity(dataset) for name, dataset, _ in _eval_sets(cfg)}
    for task in (cfg.get('linear_probe') or {}).get('tasks') or []:
        for part in ('dataset', 'train', 'val', 'test'):  # one dataset, or one per subset
            if isinstance(task.get(part), dict):
                key = f'linear_probe/{task.get("name")}' + ('' if part == 'dataset'
                                                            else f'/{part}')
                out[key] = _split_identity(dict(task[part]))
    return out


def _pairing(cfg, work_dir: str) -> Tuple[object, object]:
    dataset = (cfg.get('train_dataloader') or {}).get('dataset') or {}
    if 'pair_ratio' in dataset:
        ratio = dict(pair_ratio=dataset['pair_ratio'], pair_seed=dataset.get('pair_seed'))
    else:
        ratio = unknown(f'train_dataloader.dataset ({dataset.get("type")}) sets no pair_ratio')
    path = osp.join(work_dir, PAIRING_SPLIT_FILE)
    if not osp.isfile(path):
        return ratio, unknown(f'no {PAIRING_SPLIT_FILE} in the run dir (written by '
                              'PairingSplitHook before training)')
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        return ratio, dict(sha256=file_sha256(path),
                           contents=unknown(f'{path} is not readable JSON: {exc}'))
    return ratio, pairing_split_identity(data)


def pairing_split_identity(data: dict) -> dict:
    """What identifies a pairing draw: the sha256 of the split itself (the canonical JSON of
    ``pairing_split.json`` without its ``counts``, which are derived from the split and whose
    set of keys grows with the code), the ratio, the seed and the number of paired studies.
    Two runs trained on the same paired studies get the same hash, whichever version of the
    code wrote the file."""
    split = {k: v for k, v in data.items() if k != 'counts'}
    out = dict(sha256=_json_sha256(split))
    out.update({k: data[k] for k in ('pair_ratio', 'pair_seed') if k in data})
    if isinstance(data.get('paired_studies'), list):
        out['paired_studies'] = len(data['paired_studies'])
    return out


def _model_selection(cfg, record) -> dict:
    checkpoint_hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    out = dict(model_selection=record.model_selection)
    for key in ('save_best', 'rule'):
        if checkpoint_hook.get(key) is not None:
            out[key] = checkpoint_hook[key]
    out['early_stopping'] = record.early_stopping
    return out


def _per_step(info: dict, key: str, what: str):
    recorded = info.get(key)
    if not recorded:
        return unknown(f'benchmark_run.json records no {what} (the run was made before '
                       'protocol recording, or outside tools/benchmark.py)')
    values = list(recorded.values())
    if all(v == values[0] for v in values):
        return values[0]
    return dict(recorded)


def run_card(record) -> dict:
    """The protocol card of one run (:class:`~lgdea.benchmark.results.RunRecord`)."""
    run = record.run
    info = read_run_info(run.work_dir)
    card = dict.fromkeys(_LABELS)
    try:
        cfg = load_config(run.config_path, record.cfg_options)
    except (FileNotFoundError, ValueError) as exc:
        cfg, missing = None, unknown(f'config not readable: {exc}')
        for key in ('zero_shot_prompts', 'zero_shot_aggregation', 'zero_shot_zscore',
                    'report_section', 'image_resolution', 'test_geometry', 'pairing_ratio',
                    'pairing_split', 'eval_splits', 'seed', 'model_selection'):
            card[key] = missing
    if cfg is not None:
        (card['zero_shot_prompts'], card['zero_shot_aggregation'],
         card['zero_shot_zscore']) = _prompts_fields(cfg)
        card['report_section'] = _report_section(cfg)
        card['image_resolution'], card['test_geometry'] = _resolution_and_geometry(cfg)
        card['pairing_ratio'], card['pairing_split'] = _pairing(cfg, run.work_dir)
        card['eval_splits'] = _eval_splits(cfg)
        seed = (cfg.get('randomness') or {}).get('seed')
        card['seed'] = seed if seed is not None else unknown('the config sets no '
                                                            'randomness.seed')
        card['model_selection'] = _model_selection(cfg, record)
    card['checkpoint'] = (osp.basename(record.checkpoint) if record.checkpoint
                          else unknown('no checkpoint in the run dir'))
    card['code_commit'] = _per_step(info, 'code', 'code version')
    if record.train_seconds is None and record.test_seconds is None:
        card['wall_time'] = unknown('benchmark_run.json records no train / test seconds')
    else:
        card['wall_time'] = dict(train_s=record.train_seconds, test_s=record.test_seconds)
    card['hardware'] = _per_step(info, 'environment', 'environment')
    return card


# ------------------------------------------------------------------------------ merging
def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def table_card(cards: Dict[str, dict]) -> dict:
    """``{'runs': [...], 'common': {field: value}, 'per_run': {field: {run_id: value}}}``
    of the cards of the runs behind a table: a field goes to ``common`` when every run has
    the same value, else to ``per_run``."""
    common, per_run = {}, {}
    for key, _ in PROTOCOL_FIELDS:
        values = {run_id: card.get(key) for run_id, card in cards.items()}
        first = next(iter(values.values()), None)
        if values and all(_same(v, first) for v in values.values()):
            common[key] = first
        elif values:
            per_run[key] = values
    return dict(runs=list(cards), common=common, per_run=per_run)


def format_value(key: str, value) -> str:
    """A card value as one line of text (long values shortened: hashes to 12 characters,
    prompt lists to their count and hash; ``results.json`` keeps them whole)."""
    if is_unknown(value):
        return f'unknown: {value["unknown"]}'
    if key == 'zero_shot_prompts' and isinstance(value, dict):
        return _grouped({name: _prompt_text(v) for name, v in value.items()})
    if key == 'hardware' and isinstance(value, dict) and 'cpu' in value:
        return _hardware_text(value)
    if key == 'code_commit' and isinstance(value, dict) and 'commit' in value:
        return _commit_text(value)
    if key == 'test_geometry' and isinstance(value, dict):
        return _grouped({name: ' -> '.join(steps) or 'no resize or crop'
                         for name, steps in value.items()})
    if key in _PER_EVAL_SET and isinstance(value, dict):
        return _grouped({name: _generic_text(v) for name, v in value.items()})
    return _generic_text(value)


#: Fields whose value is a dict keyed by evaluation set (and ``pretraining``).
_PER_EVAL_SET = ('zero_shot_aggregation', 'zero_shot_zscore', 'report_section',
                 'image_resolution', 'eval_splits')


def _grouped(texts: Dict[str, str]) -> str:
    """``{name: text}`` as ``text (name, name); text (name)``: names sharing a text together."""
    groups: Dict[str, List[str]] = {}
    for name, text in texts.items():
        groups.setdefault(text, []).append(name)
    return '; '.join(f'{text} ({", ".join(names)})' for text, names in groups.items())


def _prompt_text(v) -> str:
    if is_unknown(v):
        return f'unknown: {v["unknown"]}'
    return (f'{v["classes"]} classes, {v["prompts"]} prompts, sha256 '
            f'{v["sha256"][:_SHORT_HASH]}, from the {v["source"]}')


def _commit_text(v: dict) -> str:
    dirty = v.get('dirty')
    flag = ('dirty' if dirty else 'clean') if isinstance(dirty, bool) else format_value('', dirty)
    return f'{v["commit"][:_SHORT_HASH]} ({flag})'


def _hardware_text(v: dict) -> str:
    gpus = v.get('gpus')
    if is_unknown(gpus):
        gpu_text = f'GPU unknown: {gpus["unknown"]}'
    else:
        gpu_text = ', '.join(gpus) if gpus else 'no GPU visible'
    torch = v.get('torch')
    torch = torch if isinstance(torch, str) else format_value('', torch)
    threads = ', '.join(f'{k}={n}' for k, n in (v.get('threads') or {}).items())
    return (f'{v["cpu"]} ({v.get("cpu_count")} CPUs); {gpu_text}; torch {torch}; world size '
            f'{v.get("world_size")}' + (f'; {threads}' if threads else ''))


def _generic_text(value) -> str:
    if is_unknown(value):
        return f'unknown: {value["unknown"]}'
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            if isinstance(v, str) and len(v) == 64 and all(c in '0123456789abcdef' for c in v):
                v = v[:_SHORT_HASH]
            parts.append(f'{k}={_generic_text(v)}')
        return ', '.join(parts)
    if isinstance(value, (list, tuple)):
        return '+'.join(_generic_text(v) for v in value) if value else 'none'
    return str(value)


def _escape(text: str) -> str:
    return str(text).replace('|', '\\|')


def format_card_markdown(merged: dict, full_card: str = 'results.json, `protocol`') -> str:
    """The card of a table as markdown: one line per field, with the value the runs share,
    or, for a field in which they differ, each value followed by the runs that have it.

    Args:
        merged: a :func:`table_card`.
        full_card: where the whole card (prompt lists, full hashes) is stored.
    """
    if not merged['runs']:
        return '**Protocol**: no finished run, nothing to describe.\n'
    lines = [f'**Protocol** of the {len(merged["runs"])} run(s) above (every field in full: '
             f'{full_card}):', '']
    for key, label in PROTOCOL_FIELDS:
        if key in merged['common']:
            lines.append(f'- {label}: {_escape(format_value(key, merged["common"][key]))}')
        elif key in merged['per_run']:
            groups: Dict[str, List[str]] = {}
            for run_id, value in merged['per_run'][key].items():
                groups.setdefault(format_value(key, value), []).append(run_id)
            lines.append(f'- {label}, DIFFERS between the runs:')
            lines += [f'  - {_escape(text)}: {", ".join(runs)}' for text, runs in groups.items()]
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------- comparing
def summarize_field(merged: dict, key: str) -> str:
    """One field of a merged card as text: the shared value, or each value with its runs."""
    if key in merged.get('common', {}):
        return format_value(key, merged['common'][key])
    per_run = merged.get('per_run', {}).get(key)
    if per_run is None:
        return 'not recorded'
    return _grouped({run_id: format_value(key, v) for run_id, v in per_run.items()})


def _by_group(merged: dict, key: str, groups: Dict[str, str]) -> Dict[str, List[str]]:
    """``{group: sorted distinct values (as JSON)}`` of one field; a run's group is
    ``groups[run_id]`` (its setting), the run id itself when not given."""
    runs = merged.get('runs') or []
    if key in merged.get('common', {}):
        values = {run_id: merged['common'][key] for run_id in runs}
    else:
        values = dict(merged.get('per_run', {}).get(key) or {})
    out: Dict[str, set] = {}
    for run_id, value in values.items():
        out.setdefault(groups.get(run_id, run_id), set()).add(json.dumps(value,
                                                                         sort_keys=True))
    return {g: sorted(v) for g, v in out.items()}


def protocol_differences(a: dict, b: dict, groups_a: Optional[Dict[str, str]] = None,
                         groups_b: Optional[Dict[str, str]] = None
                         ) -> List[Tuple[str, str, str]]:
    """``(field label, text in A, text in B)`` for every card field in which two merged
    cards (``results.json['protocol']``) differ, in :data:`PROTOCOL_FIELDS` order.

    Runs are matched by group (``groups_*``: run id -> setting id, so that seed 0 of a
    setting in A meets seed 1 of it in B): a field differs when, for a group both files
    have, the sets of values differ. Without groups runs are matched by run id.
    """
    groups_a, groups_b = groups_a or {}, groups_b or {}
    out = []
    for key, label in PROTOCOL_FIELDS:
        va, vb = _by_group(a, key, groups_a), _by_group(b, key, groups_b)
        shared = set(va) & set(vb)
        if any(va[g] != vb[g] for g in shared):
            out.append((label, summarize_field(a, key), summarize_field(b, key)))
    return out


def table_run_ids(table, records: Sequence) -> List[str]:
    """Run ids of the finished records that entered a :class:`~lgdea.benchmark.tables.Table`
    (the rows' settings at the table's seeds)."""
    rows = {row.row_id for row in table.rows}  # row ids are setting ids
    return [r.run.run_id for r in records if r.status == 'finished'
            and r.run.setting.setting_id in rows
            and r.run.seed in r.run.setting.seeds(table.seeds)]


def cards_of(records: Sequence) -> Dict[str, dict]:
    """``{run_id: card}`` of the finished records."""
    return {r.run.run_id: run_card(r) for r in records if r.status == 'finished'}
