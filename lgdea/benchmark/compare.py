"""``tools/benchmark.py --compare A.json B.json``: two benchmark results side by side, the
protocol differences first (docs/benchmark.md, "Comparing two results").

:func:`load_results` reads and checks a ``results.json``; :func:`compare_results` lists the
protocol fields in which the two differ (:func:`~lgdea.benchmark.protocol.protocol_differences`
on their ``protocol`` sections) and every table cell of both (mean, std, n) with the
difference of the means; :func:`format_compare` prints that as markdown.
"""
import json
import math
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .protocol import PROTOCOL_FIELDS, protocol_differences
from .spec import format_pairing

__all__ = ['ResultsFileError', 'MetricPair', 'Comparison', 'load_results', 'compare_results',
           'format_compare']

_HOW_TO_GET_ONE = ('pass the results.json that `python tools/benchmark.py SPEC` (or `SPEC '
                   '--collect`) writes in the spec work dir')


class ResultsFileError(ValueError):
    """A ``--compare`` argument is missing, not JSON, or not a benchmark results file; the
    message names the file and what to pass instead."""


def load_results(path: str) -> dict:
    """The contents of a ``results.json`` written by :class:`~lgdea.benchmark.BenchmarkRunner`.

    Raises:
        ResultsFileError: the file is missing, a directory, not JSON, or lacks the ``runs``
            and ``tables`` of a results file.
    """
    if osp.isdir(path):
        inside = osp.join(path, 'results.json')
        hint = f'; did you mean {inside}?' if osp.isfile(inside) else f'; {_HOW_TO_GET_ONE}'
        raise ResultsFileError(f'{path} is a directory, not a results file{hint}')
    if not osp.isfile(path):
        raise ResultsFileError(f'{path} does not exist; {_HOW_TO_GET_ONE}')
    try:
        with open(path) as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsFileError(f'{path} is not JSON ({exc}); {_HOW_TO_GET_ONE}') from exc
    if not isinstance(data, dict) or not isinstance(data.get('tables'), dict) or \
            not isinstance(data.get('runs'), list):
        raise ResultsFileError(
            f'{path} is not a benchmark results file (it has no `runs` list and `tables` '
            'object; per-run *_test_results.json and demo_results.json are not accepted); '
            + _HOW_TO_GET_ONE)
    return data


@dataclass
class MetricPair:
    """One table cell in both files (None where a file lacks it); ``delta`` = B - A."""

    table: str
    row: str
    column: str
    digits: int
    a: Optional[dict]
    b: Optional[dict]

    @property
    def delta(self) -> Optional[float]:
        means = [c.get('mean') if c else None for c in (self.a, self.b)]
        if any(m is None or not math.isfinite(m) for m in means):
            return None
        return means[1] - means[0]


@dataclass
class Comparison:
    """What :func:`compare_results` found.

    ``protocol`` holds ``(field label, value in A, value in B)`` per differing field (empty
    when a file has no card); ``unknown_protocol`` the paths of files without a card;
    ``settings_only_in`` ``(setting id, path)`` of settings with finished runs in one file
    only (their protocol is not compared).
    """

    path_a: str
    path_b: str
    protocol: List[Tuple[str, str, str]]
    unknown_protocol: List[str]
    settings_only_in: List[Tuple[str, str]] = field(default_factory=list)
    metrics: List[MetricPair] = field(default_factory=list)
    tables_only_in: List[Tuple[str, str]] = field(default_factory=list)


def _settings(data: dict) -> Dict[str, str]:
    """``{run id: setting id}`` of the finished runs of a results file (the setting id is
    the run id without the seed, ``<name>_p<pairing>``)."""
    out = {}
    for run in data['runs']:
        if run.get('status') == 'finished' and 'name' in run and 'pairing' in run:
            out[run['run_id']] = f'{run["name"]}_p{format_pairing(run["pairing"])}'
    return out


def _rows(table: dict) -> dict:
    return {row['row_id']: row for row in table.get('rows') or []}


