"""Comparison tables in the layouts of the paper (Tables II-VII, X, XI) as markdown and CSV.

A :class:`TableLayout` maps column labels to metric keys of the results JSONs
(:func:`build_layouts` fills in the dataset prefixes, e.g. ``synthetic_5x200`` or
``mimic_5x200``) and says which settings are its rows. :func:`build_table` aggregates the
per-seed records of every row (mean ± std over seeds, :func:`lgdea.benchmark.results.summarize`)
and :func:`format_markdown` / :func:`format_csv` render it: a metric missing from the results
shows as ``n/a``, ``±`` only appears with more than one seed, ``[low, high]`` is the 95%
bootstrap interval over seeds and evaluation cases (:mod:`lgdea.benchmark.bootstrap`; only
for metrics whose runs wrote per-case values), and the best value of a column (by the mean;
higher is better for every paper column) is bold only where it is *separated*: the 95%
interval of its paired difference to every other row of the column excludes 0 (bootstrap over
the common seeds and the cases; the Student-t interval over the common seeds where there are
no per-case values). A tie at the top, one seed without per-case values, or an overlap leaves
the column without bold.

Layouts (``tables`` of a spec):

=======================  =========  ===========================================================
key                      paper      rows x columns
=======================  =========  ===========================================================
``grounding``            Table II   every setting x grounding CNR per class (+ mean)
``grounding_pairing``    Table III  settings below 100% pairing x grounding CNR per class
``retrieval``            Table IV   every setting x P@1, P@2, P@5, P@10
``classification``       Table V    every setting x zero-shot 5x200 accuracy, linear-probe
                                    COVID / RSNA accuracy and NIH macro AUROC
``ablation_grounding``   Table VI   as ``grounding`` (ablation specs)
``ablation_retrieval``   Table VII  as ``retrieval`` (ablation specs)
``sweep_K``              Table X    settings with ``sweep=dict(K=...)`` by K x linear probe
                                    COVID / RSNA / NIH (+ the Fig. 7 metrics: mean CNR,
                                    zero-shot accuracy)
``sweep_L``              Table XI   as ``sweep_K`` for the number of lesion queries L
``overview``             (demo)     every setting x zero-shot acc, P@K, mean CNR, training
                                    samples/s, wall time
=======================  =========  ===========================================================
"""
import csv
import io
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .bootstrap import bootstrap_interval, paired_cases, stack_cases
from .comparisons import claim_interval, paired_difference
from .results import THROUGHPUT_KEY, WALL_TIME_KEY, MetricSummary, RunRecord, summarize
from .spec import SettingSpec

__all__ = ['PAPER_GROUNDING_CLASSES', 'Column', 'TableLayout', 'TableRow', 'Table',
           'build_layouts', 'build_table', 'format_markdown', 'format_markdown_grid',
           'format_csv', 'format_cell', 'table_to_json']

#: The eight MS-CXR classes in the column order of the paper's Tables II, III, VI and VIII
#: (the synthetic grounding set uses the same class names).
PAPER_GROUNDING_CLASSES = ('Atelectasis', 'Cardiomegaly', 'Consolidation', 'Lung Opacity',
                           'Edema', 'Pneumonia', 'Pneumothorax', 'Pleural Effusion')
#: Sweep tables: parameter -> (paper table number, first-column header).
_SWEEPS = dict(K=('X', 'Number of diagnostic prototypes K'),
               L=('XI', 'Number of lesion queries L'))


@dataclass
class Column:
    """One table column.

    Args:
        label: column header.
        key: metric key in the results JSON (or :data:`WALL_TIME_KEY`).
        digits: decimals shown.
        higher_is_better: True / False marks the max / min of the column bold; None marks
            nothing (e.g. wall time).
    """

    label: str
    key: str
    digits: int = 2
    higher_is_better: Optional[bool] = True


@dataclass
class TableLayout:
    """A table: title, columns, and which settings are rows.

    Args:
        key: the name used in a spec's ``tables`` and in the output file names.
        title: heading (paper table number and what is measured).
        columns: the metric columns.
        rows: ``'all'`` (every setting, spec order), ``'limited'`` (pairing below 100%) or
            ``'sweep:<P>'`` (settings with ``sweep[P]``, by its value; the row label is the
            value).
        row_header: header of the first column.
    """

    key: str
    title: str
    columns: List[Column]
    rows: str = 'all'
    row_header: str = 'Model'


@dataclass
class TableRow:
    """One aggregated row: label, optional group, one summary per column, and how many of
    the requested seeds had results."""

    row_id: str
    label: str
    group: Optional[str]
    cells: List[MetricSummary]
    seeds_done: int
    seeds_total: int
    #: per column: 95% bootstrap interval over seeds and cases (None without per-case values)
    intervals: List[Optional[Tuple[float, float]]] = field(default_factory=list)
    #: per column: ``{seed: value}`` and ``{seed: per-case values}`` (for the best-value test)
    values: List[Dict[int, float]] = field(default_factory=list, repr=False)
    cases: List[Dict[int, list]] = field(default_factory=list, repr=False)


