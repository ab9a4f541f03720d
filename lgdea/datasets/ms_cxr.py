"""MS-CXR phrase grounding (Boecking et al., ECCV 2022) on MIMIC-CXR-JPG images."""
import glob
import os.path as osp
import re
from typing import List, Optional

import numpy as np
import pandas as pd

from lgdea.registry import DATASETS
from .base_cxr import BaseCXRDataset, read_table, resolve_file

__all__ = ['MSCXRDataset', 'MS_CXR_CLASSES']

#: The eight MS-CXR finding categories.
MS_CXR_CLASSES = ('Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Lung Opacity',
                  'Pleural Effusion', 'Pneumonia', 'Pneumothorax')

_COLUMNS = ('dicom_id', 'category_name', 'label_text', 'path', 'x', 'y', 'w', 'h',
            'image_width', 'image_height')
_SUBJECT = re.compile(r'(?:^|/)p(\d{6,})/')
_STUDY = re.compile(r'(?:^|/)s(\d+)/')


@DATASETS.register_module()
class MSCXRDataset(BaseCXRDataset):
    """MS-CXR (``MS_CXR_Local_Alignment_v1.x.0.csv``): one record per (image, phrase).

    On-disk layout::

        data_root/                                  (the MS-CXR folder)
          MS_CXR_Local_Alignment_v1.1.0.csv         dicom_id, category_name, label_text,
                                                    path, x, y, w, h, image_width,
                                                    image_height (+ split in v1.1.0)
        image_root/                                 (MIMIC-CXR-JPG root; default data_root)
          files/pXX/pSUBJECT/sSTUDY/DICOM.jpg       = the CSV's ``path`` column

    The CSV has one row per box; the rows of one (``path``, ``label_text``) are grouped into
    one record with all its boxes. Boxes stay in original pixels (``x, y, w, h``), and
    ``ori_shape = (image_height, image_width)`` tells the grounding metric the original size,
    also when the images are read from a resized copy (``preprocessed_root``).

    Record keys: ``img_path``, ``study_id``, ``subject_id`` (from the MIMIC path),
    ``phrase`` (``label_text``), ``category`` (``category_name``), ``gt_label`` (index of
    the category in ``classes``), ``boxes`` (``[N, 4]`` float32), ``ori_shape``. The ``_id``
    of ID lists is the ``dicom_id``.

    Args:
        data_root (str): folder of the MS-CXR CSV.
        ann_file (str, optional): the CSV; default: the newest
            ``MS_CXR_Local_Alignment_v1.*.csv`` in ``data_root``.
        split (str, optional): ``'train'``, ``'val'`` or ``'test'`` (v1.1.0's ``split``
            column); None keeps all rows. A split on a file without the column is an error.
        image_root (str, optional): the MIMIC-CXR-JPG root the ``path`` column is relative
            to. Defaults to ``data_root``.
        preprocessed_root (str, optional): a resized copy of the MIMIC-CXR-JPG tree
            (tools/preprocess_images.py); used instead of ``image_root``. Boxes are not scaled.
        **kwargs: see :class:`BaseCXRDataset` (``views`` defaults to None: the CSV has no
            view column; MS-CXR images are frontal).
    """

    METAINFO = dict(classes=MS_CXR_CLASSES)
    DEFAULT_VIEWS = None
    SPLITS = ('train', 'val', 'test')
    SPLIT_ALIASES = {'validate': 'val', 'valid': 'val', 'validation': 'val'}
    ID_NAME = 'dicom_id'

    def __init__(self,
                 data_root: str,
                 ann_file: Optional[str] = None,
                 split: Optional[str] = None,
                 image_root: Optional[str] = None,
                 preprocessed_root: Optional[str] = None,
                 **kwargs):
        self._ann_name = ann_file
        self.image_root = image_root
        self.preprocessed_root = preprocessed_root
        super().__init__(data_root=data_root, split=split, **kwargs)

    @classmethod
    def normalize_subject_id(cls, subject_id) -> str:
        """``p10000032`` and ``10000032`` are the same MIMIC subject."""
        text = str(subject_id).strip()
        return text[1:] if text.startswith('p') and text[1:].isdigit() else text

    def _find_ann_file(self) -> str:
        if self._ann_name:
            return resolve_file(self._ann_name, [self.data_root], 'annotation file', 'MSCXRDataset',
                                'Pass ann_file= the MS_CXR_Local_Alignment_v1.x.0.csv path.')
        found = sorted(glob.glob(osp.join(self.data_root, 'MS_CXR_Local_Alignment_v1.*.csv*')))
        if not found:
            raise FileNotFoundError(
                f'MSCXRDataset: no MS_CXR_Local_Alignment_v1.*.csv in {self.data_root}; set '
                f'data_root to the MS-CXR folder or pass ann_file=.')
        return found[-1]

    def load_records(self) -> List[dict]:
        path = self._find_ann_file()
        self.ann_file = path
        df = read_table(path, _COLUMNS, 'Expected the MS-CXR local alignment CSV.')
        if self.split is not None:
            if 'split' not in df.columns:
                raise KeyError(f'{path}: split={self.split!r} was requested but the file has no '
                               f'"split" column (MS-CXR v1.0.0); use split=None or v1.1.0.')
            df = df[df['split'].str.strip().str.lower() == self.split]
        for column in ('x', 'y', 'w', 'h', 'image_width', 'image_height'):
            values = pd.to_numeric(df[column], errors='coerce')
            if values.isna().any():
                bad = df[column][values.isna()].iloc[0]
                raise ValueError(f'{path}: column {column!r} holds {bad!r}; expected numbers.')
            df[column] = values
        unknown = sorted(set(df['category_name']) - set(self.classes))
        if unknown:
            raise ValueError(f'{path}: unknown category_name {unknown}; classes are '
                             f'{list(self.classes)} (pass metainfo=dict(classes=...) to extend).')

        root = self.preprocessed_root or self.image_root or self.data_root
        root = osp.abspath(osp.expanduser(root))
        if not osp.isdir(root):
            raise FileNotFoundError(f'MSCXRDataset: image root {root!r} does not exist; set '
                                    f'image_root to the MIMIC-CXR-JPG root (or preprocessed_root).')
        classes = list(self.classes)
        records = []
        for (rel, phrase), group in df.groupby(['path', 'label_text'], sort=False):
            first = group.iloc[0]
            rel = str(rel).strip().replace('\\', '/')
            if group['category_name'].nunique() > 1 or group['dicom_id'].nunique() > 1:
                raise ValueError(f'{path}: rows of ({rel!r}, {phrase!r}) disagree on '
                                 f'category_name or dicom_id.')
            subject = _SUBJECT.search(rel)
            study = _STUDY.search(rel)
            boxes = group[['x', 'y', 'w', 'h']].to_numpy(dtype=np.float32).reshape(-1, 4)
            records.append(dict(
                img_path=osp.join(root, rel),
                study_id=study.group(1) if study else str(first['dicom_id']),
                subject_id=subject.group(1) if subject else str(first['dicom_id']),
                phrase=str(phrase),
                category=str(first['category_name']),
                gt_label=classes.index(first['category_name']),
                boxes=boxes,
                ori_shape=(int(first['image_height']), int(first['image_width'])),
                _id=str(first['dicom_id'])))
        self.load_stats.update(rows=len(df), records=len(records))
        return records