def compare_results(a: dict, b: dict, path_a: str = 'A', path_b: str = 'B') -> Comparison:
    """Protocol differences and side-by-side metrics of two loaded results files."""
    missing = [p for p, d in ((path_a, a), (path_b, b)) if not isinstance(d.get('protocol'),
                                                                             dict)]
    settings_a, settings_b = _settings(a), _settings(b)
    protocol = [] if missing else protocol_differences(a['protocol'], b['protocol'],
                                                       settings_a, settings_b)
    out = Comparison(path_a, path_b, protocol, missing,
                     settings_only_in=[(s, path_a) for s in sorted(
                         set(settings_a.values()) - set(settings_b.values()))]
                     + [(s, path_b) for s in sorted(
                         set(settings_b.values()) - set(settings_a.values()))])
    for key in list(a['tables']) + [k for k in b['tables'] if k not in a['tables']]:
        if key not in a['tables'] or key not in b['tables']:
            out.tables_only_in.append((key, path_a if key in a['tables'] else path_b))
            continue
        ta, tb = a['tables'][key], b['tables'][key]
        rows_a, rows_b = _rows(ta), _rows(tb)
        columns = list(ta.get('columns') or [])
        labels = {c['label'] for c in columns}
        columns += [c for c in tb.get('columns') or [] if c['label'] not in labels]
        for row_id in list(rows_a) + [r for r in rows_b if r not in rows_a]:
            ra, rb = rows_a.get(row_id), rows_b.get(row_id)
            label = (ra or rb).get('label') or row_id
            for col in columns:
                out.metrics.append(MetricPair(
                    key, label, col['label'], int(col.get('digits', 2)),
                    (ra or {}).get('values', {}).get(col['label']),
                    (rb or {}).get('values', {}).get(col['label'])))
    return out


def _cell(cell: Optional[dict], digits: int) -> str:
    if not cell or cell.get('mean') is None:
        return 'n/a'
    text = f'{cell["mean"]:.{digits}f}'
    if cell.get('std') is not None and (cell.get('n') or 0) > 1:
        text += f' ± {cell["std"]:.{digits}f}'
    return text + f' (n={cell.get("n")})'


def _escape(text: str) -> str:
    return str(text).replace('|', '\\|')


def format_compare(cmp: Comparison, tables: Optional[dict] = None) -> str:
    """The comparison as markdown: the protocol differences, then one table per results
    table (``tables``: ``{key: title}`` for the headings)."""
    lines = [f'# Comparison: A = {cmp.path_a}, B = {cmp.path_b}', '', '## Protocol differences',
             '']
    for path in cmp.unknown_protocol:
        lines.append(f'Protocol unknown for {path}: the file has no protocol card (it was '
                     'written before tools/benchmark.py recorded one). Regenerate it with '
                     '`python tools/benchmark.py SPEC --collect --work-dir <its work dir>`; '
                     'until then the numbers below may not be comparable.')
    if not cmp.unknown_protocol:
        if cmp.protocol:
            lines += [f'{len(cmp.protocol)} of {len(PROTOCOL_FIELDS)} protocol fields differ; '
                      'the numbers below are comparable only as far as these allow:', '',
                      '| field | A | B |', '|---|---|---|']
            lines += [f'| {_escape(f)} | {_escape(va)} | {_escape(vb)} |'
                      for f, va, vb in cmp.protocol]
        else:
            lines.append(f'None: all {len(PROTOCOL_FIELDS)} protocol fields agree.')
    for setting, path in cmp.settings_only_in:
        lines.append(f'Setting {setting} has finished runs only in {path} (not compared).')
    lines += ['', '## Metrics (mean ± std over seeds, n runs; Δ = B − A)', '']
    current = None
    for m in cmp.metrics:
        if m.table != current:
            current = m.table
            title = (tables or {}).get(m.table, m.table)
            if lines[-1]:
                lines.append('')
            lines += [f'### {title}', '', '| row | column | A | B | Δ (B − A) |',
                      '|---|---|---|---|---|']
        delta = 'n/a' if m.delta is None else f'{m.delta:+.{m.digits}f}'
        lines.append(f'| {_escape(m.row)} | {_escape(m.column)} | {_cell(m.a, m.digits)} | '
                     f'{_cell(m.b, m.digits)} | {delta} |')
    for key, path in cmp.tables_only_in:
        lines += ['', f'Table `{key}` is only in {path}.']
    return '\n'.join(lines) + '\n'