@dataclass
class Table:
    """A layout with its aggregated rows."""

    layout: TableLayout
    rows: List[TableRow]
    seeds: List[int] = field(default_factory=list)
    std_ddof: int = 1


def _grounding_columns(prefix: str, classes: Sequence[str]) -> List[Column]:
    cols = [Column(c, f'{prefix}/grounding/cnr_{c}', 4) for c in classes]
    return cols + [Column('Mean', f'{prefix}/grounding/cnr', 4)]


def _retrieval_columns(prefix: str) -> List[Column]:
    return [Column(f'P@{k}', f'{prefix}/retrieval/P@{k}', 2) for k in (1, 2, 5, 10)]


def _probe_columns(datasets: Dict[str, str], pct: str) -> List[Column]:
    return [Column('COVID', f'{datasets["covid"]}/linear_probe@{pct}/accuracy', 2),
            Column('RSNA', f'{datasets["rsna"]}/linear_probe@{pct}/accuracy', 2),
            Column('NIH', f'{datasets["nih"]}/linear_probe@{pct}/auroc_macro', 2)]


def build_layouts(datasets: Dict[str, str], linear_probe_pct: float = 100,
                  grounding_classes: Optional[Sequence[str]] = None,
                  columns: Optional[Dict[str, list]] = None) -> Dict[str, TableLayout]:
    """Every table layout for the given metric-key prefixes.

    Args:
        datasets: prefixes by role (``retrieval``, ``grounding``, ``covid``, ``rsna``,
            ``nih``; :data:`lgdea.benchmark.spec.DATASET_PRESETS`).
        linear_probe_pct: label fraction (%) of the linear-probe columns.
        grounding_classes: class columns of the grounding tables
            (default :data:`PAPER_GROUNDING_CLASSES`).
        columns: overrides ``{table key: [dict(label, key, digits=2, higher_is_better=True),
            ...]}``; ``key`` may use ``{retrieval}``, ``{grounding}``, ``{covid}``,
            ``{rsna}``, ``{nih}`` and ``{pct}``. A table key that is not a built-in layout
            adds a table of every setting with these columns.
    """
    pct = f'{float(linear_probe_pct):g}'
    classes = list(grounding_classes or PAPER_GROUNDING_CLASSES)
    r, g = datasets['retrieval'], datasets['grounding']
    zero_shot = Column('Zero-shot 5x200', f'{r}/zero_shot/accuracy', 2)
    probe_what = (f'linear probe with {pct}% of the labels: COVID = {datasets["covid"]} '
                  f'accuracy (%), RSNA = {datasets["rsna"]} accuracy (%), NIH = '
                  f'{datasets["nih"]} macro AUROC (%)')
    grounding_title = f'phrase grounding on {g}, contrast-to-noise ratio (CNR) per class'
    retrieval_title = f'image-to-text retrieval on {r}, precision@K (%)'
    layouts = [
        TableLayout('grounding', f'Table II. {grounding_title[0].upper()}{grounding_title[1:]}',
                    _grounding_columns(g, classes)),
        TableLayout('grounding_pairing', 'Table III. Limited pairing (below 100% pairs): '
                    + grounding_title, _grounding_columns(g, classes), rows='limited'),
        TableLayout('retrieval', f'Table IV. {retrieval_title[0].upper()}{retrieval_title[1:]}',
                    _retrieval_columns(r)),
        TableLayout('classification', f'Table V. Classification: zero-shot accuracy (%) on {r}; '
                    + probe_what, [zero_shot] + _probe_columns(datasets, pct)),
        TableLayout('ablation_grounding', f'Table VI. Ablations: {grounding_title}',
                    _grounding_columns(g, classes)),
        TableLayout('ablation_retrieval', f'Table VII. Ablations: {retrieval_title}',
                    _retrieval_columns(r)),
        TableLayout('overview', f'Overview: zero-shot accuracy and P@K (%) on {r}, mean '
                    f'grounding CNR on {g}, training throughput, wall time',
                    [Column('zero-shot acc', zero_shot.key, 1)]
                    + [Column(c.label, c.key, 1) for c in _retrieval_columns(r)]
                    + [Column('grounding CNR', f'{g}/grounding/cnr', 2),
                       Column('train samples/s', THROUGHPUT_KEY, 1, higher_is_better=None),
                       Column('wall time (s)', WALL_TIME_KEY, 1, higher_is_better=None)],
                    row_header='run'),
    ]
    for param, (number, header) in _SWEEPS.items():
        layouts.append(TableLayout(
            f'sweep_{param}', f'Table {number}. Sensitivity to the {header[0].lower()}'
            f'{header[1:]}: {probe_what}; Fig. 7 metrics: mean CNR on {g}, zero-shot accuracy '
            f'(%) on {r}',
            _probe_columns(datasets, pct) + [Column('Mean CNR', f'{g}/grounding/cnr', 4),
                                             zero_shot],
            rows=f'sweep:{param}', row_header=header))
    out = {layout.key: layout for layout in layouts}
    fields = dict(datasets, pct=pct)
    for key, cols in (columns or {}).items():
        parsed = [Column(label=str(c['label']), key=str(c['key']).format(**fields),
                         digits=int(c.get('digits', 2)),
                         higher_is_better=c.get('higher_is_better', True)) for c in cols]
        if key in out:
            out[key].columns = parsed
        else:
            out[key] = TableLayout(key, key, parsed)
    return out


