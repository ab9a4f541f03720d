"""Benchmark specs: which methods, pairing ratios and seeds to train, and which tables to write.

A spec is an mmengine Python config (``configs/benchmark/*.py``)::

    runs = [
        dict(name='CLIP', config='configs/demo/clip_demo_p100.py', pairing=100),
        dict(name='LGDEA', config='configs/demo/lgdea_demo_p5_repaired.py', pairing=5,
             group='LGDEA', label='LGDEA (5% pairs, repaired)'),
        dict(name='LGDEA_K32', config='configs/lgdea_vitb_p5.py', pairing=5,
             cfg_options=['model.head.num_prototypes=32'], sweep=dict(K=32)),
    ]
    seeds = [0, 1]
    tables = ['grounding', 'grounding_pairing', 'retrieval', 'classification']
    datasets = 'synthetic'        # or 'mimic', or dict(preset='mimic', nih='nih14', ...)
    iters = None                  # optional: override the length of iteration-based runs
    work_dir = 'work_dirs/benchmark/demo_synthetic'

:func:`load_spec` reads it into a :class:`BenchmarkSpec`; :meth:`BenchmarkSpec.expand` gives
one :class:`RunSpec` per (setting, seed), whose work dir is
``<work_dir>/<name>_p<pairing>_seed<seed>``. See docs/benchmark.md for every key.
"""
import copy
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union

from .comparisons import check_comparisons

__all__ = ['ROOT', 'DATASET_PRESETS', 'SettingSpec', 'RunSpec', 'BenchmarkSpec', 'load_spec',
           'format_pairing', 'resolve_datasets']

#: The repository root: configs in a spec are relative to it, subprocesses run in it.
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: Metric-key prefixes of the evaluation sets, by role. ``retrieval``: the 5x200 zero-shot /
#: retrieval set; ``grounding``: the phrase-grounding set; ``covid`` / ``rsna`` / ``nih``: the
#: linear-probe classification sets of Table V (the synthetic benchmark has a COVID-like
#: 3-class set, an RSNA-like binary set and an NIH-like multi-label set).
DATASET_PRESETS: Dict[str, Dict[str, str]] = dict(
    synthetic=dict(retrieval='synthetic_5x200', grounding='synthetic_grounding',
                   covid='synthetic_cls_multiclass', rsna='synthetic_cls_binary',
                   nih='synthetic_cls_multilabel'),
    mimic=dict(retrieval='mimic_5x200', grounding='ms_cxr', covid='covid', rsna='rsna',
               nih='nih'),
)

_RUN_KEYS = ('name', 'config', 'pairing', 'label', 'group', 'cfg_options', 'sweep',
             'extra_seeds')
_SPEC_KEYS = ('runs', 'seeds', 'tables', 'datasets', 'iters', 'work_dir', 'cfg_options',
              'vary_pair_seed', 'std_ddof', 'linear_probe_pct', 'columns', 'grounding_classes',
              'figures', 'gpus_per_run', 'title', 'comparisons')
_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.+-]*$')


def format_pairing(pairing: float) -> str:
    """``5`` -> ``'5'``, ``2.5`` -> ``'2.5'`` (pairing ratios are percentages)."""
    return f'{float(pairing):g}'


def resolve_datasets(datasets: Union[str, dict, None]) -> Dict[str, str]:
    """Metric-key prefixes by role from a preset name or ``dict(preset=..., <role>=prefix)``."""
    if datasets is None:
        datasets = 'synthetic'
    if isinstance(datasets, str):
        datasets = dict(preset=datasets)
    datasets = dict(datasets)
    preset = datasets.pop('preset', 'synthetic')
    if preset not in DATASET_PRESETS:
        raise ValueError(f'unknown datasets preset {preset!r}; choose one of '
                         f'{sorted(DATASET_PRESETS)} or give every role as a dict')
    out = dict(DATASET_PRESETS[preset])
    unknown = set(datasets) - set(out)
    if unknown:
        raise ValueError(f'unknown dataset roles {sorted(unknown)}; roles are {sorted(out)}')
    out.update({k: str(v) for k, v in datasets.items()})
    return out


