"""MIMIC-CXR-JPG 2.x with the MIMIC-CXR free-text reports."""
import json
import logging
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from lgdea.registry import DATASETS
from .base_cxr import (CHEXPERT_CLASSES, FRONTAL_VIEWS, BaseCXRDataset, map_chexpert_labels,
                       normalize_view, read_table, resolve_file)
from .section_parser import extract_report

__all__ = ['MIMICCXRDataset', 'mimic_image_relpath', 'mimic_report_relpath']


def mimic_image_relpath(subject_id: str, study_id: str, dicom_id: str) -> str:
    """``files/pXX/pSUBJECT/sSTUDY/DICOM.jpg`` (XX = first two digits of the subject)."""
    return f'files/p{subject_id[:2]}/p{subject_id}/s{study_id}/{dicom_id}.jpg'


def mimic_report_relpath(subject_id: str, study_id: str) -> str:
    """``files/pXX/pSUBJECT/sSTUDY.txt`` relative to the report root."""
    return f'files/p{subject_id[:2]}/p{subject_id}/s{study_id}.txt'


def _strip_prefix(value: str, prefix: str) -> str:
    value = str(value).strip()
    if value.endswith('.0'):  # a numeric column read as float somewhere upstream
        value = value[:-2]
    return value[1:] if value.startswith(prefix) and value[1:].isdigit() else value