def _row_settings(layout: TableLayout, settings: Sequence[SettingSpec]) -> List[tuple]:
    """``(row_id, label, group, setting)`` of the rows of a layout."""
    if layout.rows == 'all':
        return [(s.setting_id, s.label, s.group, s) for s in settings]
    if layout.rows == 'limited':
        return [(s.setting_id, s.label, s.group, s) for s in settings if s.pairing < 100]
    if layout.rows.startswith('sweep:'):
        param = layout.rows.split(':', 1)[1]
        swept = sorted((s for s in settings if param in s.sweep), key=lambda s: s.sweep[param])
        return [(s.setting_id, f'{s.sweep[param]:g}', None, s) for s in swept]
    raise ValueError(f'table {layout.key}: unknown rows {layout.rows!r}')


def build_table(layout: TableLayout, settings: Sequence[SettingSpec],
                records: Sequence[RunRecord], seeds: Sequence[int], std_ddof: int = 1) -> Table:
    """Aggregate the finished ``records`` (all seeds) into the rows of ``layout``."""
    by_setting: Dict[str, List[RunRecord]] = {}
    for rec in records:
        if rec.status == 'finished' and rec.run.seed in rec.run.setting.seeds(seeds):
            by_setting.setdefault(rec.run.setting.setting_id, []).append(rec)
    rows = []
    for row_id, label, group, setting in _row_settings(layout, settings):
        done = by_setting.get(setting.setting_id, [])
        row_seeds = setting.seeds(seeds)
        if len(row_seeds) != len(seeds):
            label = f'{label} ({len(row_seeds)} seeds)'
        metrics = [r.table_metrics() for r in done]
        cells = [summarize([m.get(col.key) for m in metrics], ddof=std_ddof)
                 for col in layout.columns]
        values, cases, intervals = [], [], []
        for col in layout.columns:
            v = {r.run.seed: m.get(col.key) for r, m in zip(done, metrics)}
            c = {r.run.seed: r.cases(col.key) for r in done}
            c = {s_: x for s_, x in c.items() if x is not None}
            matrix = stack_cases(c, sorted(c)) if c and len(c) == len(done) else None
            values.append(v)
            cases.append(c)
            intervals.append(bootstrap_interval(matrix) if matrix is not None else None)
        rows.append(TableRow(row_id, label, group, cells, len(done), len(row_seeds), intervals,
                             values, cases))
    return Table(layout, rows, list(seeds), std_ddof)


def difference_interval(row_a: TableRow, row_b: TableRow, col_index: int
                        ) -> Optional[Tuple[float, float]]:
    """95% interval of ``a - b`` in one column over the seeds both rows have: the hull of the
    Student-t interval over those seeds and the bootstrap over them and the cases
    (:func:`lgdea.benchmark.comparisons.claim_interval`); None when neither exists."""
    va, vb = row_a.values[col_index], row_b.values[col_index]
    seeds, _, _, lo, hi = paired_difference(va, vb)
    if not seeds:
        return None
    diff = paired_cases(row_a.cases[col_index], row_b.cases[col_index], seeds)
    boot = bootstrap_interval(diff) if diff is not None else None
    return claim_interval((lo, hi), boot)


def format_cell(summary: MetricSummary, digits: int, bold: bool = False,
                interval: Optional[Tuple[float, float]] = None) -> str:
    """``'0.8449'``, ``'0.8449 ± 0.0120'`` (more than one value), ``'... [0.8101, 0.8790]'``
    (with a bootstrap interval), ``'n/a'``; bold with ``**``."""
    if summary.mean is None:
        return 'n/a'
    text = f'{summary.mean:.{digits}f}'
    if summary.n > 1 and summary.std is not None:
        text += f' ± {summary.std:.{digits}f}'
    if interval is not None:
        text += f' [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]'
    return f'**{text}**' if bold else text