@dataclass
class SettingSpec:
    """One row of the tables: a method config at one pairing ratio (all seeds).

    Args:
        name: short name, used in work-dir names (letters, digits, ``_ . + -``).
        config: config path, relative to the repository root (or absolute).
        pairing: percentage of paired studies (checked against the config's
            ``train_dataloader.dataset.pair_ratio`` before a run starts).
        label: row label in the tables (default ``'<name> (<pairing>% pairs)'``).
        group: optional row group (the paper's "Paired Baseline" / "Single Domain" column).
        cfg_options: ``key=value`` overrides of this setting (after the spec-wide ones).
        sweep: hyper-parameter values this setting stands for in the K / L sweep tables, e.g.
            ``dict(K=64, L=64)`` (a setting may belong to several sweeps).
        extra_seeds: seeds this setting runs in addition to the spec's ``seeds`` (e.g. the
            two settings of a claimed comparison at 5 seeds, the others at 3).
    """

    name: str
    config: str
    pairing: float
    label: str = ''
    group: Optional[str] = None
    cfg_options: List[str] = field(default_factory=list)
    sweep: Dict[str, float] = field(default_factory=dict)
    extra_seeds: List[int] = field(default_factory=list)

    def __post_init__(self):
        if not _NAME_RE.match(self.name):
            raise ValueError(f'run name {self.name!r}: use letters, digits and _ . + - only '
                             '(it becomes a directory name); put free text in `label`')
        if not 0 < float(self.pairing) <= 100:
            raise ValueError(f'run {self.name!r}: pairing is a percentage in (0, 100], got '
                             f'{self.pairing!r}')
        self.pairing = float(self.pairing)
        if not self.label:
            self.label = f'{self.name} ({format_pairing(self.pairing)}% pairs)'
        self.cfg_options = [str(o) for o in self.cfg_options]
        self.sweep = {str(k): float(v) for k, v in dict(self.sweep).items()}
        self.extra_seeds = [int(x) for x in self.extra_seeds]
        if len(set(self.extra_seeds)) != len(self.extra_seeds):
            raise ValueError(f'run {self.name!r}: extra_seeds repeat: {self.extra_seeds}')

    def seeds(self, spec_seeds: Sequence[int]) -> List[int]:
        """The spec's seeds, then this setting's extra seeds that are not among them."""
        return list(spec_seeds) + [x for x in self.extra_seeds if x not in spec_seeds]

    @property
    def setting_id(self) -> str:
        """``<name>_p<pairing>``: the run id without the seed."""
        return f'{self.name}_p{format_pairing(self.pairing)}'


@dataclass
class RunSpec:
    """One training + evaluation: a setting at one seed.

    Args:
        setting: the setting (row) the run belongs to.
        seed: ``randomness.seed`` of the run.
        work_dir: the run's work dir (absolute).
        cfg_options: the spec-wide then the setting's ``key=value`` overrides (the seed and
            ``iters`` overrides are added by :func:`lgdea.benchmark.runs.run_cfg_options`).
        iters: optional override of ``train_cfg.max_iters`` (phase lengths scale with it).
        vary_pair_seed: also set ``train_dataloader.dataset.pair_seed`` to the seed (default:
            the pairing draw stays fixed and seeds vary model initialisation and data order).
        gpus: processes per run (> 1: ``tools/dist_train.sh`` / ``tools/dist_test.sh``).
        run_id: name of the run in progress lines and ``--only`` (default
            ``<name>_p<pairing>_seed<seed>``, also the default work-dir name).
    """

    setting: SettingSpec
    seed: int
    work_dir: str
    cfg_options: List[str] = field(default_factory=list)
    iters: Optional[int] = None
    vary_pair_seed: bool = False
    gpus: int = 1
    run_id: str = ''

    def __post_init__(self):
        if not self.run_id:
            self.run_id = f'{self.setting.setting_id}_seed{self.seed}'

    @property
    def name(self) -> str:
        return self.setting.name

    @property
    def config(self) -> str:
        return self.setting.config

    @property
    def config_path(self) -> str:
        """Absolute path of the config."""
        return self.setting.config if osp.isabs(self.setting.config) else osp.join(
            ROOT, self.setting.config)


