"""A generic image-text-labels format for bringing your own chest X-ray data."""
import json
import logging
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd
from mmengine.logging import print_log

from lgdea.evidence.base import normalize_report_text
from lgdea.registry import DATASETS
from .base_cxr import BaseCXRDataset, normalize_view, read_table, utf8_error

__all__ = ['GenericVLDataset']

_FIELDS = ('image', 'report', 'study_id', 'subject_id', 'view', 'label', 'labels', 'split')


def _blank(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


@DATASETS.register_module()
class GenericVLDataset(BaseCXRDataset):
    """Image-text-label pairs from one CSV or JSONL file.

    On-disk layout::

        data_root/
          annotations.csv   (or .csv.gz, or .jsonl: one JSON object per line)
          <images, at the paths the file gives relative to data_root>

    Columns (CSV) / keys (JSONL); only ``image`` or ``report`` is needed:

    ============  ==================================================================
    ``image``     image path relative to ``data_root`` (or absolute); blank = a
                  report-only row (``img_path=None``)
    ``report``    report text; blank = None (no usable text)
    ``study_id``  pairing unit (default: the image path without its suffix, or the
                  row number for report-only rows)
    ``subject_id`` patient (default: ``study_id``)
    ``view``      view position (``PA``, ``AP``, ``LATERAL`` ...), upper-cased
    ``label``     single class name -> ``gt_label`` (index into ``classes``)
    ``labels``    multi-label: a JSON list or a ``|``-separated string of class names
                  -> ``gt_score`` (multi-hot float32; an empty cell = all zeros)
    ``split``     optional; the ``split`` option keeps the rows with this value
    ============  ==================================================================

    ``column_map`` renames your columns to these fields (``dict(label='diagnosis')`` reads
    the ``diagnosis`` column as ``label``) and ``label_map`` translates raw label values
    (``{1: 'COVID', 0: 'Normal'}``). ``classes`` fixes the class order; when None, it is
    inferred from the data (sorted) and stored in ``metainfo['classes']`` at load time. A
    label outside the given ``classes`` is an error naming the file and row. The ``_id`` of
    ID lists is the ``image`` value (or ``study_id`` for report-only rows).

    Args:
        data_root (str): folder the image paths are relative to.
        ann_file (str): the CSV / JSONL file (relative to ``data_root`` or absolute).
        classes (Sequence[str], optional): class names.
        column_map (dict, optional): field -> column name in the file.
        label_map (dict, optional): raw label value -> class name.
        split (str, optional): keep rows whose ``split`` column equals this.
        views: defaults to None (all); give e.g. ``('PA', 'AP')`` to keep frontal images.
        **kwargs: see :class:`BaseCXRDataset`.
    """

    METAINFO = dict(classes=())
    DEFAULT_VIEWS = None
    ID_NAME = 'image'

    def __init__(self,
                 data_root: str,
                 ann_file: str,
                 classes: Optional[Sequence[str]] = None,
                 column_map: Optional[Dict[str, str]] = None,
                 label_map: Optional[dict] = None,
                 split: Optional[str] = None,
                 **kwargs):
        column_map = dict(column_map or {})
        unknown = set(column_map) - set(_FIELDS)
        if unknown:
            raise ValueError(f'GenericVLDataset: column_map keys {sorted(unknown)} are not fields '
                             f'of the format; use {list(_FIELDS)}.')
        self.column_map = column_map
        self.label_map = {str(k): v for k, v in (label_map or {}).items()}
        self._ann_name = ann_file
        self._given_classes = tuple(classes) if classes is not None else None
        if classes is not None:
            metainfo = dict(kwargs.pop('metainfo', None) or {})
            metainfo['classes'] = tuple(classes)
            kwargs['metainfo'] = metainfo
        super().__init__(data_root=data_root, split=split, **kwargs)

    def _check_split(self, split):
        return split  # any value of the file's split column

    def _read(self) -> pd.DataFrame:
        if not self._ann_name:
            raise ValueError('GenericVLDataset: ann_file (CSV or JSONL) is required.')
        name = self._ann_name
        is_jsonl = name.endswith(('.jsonl', '.jsonl.gz', '.json'))
        if is_jsonl:
            path = name if osp.isabs(name) else osp.join(self.data_root, name)
            if not osp.isfile(path):
                raise FileNotFoundError(f'GenericVLDataset: annotation file {path!r} not found.')
            rows = []
            opener = open
            if path.endswith('.gz'):
                import gzip
                opener = gzip.open
            try:
                with opener(path, 'rt', encoding='utf-8') as f:
                    for line_no, line in enumerate(f, 1):
                        if line.strip():
                            try:
                                rows.append(json.loads(line))
                            except json.JSONDecodeError as exc:
                                raise ValueError(
                                    f'{path}: line {line_no} is not JSON ({exc}).') from exc
            except UnicodeDecodeError as exc:
                raise utf8_error(path, exc) from exc
            df = pd.DataFrame(rows)
        else:
            path = self.resolve_ann_file(name, name, 'Pass ann_file= the CSV of your data.')
            df = read_table(path)
        self.ann_file = path
        renamed = {}
        for field, column in self.column_map.items():
            if column not in df.columns:
                raise KeyError(f'{path}: column {column!r} (column_map {field}=) not found; '
                               f'columns are {list(df.columns)}.')
            renamed[column] = field
        df = df.rename(columns=renamed)
        if 'image' not in df.columns and 'report' not in df.columns:
            raise KeyError(f'{path}: needs an "image" or a "report" column (found '
                           f'{list(df.columns)}); rename yours or pass column_map=.')
        if 'label' in df.columns and 'labels' in df.columns:
            raise KeyError(f'{path}: has both "label" and "labels"; keep one (single-label or '
                           f'multi-label) or map one away with column_map.')
        if 'image' not in df.columns:
            print_log(f'{path}: no "image" column (columns are {list(df.columns)}): every row '
                      'is a report without an image. If your images are in another column, '
                      'pass column_map=dict(image=<its name>).', logger='current',
                      level=logging.WARNING)
        return df

    def _label_name(self, value) -> str:
        """Raw label value -> class name (``label_map`` applied; ``1.0`` read as ``1``)."""
        key = str(value).strip()
        if key.endswith('.0') and key[:-2].lstrip('-').isdigit():
            key = key[:-2]
        return self.label_map.get(key, key)

    def _split_labels(self, value, path: str, row: int) -> List[str]:
        """A ``labels`` cell (list, JSON list or ``a|b`` string) -> class names."""
        if isinstance(value, (list, tuple, np.ndarray)):
            items = list(value)
        elif _blank(value):
            return []
        else:
            text = str(value).strip()
            if text.startswith('['):
                try:
                    items = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f'{path}: data row {row}: labels {text!r} is not a JSON '
                                     f'list.') from exc
            else:
                items = text.split('|')
        return [self._label_name(v) for v in items if not _blank(v)]

    def load_records(self) -> List[dict]:
        df = self._read()
        path = self.ann_file
        if self.split is not None:
            if 'split' not in df.columns:
                raise KeyError(f'{path}: split={self.split!r} but the file has no "split" column.')
            df = df[df['split'].astype(str).str.strip() == str(self.split)]
        rows = df.to_dict('records')

        label_field = next((c for c in ('label', 'labels') if c in df.columns), None)
        parsed_labels = []
        if label_field == 'label':
            parsed_labels = [None if _blank(r['label']) else self._label_name(r['label'])
                             for i, r in enumerate(rows)]
            found = {v for v in parsed_labels if v is not None}
        elif label_field == 'labels':
            parsed_labels = [self._split_labels(r['labels'], path, i + 1)
                             for i, r in enumerate(rows)]
            found = {v for items in parsed_labels for v in items}
        else:
            found = set()
        if self._given_classes is not None:
            classes = list(self._given_classes)
        else:
            classes = sorted(found)
            self._set_classes(classes)
        for i, value in enumerate(parsed_labels):
            values = value if isinstance(value, list) else ([] if value is None else [value])
            for v in values:
                if v not in classes:
                    raise ValueError(f'{path}: data row {i + 1}: label {v!r} is not one of the '
                                     f'classes {classes}; fix the file, classes= or label_map=.')

        records = []
        for i, row in enumerate(rows):
            image = row.get('image')
            image = None if _blank(image) else str(image).strip()
            report = row.get('report')
            report = None if _blank(report) else normalize_report_text(str(report))
            if image is None and report is None:
                raise ValueError(f'{path}: data row {i + 1} has neither an image nor a report.')
            study = row.get('study_id')
            if _blank(study):
                study = osp.splitext(image)[0] if image else f'row{i}'
            else:
                study = str(study).strip()
            subject = row.get('subject_id')
            subject = study if _blank(subject) else str(subject).strip()
            record = dict(
                img_path=(image if osp.isabs(image) else osp.join(self.data_root, image))
                if image else None,
                study_id=study,
                subject_id=subject)
            if 'report' in df.columns:
                record['report'] = report
            view = normalize_view(row.get('view'))
            if view is not None:
                record['view'] = view
            if label_field == 'label' and parsed_labels[i] is not None:
                record['gt_label'] = classes.index(parsed_labels[i])
            elif label_field == 'labels':
                score = np.zeros(len(classes), dtype=np.float32)
                for v in parsed_labels[i]:
                    score[classes.index(v)] = 1.0
                record['gt_score'] = score
            record['_id'] = image if image else study
            records.append(record)
        if not records:  # mmengine would fail later with "need at least one array to concatenate"
            raise ValueError(f'{path}: holds no data rows (only a header); point ann_file at '
                             'the annotation file of your data.')
        self.load_stats['rows'] = len(rows)
        return records