def _best_rows(table: Table, col_index: int) -> set:
    """``{row index}`` of the column's best row when it is separated from every other row
    (module docstring), else the empty set."""
    column = table.layout.columns[col_index]
    if column.higher_is_better is None:
        return set()
    means = {i: row.cells[col_index].mean for i, row in enumerate(table.rows)
             if row.cells[col_index].mean is not None}
    if len(means) < 2:
        return set()
    sign = 1.0 if column.higher_is_better else -1.0
    best = max(means, key=lambda i: sign * means[i])
    for i in means:
        if i == best:
            continue
        interval = difference_interval(table.rows[best], table.rows[i], col_index)
        if interval is None or sign * (interval[0] if sign > 0 else interval[1]) <= 0:
            return set()
    return {best}


def _escape(text: str) -> str:
    return str(text).replace('|', '\\|')


def _row_label(row: TableRow) -> str:
    if row.seeds_done < row.seeds_total:
        return f'{row.label} [{row.seeds_done}/{row.seeds_total} seeds]'
    return row.label


def format_markdown_grid(table: Table, mark_best: bool = True) -> str:
    """The markdown table alone (header, separator, one line per row)."""
    layout = table.layout
    with_group = any(row.group for row in table.rows)
    best = [_best_rows(table, j) if mark_best else set() for j in range(len(layout.columns))]
    header = (['Group'] if with_group else []) + [layout.row_header] + [
        c.label for c in layout.columns]
    lines = ['| ' + ' | '.join(_escape(h) for h in header) + ' |',
             '|' + '---|' * len(header)]
    previous_group = None
    for i, row in enumerate(table.rows):
        cells = [format_cell(s, c.digits, i in best[j],
                             row.intervals[j] if row.intervals else None)
                 for j, (s, c) in enumerate(zip(row.cells, layout.columns))]
        lead = [_row_label(row)]
        if with_group:
            lead.insert(0, (row.group or '') if row.group != previous_group else '')
            previous_group = row.group
        lines.append('| ' + ' | '.join(_escape(x) for x in lead + cells) + ' |')
    return '\n'.join(lines)


def _footnote(table: Table) -> str:
    seeds = ', '.join(str(s) for s in table.seeds)
    if len(table.seeds) > 1:
        kind = 'sample std' if table.std_ddof == 1 else f'std with ddof={table.std_ddof}'
        spread = f'Mean ± {kind} over seeds {seeds}'
        if any(r.label.endswith(' seeds)') for r in table.rows):
            spread += ' (rows marked "(n seeds)" also over their extra seeds)'
    else:
        spread = f'Seed {seeds} (one seed, no std)'
    return (f'{spread}; [low, high]: 95% bootstrap interval over seeds and evaluation cases; '
            'bold: the best value of a column, only where the 95% interval of its paired '
            'difference to every other row excludes 0; n/a: metric not in the results; '
            '[i/n seeds]: only i of the n runs of the row have finished.')


def format_markdown(table: Table, mark_best: bool = True) -> str:
    """A markdown section: ``### title``, the table, and a note on how it was aggregated."""
    return (f'### {table.layout.title}\n\n{format_markdown_grid(table, mark_best)}\n\n'
            f'{_footnote(table)}\n')


def format_csv(table: Table) -> str:
    """CSV with full-precision numbers: group, row id, label, seeds done, then
    ``<column> mean`` / ``<column> std`` / ``<column> n`` for every column."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    header = ['group', 'row_id', table.layout.row_header, 'seeds']
    for c in table.layout.columns:
        header += [f'{c.label} mean', f'{c.label} std', f'{c.label} n', f'{c.label} ci_low',
                   f'{c.label} ci_high']
    writer.writerow(header)
    for row in table.rows:
        values = [row.group or '', row.row_id, row.label, row.seeds_done]
        intervals = row.intervals or [None] * len(row.cells)
        for s, ci in zip(row.cells, intervals):
            values += ['' if s.mean is None else repr(round(s.mean, 8)),
                       '' if s.std is None else repr(round(s.std, 8)), s.n,
                       '' if ci is None else repr(round(ci[0], 8)),
                       '' if ci is None else repr(round(ci[1], 8))]
        writer.writerow(values)
    return buf.getvalue()


def table_to_json(table: Table) -> dict:
    """The table as plain data (for ``results.json``)."""
    cols = table.layout.columns
    return dict(
        key=table.layout.key, title=table.layout.title,
        columns=[dict(label=c.label, key=c.key, digits=c.digits) for c in cols],
        rows=[dict(row_id=r.row_id, label=r.label, group=r.group, seeds_done=r.seeds_done,
                   seeds_total=r.seeds_total,
                   values={c.label: dict(mean=s.mean, std=s.std, n=s.n,
                                         ci95=list(ci) if ci is not None else None)
                           for c, s, ci in zip(cols, r.cells,
                                               r.intervals or [None] * len(r.cells))})
              for r in table.rows])