@dataclass
class BenchmarkSpec:
    """A parsed benchmark spec (see the module docstring and docs/benchmark.md).

    Args:
        settings: the rows, in spec order.
        seeds: seeds of every setting.
        tables: table layouts to write (keys of :func:`lgdea.benchmark.tables.build_layouts`).
        work_dir: root of the run work dirs and of the outputs (absolute).
        datasets: metric-key prefixes by role (:data:`DATASET_PRESETS`).
        iters: optional ``train_cfg.max_iters`` override for every run.
        cfg_options: ``key=value`` overrides for every run.
        vary_pair_seed: see :class:`RunSpec`.
        std_ddof: delta degrees of freedom of the std over seeds (1: sample std).
        linear_probe_pct: label fraction (%) of the linear-probe columns of Table V / X / XI.
        columns: per-table column overrides ``{table: [dict(label, key, digits), ...]}``; keys
            may use ``{retrieval}``, ``{grounding}``, ``{covid}``, ``{rsna}``, ``{nih}``,
            ``{pct}``.
        grounding_classes: class columns of the grounding tables (default: the eight MS-CXR
            classes in the paper's order).
        figures: optional figure requests (docs/benchmark.md, "Figures").
        gpus_per_run: processes per run.
        title: heading of ``benchmark_results.md``.
        comparisons: paired differences to report, ``dict(a=<setting id>, b=<setting id>,
            metrics=[...])`` (:mod:`lgdea.benchmark.comparisons`).
        path: the spec file.
    """

    settings: List[SettingSpec]
    seeds: List[int]
    tables: List[str]
    work_dir: str
    datasets: Dict[str, str]
    iters: Optional[int] = None
    cfg_options: List[str] = field(default_factory=list)
    vary_pair_seed: bool = False
    std_ddof: int = 1
    linear_probe_pct: float = 100
    columns: Dict[str, list] = field(default_factory=dict)
    grounding_classes: Optional[List[str]] = None
    figures: Optional[dict] = None
    gpus_per_run: int = 1
    title: str = 'Benchmark results'
    comparisons: List[dict] = field(default_factory=list)
    path: Optional[str] = None

    def __post_init__(self):
        if not self.settings:
            raise ValueError('a benchmark spec needs at least one entry in `runs`')
        if not self.seeds:
            raise ValueError('a benchmark spec needs at least one seed')
        self.seeds = [int(s) for s in self.seeds]
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f'seeds repeat: {self.seeds}')
        ids = [s.setting_id for s in self.settings]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f'runs repeat the same name and pairing: {duplicates}; give '
                             'them different names')
        check_comparisons(self.comparisons, ids)
        if self.iters is not None and int(self.iters) < 1:
            raise ValueError(f'iters must be positive, got {self.iters}')
        self.work_dir = osp.abspath(self.work_dir)

    def expand(self) -> List[RunSpec]:
        """Every (setting, seed) run, seed-major: all settings at the first seed, then all
        at the second, ... (an interrupted benchmark has complete tables for the first
        seeds)."""
        runs = []
        all_seeds = list(self.seeds)
        for setting in self.settings:
            all_seeds += [x for x in setting.seeds(self.seeds) if x not in all_seeds]
        for seed in all_seeds:
            for setting in self.settings:
                if seed not in setting.seeds(self.seeds):
                    continue
                run_id = f'{setting.setting_id}_seed{seed}'
                runs.append(RunSpec(
                    setting=setting, seed=seed, work_dir=osp.join(self.work_dir, run_id),
                    cfg_options=list(self.cfg_options) + list(setting.cfg_options),
                    iters=self.iters, vary_pair_seed=self.vary_pair_seed,
                    gpus=self.gpus_per_run, run_id=run_id))
        return runs