@DATASETS.register_module()
class MIMICCXRDataset(BaseCXRDataset):
    """MIMIC-CXR-JPG 2.x images with the sectioned MIMIC-CXR reports.

    On-disk layout (``data_root`` = the MIMIC-CXR-JPG root, e.g.
    ``physionet.org/files/mimic-cxr-jpg/2.0.0``)::

        data_root/
          mimic-cxr-2.0.0-split.csv(.gz)      dicom_id, study_id, subject_id, split
                                              (split: train / validate / test)
          mimic-cxr-2.0.0-metadata.csv(.gz)   dicom_id, subject_id, study_id, ...,
                                              ViewPosition, Rows, Columns, ...
          mimic-cxr-2.0.0-chexpert.csv(.gz)   subject_id, study_id + 14 label columns
                                              (1 / 0 / -1 / blank)
          files/pXX/pSUBJECT/sSTUDY/DICOM.jpg
        report_root/                          (default: data_root; the MIMIC-CXR root)
          files/pXX/pSUBJECT/sSTUDY.txt       (``report_root`` may also be the
                                               ``files`` folder itself)
        preprocessed_root/                    (optional, tools/preprocess_images.py)
          files/pXX/.../DICOM.jpg             resized copies, same relative paths
          sizes.csv                           path, width, height of the originals

    One record per image: ``img_path``, ``study_id``, ``subject_id`` (digits, no ``s``/``p``
    prefix), ``view``, ``report`` (sectioned text or None), ``gt_score`` (``[C]`` float32
    CheXpert labels, NaN = blank / uncertain by default), ``ori_shape`` (only with
    ``preprocessed_root``), and ``gt_label`` when ``split_file`` has a ``label`` column
    (MIMIC-5x200). The ``_id`` of ID lists is the ``dicom_id``.

    Reports: :func:`lgdea.datasets.section_parser.extract_report` keeps ``sections`` (default
    findings then impression) and falls back to the last paragraph when a report has
    neither. A study whose report has no usable section gets ``report=None`` (its images
    stay usable as unpaired images); a missing report file gives ``report=None`` and a
    counted warning. Counts are in ``dataset.load_stats``.

    Args:
        data_root (str): the MIMIC-CXR-JPG root.
        split (str, optional): ``'train'``, ``'validate'`` (alias ``'val'``), ``'test'`` or
            None (all).
        views: defaults to frontal ``('PA', 'AP')``.
        report_root (str, optional): root of the report files; defaults to ``data_root``.
        with_report (bool): read the reports. Defaults to True.
        sections (Sequence[str]): report sections to keep, in order.
        with_labels (bool): attach CheXpert labels as ``gt_score``. Defaults to True.
        classes (Sequence[str], optional): label columns for ``gt_score`` and the classes of
            ``gt_label``; defaults to the 14 CheXpert observations. MIMIC-5x200 uses the five
            competition tasks.
        uncertain (str): -1 -> ``'ignore'`` (NaN, default), ``'ones'`` or ``'zeros'``.
        blank (str): blank label -> ``'nan'`` (default) or ``'zeros'``.
        split_csv / metadata_csv / chexpert_csv (str): file names (``.csv`` or ``.csv.gz``).
        preprocessed_root (str, optional): read images from this resized copy of the tree;
            ``ori_shape`` then comes from its ``sizes.csv`` (or the metadata ``Rows`` /
            ``Columns`` when an image is missing there).
        report_cache (str, optional): a JSON file of sectioned reports (per study, for these
            ``sections``); created on the first load and reused (and extended) afterwards,
            so that every process does not re-read ~230k report files. Delete it when the
            reports or the parser change.
        **kwargs: see :class:`BaseCXRDataset` (exclusion list, ID list, check_files, ...).
    """

    METAINFO = dict(classes=CHEXPERT_CLASSES)
    DEFAULT_VIEWS = FRONTAL_VIEWS
    SPLITS = ('train', 'validate', 'test')
    SPLIT_ALIASES = {'val': 'validate', 'valid': 'validate', 'validation': 'validate'}
    ID_NAME = 'dicom_id'

    def __init__(self,
                 data_root: str,
                 split: Optional[str] = None,
                 report_root: Optional[str] = None,
                 with_report: bool = True,
                 sections: Sequence[str] = ('findings', 'impression'),
                 with_labels: bool = True,
                 classes: Optional[Sequence[str]] = None,
                 uncertain: str = 'ignore',
                 blank: str = 'nan',
                 split_csv: str = 'mimic-cxr-2.0.0-split.csv',
                 metadata_csv: str = 'mimic-cxr-2.0.0-metadata.csv',
                 chexpert_csv: str = 'mimic-cxr-2.0.0-chexpert.csv',
                 preprocessed_root: Optional[str] = None,
                 report_cache: Optional[str] = None,
                 **kwargs):
        self.report_root = report_root
        self.with_report = with_report
        self.sections = tuple(sections)
        self.with_labels = with_labels
        self.label_classes = tuple(classes) if classes else CHEXPERT_CLASSES
        self.uncertain = uncertain
        self.blank = blank
        self.split_csv = split_csv
        self.metadata_csv = metadata_csv
        self.chexpert_csv = chexpert_csv
        self.preprocessed_root = preprocessed_root
        self.report_cache = osp.abspath(osp.expanduser(report_cache)) if report_cache else None
        if classes:
            metainfo = dict(kwargs.pop('metainfo', None) or {})
            metainfo['classes'] = tuple(classes)
            kwargs['metainfo'] = metainfo
        super().__init__(data_root=data_root, split=split, **kwargs)

    @classmethod
    def normalize_subject_id(cls, subject_id) -> str:
        """``p10000032`` and ``10000032`` are the same subject."""
        return _strip_prefix(subject_id, 'p')

    # ----------------------------------------------------------------------------------
    def _report_base(self) -> str:
        root = osp.abspath(osp.expanduser(self.report_root)) if self.report_root else self.data_root
        if not osp.isdir(root):
            raise FileNotFoundError(f'MIMICCXRDataset: report_root {root!r} does not exist; set it '
                                    f'to the MIMIC-CXR folder that holds files/pXX/pSUBJECT/'
                                    f'sSTUDY.txt, or with_report=False.')
        # accept the MIMIC-CXR root (which holds files/) or the files/ folder itself
        if osp.basename(osp.normpath(root)) == 'files' and not osp.isdir(osp.join(root, 'files')):
            return osp.dirname(osp.normpath(root))
        return root

    def _load_reports(self, table: pd.DataFrame):
        """Sectioned report of every study of ``table`` (through ``report_cache`` if set).

        Returns:
            ``({study_id: text or None}, [paths of missing report files])``.
        """
        cache = {}
        cache_path = self.report_cache
        if cache_path and osp.isfile(cache_path):
            with open(cache_path, encoding='utf-8') as f:
                stored = json.load(f)
            if stored.get('sections') == list(self.sections):
                cache = stored.get('reports', {})
            else:
                self._log(f'report_cache {cache_path} was built for sections '
                          f'{stored.get("sections")}; rebuilding it', logging.WARNING)
        report_base = self._report_base()
        reports, missing, added = {}, [], 0
        for subject, study in table[['subject_id', 'study_id']].drop_duplicates().itertuples(
                index=False):
            path = osp.join(report_base, mimic_report_relpath(subject, study))
            entry = cache.get(study)
            if entry is None:
                if osp.isfile(path):
                    with open(path, encoding='utf-8', errors='replace') as f:
                        entry = dict(text=extract_report(f.read(), self.sections))
                else:
                    entry = dict(missing=True)
                cache[study] = entry
                added += 1
            if entry.get('missing'):
                missing.append(path)
                reports[study] = None
            else:
                reports[study] = entry.get('text')
        if cache_path and added:
            os.makedirs(osp.dirname(osp.abspath(cache_path)), exist_ok=True)
            tmp = f'{cache_path}.tmp{os.getpid()}'
            with open(tmp, 'w', encoding='utf-8') as f:
                json.dump(dict(sections=list(self.sections), reports=cache), f)
            os.replace(tmp, cache_path)
        return reports, missing

    def _read_sizes(self, root: str) -> Dict[str, tuple]:
        """``sizes.csv`` of tools/preprocess_images.py -> {relative path: (h, w)}.

        Accepts the file at ``root/sizes.csv`` (the tool ran on the MIMIC-CXR-JPG root) or at
        ``root/files/sizes.csv`` (it ran on ``files/``; its paths then lack ``files/``).
        """
        prefix = ''
        at_root = any(osp.isfile(osp.join(root, n)) for n in ('sizes.csv', 'sizes.csv.gz'))
        if not at_root and osp.isfile(osp.join(root, 'files', 'sizes.csv')):
            root, prefix = osp.join(root, 'files'), 'files/'
        path = resolve_file('sizes.csv', [root], 'sizes file', 'MIMICCXRDataset',
                            'Run tools/preprocess_images.py, which writes sizes.csv next to the '
                            'resized images.')
        df = read_table(path, ['path', 'width', 'height'])
        return {prefix + p.replace('\\', '/'): (int(h), int(w))
                for p, w, h in zip(df['path'], df['width'], df['height'])}

    def load_records(self) -> List[dict]:
        root = self.data_root
        hint = ('MIMIC-CXR-JPG ships it at its root; set data_root to that folder or pass the '
                'file name option.')
        split_path = self.resolve_ann_file(self.split_csv, self.split_csv, hint)
        meta_path = self.resolve_ann_file(self.metadata_csv, self.metadata_csv, hint)
        split_df = read_table(split_path, ['dicom_id', 'study_id', 'subject_id', 'split'])
        meta_df = read_table(meta_path, ['dicom_id', 'ViewPosition'])
        self.ann_file = split_path

        unknown_splits = sorted(set(split_df['split'].dropna()) - set(self.SPLITS))
        if unknown_splits:
            raise ValueError(f'{split_path}: column "split" holds {unknown_splits}; expected '
                             f'{list(self.SPLITS)}.')
        if self.split is not None:
            split_df = split_df[split_df['split'] == self.split]
        keep_cols = ['dicom_id', 'ViewPosition'] + [c for c in ('Rows', 'Columns')
                                                    if c in meta_df.columns]
        table = split_df.merge(meta_df[keep_cols], on='dicom_id', how='left')
        no_meta = int((~table['dicom_id'].isin(meta_df['dicom_id'])).sum())
        table['subject_id'] = [_strip_prefix(s, 'p') for s in table['subject_id']]
        table['study_id'] = [_strip_prefix(s, 's') for s in table['study_id']]

        labels: Dict[str, np.ndarray] = {}
        if self.with_labels:
            chex_path = self.resolve_ann_file(self.chexpert_csv, self.chexpert_csv, hint)
            chex_df = read_table(chex_path, ['study_id', *self.label_classes])
            scores = map_chexpert_labels(chex_df, self.label_classes, chex_path, self.uncertain,
                                         self.blank)
            for study, score in zip(chex_df['study_id'], scores):
                labels[_strip_prefix(study, 's')] = score

        reports: Dict[str, Optional[str]] = {}
        missing_reports: List[str] = []
        no_section = 0
        if self.with_report:
            reports, missing_reports = self._load_reports(table)
            no_section = sum(1 for s, t in reports.items() if t is None) - len(missing_reports)

        image_base = root
        sizes: Dict[str, tuple] = {}
        if self.preprocessed_root:
            image_base = osp.abspath(osp.expanduser(self.preprocessed_root))
            if not osp.isdir(image_base):
                raise FileNotFoundError(f'MIMICCXRDataset: preprocessed_root {image_base!r} does '
                                        f'not exist; run tools/preprocess_images.py first or set '
                                        f'preprocessed_root=None.')
            sizes = self._read_sizes(image_base)

        nan_score = np.full(len(self.label_classes), np.nan, dtype=np.float32)
        has_rows = 'Rows' in table.columns and 'Columns' in table.columns
        records = []
        for row in table.itertuples(index=False):
            rel = mimic_image_relpath(row.subject_id, row.study_id, row.dicom_id)
            record = dict(
                img_path=osp.join(image_base, rel),
                study_id=row.study_id,
                subject_id=row.subject_id,
                view=normalize_view(row.ViewPosition),
                _id=row.dicom_id)
            if self.with_report:
                record['report'] = reports[row.study_id]
            if self.with_labels:
                record['gt_score'] = labels.get(row.study_id, nan_score).copy()
            if self.preprocessed_root:
                shape = sizes.get(rel)
                if shape is None and has_rows and not pd.isna(row.Rows):
                    shape = (int(float(row.Rows)), int(float(row.Columns)))
                if shape is not None:
                    record['ori_shape'] = shape
            records.append(record)

        self.load_stats.update(
            images=len(records),
            studies=len(reports) if self.with_report else int(table['study_id'].nunique()),
            images_without_metadata=no_meta,
            missing_report_files=len(missing_reports),
            reports_without_usable_section=no_section)
        if self.with_labels:
            self.load_stats['studies_without_labels'] = int(
                (~table['study_id'].drop_duplicates().isin(list(labels))).sum())
        if missing_reports:
            self._log(f'{len(missing_reports)} report files are missing (report=None), e.g. '
                      f'{missing_reports[:3]}', logging.WARNING)
        if no_section:
            self._log(f'{no_section} reports have no usable section {self.sections} '
                      f'(report=None; their images stay in the unpaired pool)', logging.WARNING)
        return records
