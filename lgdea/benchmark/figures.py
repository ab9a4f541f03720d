"""Figures of a benchmark (paper Figs. 4-7) through :mod:`lgdea.visualization`.

A spec asks for figures with::

    figures = dict(
        seed=0,                                             # which seed's checkpoints
        grounding=dict(runs=['LGDEA_p5', 'CLIP_p5'], per_class=1),    # Figs. 4-5
        retrieval=dict(runs=['LGDEA_p5', 'CLIP_p5'], num_queries=3, topk=2),  # Fig. 6
        sensitivity=dict(metrics=[('{grounding}/grounding/cnr', 'mean CNR'),
                                  ('{retrieval}/zero_shot/accuracy', 'zero-shot accuracy (%)')]),
    )

``runs`` lists setting ids (``<name>_p<pairing>``) or names (default: every setting). The
visualization functions receive ``runs = [dict(name=<row label>, config=<config>,
checkpoint=<checkpoint>), ...]`` (the config dumped in the run's work dir when there is one,
so cfg_options such as K / L are in it) and ``sweep = {'K': [(value, mean, std), ...],
'L': [...]}`` (mean / std over seeds). Figures go to ``<work_dir>/figures/``.
"""
import os
import os.path as osp
from typing import Dict, List, Sequence

from .results import RunRecord, summarize
from .spec import BenchmarkSpec

__all__ = ['FiguresUnavailableError', 'call_visualization', 'sweep_points', 'make_figures']

_DEFAULT_SENSITIVITY = [('{grounding}/grounding/cnr', 'mean CNR'),
                        ('{retrieval}/zero_shot/accuracy', 'zero-shot accuracy (%)')]


class FiguresUnavailableError(RuntimeError):
    """The spec asks for a figure whose function :mod:`lgdea.visualization` does not have."""


def call_visualization(function: str, *args, **kwargs):
    """Call ``lgdea.visualization.<function>(*args, **kwargs)``; the one place that knows the
    figure API (adapt it here if the API changes)."""
    try:
        import lgdea.visualization as visualization
    except ImportError as exc:  # pragma: no cover - depends on optional plotting packages
        raise FiguresUnavailableError(f'the spec asks for figures but lgdea.visualization '
                                      f'cannot be imported: {exc}') from exc
    fn = getattr(visualization, function, None)
    if fn is None:
        raise FiguresUnavailableError(
            f'the spec asks for a figure made by lgdea.visualization.{function}, which does not '
            'exist in this installation; remove that entry of `figures` or update lgdea')
    return fn(*args, **kwargs)


def _selected(spec: BenchmarkSpec, wanted) -> List:
    if not wanted:
        return list(spec.settings)
    chosen = [s for s in spec.settings if s.setting_id in wanted or s.name in wanted]
    unknown = [w for w in wanted if not any(w in (s.setting_id, s.name) for s in spec.settings)]
    if unknown:
        raise ValueError(f'figures: unknown runs {unknown}; use setting ids '
                         f'{[s.setting_id for s in spec.settings]}')
    return chosen


def _figure_runs(spec: BenchmarkSpec, records: Sequence[RunRecord], wanted, seed: int) -> list:
    finished = {(r.run.setting.setting_id, r.run.seed): r for r in records
                if r.status == 'finished' and r.checkpoint}
    runs = []
    for setting in _selected(spec, wanted):
        rec = finished.get((setting.setting_id, seed))
        if rec is None:
            continue
        dumped = osp.join(rec.run.work_dir, osp.basename(setting.config))
        runs.append(dict(name=setting.label,
                         config=dumped if osp.isfile(dumped) else rec.run.config_path,
                         checkpoint=rec.checkpoint))
    return runs


def sweep_points(spec: BenchmarkSpec, records: Sequence[RunRecord],
                 metric_key: str) -> Dict[str, list]:
    """``{param: [(value, mean, std), ...]}`` of ``metric_key`` over the sweep settings
    (std None with a single seed)."""
    sweep: Dict[str, list] = {}
    for setting in spec.settings:
        values = [r.metrics.get(metric_key) for r in records
                  if r.status == 'finished' and r.run.setting is setting]
        summary = summarize(values, ddof=spec.std_ddof)
        if summary.mean is None:
            continue
        for param, value in setting.sweep.items():
            sweep.setdefault(param, []).append((value, summary.mean, summary.std))
    return {p: sorted(points) for p, points in sweep.items()}


def make_figures(spec: BenchmarkSpec, records: Sequence[RunRecord],
                 log=print) -> List[str]:
    """Make the figures ``spec.figures`` asks for; returns the files written.

    Raises:
        FiguresUnavailableError: :mod:`lgdea.visualization` lacks a requested function.
    """
    figures = dict(spec.figures or {})
    if not figures:
        return []
    unknown = set(figures) - {'seed', 'grounding', 'retrieval', 'sensitivity'}
    if unknown:
        raise ValueError(f'figures: unknown entries {sorted(unknown)}; known: seed, grounding, '
                         'retrieval, sensitivity')
    out_dir = osp.join(spec.work_dir, 'figures')
    os.makedirs(out_dir, exist_ok=True)
    seed = int(figures.pop('seed', spec.seeds[0]))
    written = []
    for kind in ('grounding', 'retrieval'):
        if kind not in figures:
            continue
        options = dict(figures.pop(kind) or {})
        runs = _figure_runs(spec, records, options.pop('runs', None), seed)
        if not runs:
            log(f'[benchmark] {kind} figure skipped: no finished run at seed {seed}')
            continue
        out_file = osp.join(out_dir, f'{kind}.png')
        call_visualization(f'{kind}_figure', runs, out_file, **options)
        written.append(out_file)
    if 'sensitivity' in figures:
        options = dict(figures.pop('sensitivity') or {})
        fields = dict(spec.datasets, pct=f'{float(spec.linear_probe_pct):g}')
        for key, label in options.get('metrics') or _DEFAULT_SENSITIVITY:
            sweep = sweep_points(spec, records, key.format(**fields))
            if not sweep:
                log(f'[benchmark] sensitivity figure for {label} skipped: no finished sweep run')
                continue
            slug = key.rsplit('/', 1)[-1].replace('@', '_')
            out_file = osp.join(out_dir, f'sensitivity_{slug}.png')
            call_visualization('sensitivity_figure', sweep, out_file, label)
            written.append(out_file)
    return written