def _as_setting(entry, index: int) -> SettingSpec:
    entry = dict(entry)
    unknown = set(entry) - set(_RUN_KEYS)
    if unknown:
        raise ValueError(f'runs[{index}]: unknown keys {sorted(unknown)}; allowed: '
                         f'{list(_RUN_KEYS)}')
    for key in ('name', 'config', 'pairing'):
        if key not in entry:
            raise ValueError(f'runs[{index}] ({entry.get("name", "?")}) has no `{key}`')
    cfg_options = entry.get('cfg_options') or []
    if isinstance(cfg_options, str):
        cfg_options = cfg_options.split()
    return SettingSpec(name=str(entry['name']), config=str(entry['config']),
                       pairing=entry['pairing'], label=str(entry.get('label') or ''),
                       group=entry.get('group'), cfg_options=list(cfg_options),
                       sweep=dict(entry.get('sweep') or {}),
                       extra_seeds=list(entry.get('extra_seeds') or []))


def load_spec(path: str, work_dir: Optional[str] = None, seeds: Optional[Sequence[int]] = None,
              iters: Optional[int] = None, cfg_options: Sequence[str] = (),
              vary_pair_seed: Optional[bool] = None,
              gpus_per_run: Optional[int] = None) -> BenchmarkSpec:
    """Read a spec file; the keyword arguments override the spec (command-line options).

    Args:
        path: the spec (an mmengine Python config).
        work_dir: overrides ``work_dir`` (relative to the current directory). The spec's
            ``work_dir`` is relative to the repository root (default
            ``work_dirs/benchmark/<spec file stem>``).
        seeds, iters, vary_pair_seed, gpus_per_run: override the spec's values.
        cfg_options: appended to the spec's ``cfg_options`` (they apply to every run).
    """
    from mmengine.config import Config
    raw = Config.fromfile(path, import_custom_modules=False).to_dict()
    keys = {k for k in raw if not k.startswith('_')}
    unknown = keys - set(_SPEC_KEYS)
    if unknown:
        raise ValueError(f'{path}: unknown keys {sorted(unknown)}; allowed: {list(_SPEC_KEYS)} '
                         '(names starting with _ are ignored)')
    if 'runs' not in raw:
        raise ValueError(f'{path} has no `runs` list')
    stem = osp.splitext(osp.basename(path))[0]
    if work_dir is None:  # the spec's work_dir is relative to the repository root, as configs
        work_dir = osp.join(ROOT, raw.get('work_dir') or osp.join('work_dirs', 'benchmark', stem))
    spec_cfg_options = raw.get('cfg_options') or []
    if isinstance(spec_cfg_options, str):
        spec_cfg_options = spec_cfg_options.split()
    return BenchmarkSpec(
        settings=[_as_setting(e, i) for i, e in enumerate(raw['runs'])],
        seeds=list(seeds) if seeds else list(raw.get('seeds') or [0]),
        tables=list(raw.get('tables') or ['grounding', 'retrieval', 'classification']),
        work_dir=work_dir,
        datasets=resolve_datasets(raw.get('datasets')),
        iters=iters if iters is not None else raw.get('iters'),
        cfg_options=list(spec_cfg_options) + list(cfg_options),
        vary_pair_seed=bool(raw.get('vary_pair_seed', False) if vary_pair_seed is None
                            else vary_pair_seed),
        std_ddof=int(raw.get('std_ddof', 1)),
        linear_probe_pct=raw.get('linear_probe_pct', 100),
        columns=copy.deepcopy(dict(raw.get('columns') or {})),
        grounding_classes=raw.get('grounding_classes'),
        figures=copy.deepcopy(raw.get('figures')) or None,
        gpus_per_run=int(gpus_per_run or raw.get('gpus_per_run') or 1),
        title=str(raw.get('title') or f'Benchmark results: {stem}'),
        comparisons=copy.deepcopy(list(raw.get('comparisons') or [])),
        path=osp.abspath(path))
