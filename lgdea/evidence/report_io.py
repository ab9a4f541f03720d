"""Reading report files for evidence extraction (``tools/extract_evidence.py --reports``)."""
import csv
import io
import json
import os
from typing import List, Optional, Tuple

from .base import normalize_report_text


def format_sectioned_report(findings: Optional[str] = None,
                            impression: Optional[str] = None) -> Optional[str]:
    """The dataset report text of separate sections: whitespace-normalised sections joined
    by one space, in the order findings, impression (missing parts left out).

    This matches the ``report`` key that the datasets build (``IUXrayDataset`` and
    ``lgdea.datasets.section_parser.extract_report`` join sections with ``' '``), so that
    a report file in section form hashes to the same cache keys as the dataset records.

    Returns:
        The text, or None when both sections are empty.
    """
    parts = [normalize_report_text(str(p)) for p in (findings, impression)
             if p and str(p).strip()]
    return ' '.join(parts) if parts else None


def _record_text(rec: dict, where: str) -> Optional[str]:
    if 'report' in rec:
        text = rec['report']
    elif 'text' in rec:
        text = rec['text']
    elif 'findings' in rec or 'impression' in rec:
        text = format_sectioned_report(rec.get('findings'), rec.get('impression'))
    else:
        raise ValueError(f'{where}: a record needs a "report" (or "text") field, or '
                         f'"findings"/"impression" fields; found keys {sorted(rec)[:12]}')
    if text is not None and not isinstance(text, str):
        raise ValueError(f'{where}: the report field must be a string, got {type(text).__name__}')
    return text if text and text.strip() else None


def _decoded_text(path: str) -> str:
    """The file's text as UTF-8 (a leading byte-order mark is dropped); a byte that is not
    UTF-8 is an error naming the file, line and column."""
    with open(path, 'rb') as f:
        data = f.read()
    try:
        return data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        line = data.count(b'\n', 0, e.start) + 1
        column = e.start - (data.rfind(b'\n', 0, e.start) + 1) + 1
        raise ValueError(
            f'{path}: line {line}, column {column}: byte 0x{data[e.start]:02x} is not UTF-8 '
            f'({e.reason}); report files must be UTF-8. Convert the file from the encoding it '
            f'was written in, e.g. `iconv -f latin1 -t utf-8 {path} > {path}.utf8` (or '
            f'cp1252), and pass the converted file.') from None


def read_reports(path: str) -> Tuple[List[Tuple[str, str]], int]:
    """Read ``(id, report_text)`` pairs from a JSONL or CSV file.

    JSONL: one object a line with ``id`` and ``report`` (or ``text``), or the IU X-ray
    record form (``id``, ``findings``, ``impression``: see :func:`format_sectioned_report`).
    CSV: a ``report`` (or ``text``) column and an optional ``id`` column.

    Returns:
        ``(pairs, n_empty)``: the reports with text, and how many records had none.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'--reports: no such file {path!r}')
    pairs: List[Tuple[str, str]] = []
    n_empty = 0
    if path.lower().endswith('.csv'):
        with io.StringIO(_decoded_text(path), newline='') as f:
            reader = csv.DictReader(f)
            cols = reader.fieldnames or []
            if 'report' not in cols and 'text' not in cols:
                raise ValueError(f'{path}: the CSV needs a "report" or "text" column; '
                                 f'columns are {cols}')
            for i, row in enumerate(reader):
                text = _record_text({k: v for k, v in row.items() if k in ('report', 'text')},
                                    f'{path}: row {i + 2}')
                if text is None:
                    n_empty += 1
                    continue
                pairs.append((str(row.get('id') or i), text))
        return pairs, n_empty
    with io.StringIO(_decoded_text(path)) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f'{path}: line {lineno} is not valid JSON ({e}); expected one '
                                 'object per line with "id" and "report"') from None
            if not isinstance(rec, dict):
                raise ValueError(f'{path}: line {lineno} must be a JSON object')
            text = _record_text(rec, f'{path}: line {lineno}')
            if text is None:
                n_empty += 1
                continue
            pairs.append((str(rec.get('id', lineno)), text))
    return pairs, n_empty
