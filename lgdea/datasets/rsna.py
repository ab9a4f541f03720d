"""RSNA Pneumonia Detection Challenge (2018), stage 2 training set."""
import os.path as osp
from typing import List, Optional

import numpy as np
import pandas as pd

from lgdea.registry import DATASETS
from .base_cxr import BaseCXRDataset, read_table

__all__ = ['RSNAPneumoniaDataset', 'read_rsna_labels', 'RSNA_CLASSES']

RSNA_CLASSES = ('Normal', 'Pneumonia')
_COLUMNS = ('patientId', 'x', 'y', 'width', 'height', 'Target')


def read_rsna_labels(path: str) -> pd.DataFrame:
    """Read ``stage_2_train_labels.csv(.gz)`` into one row per patient.

    Returns a DataFrame with columns ``patientId`` (str), ``Target`` (int, 0/1) and
    ``boxes`` (float32 ``[N, 4]`` ``x, y, w, h``; ``[0, 4]`` for negatives), in the order
    patients first appear in the file.

    Raises:
        KeyError: a column is missing. ValueError: a Target is not 0/1, the rows of a
        patient disagree on Target, or a positive row has no box.
    """
    df = read_table(path, _COLUMNS, 'Expected the RSNA stage_2_train_labels.csv.')
    target = pd.to_numeric(df['Target'], errors='coerce')
    if target.isna().any() or not target.isin([0, 1]).all():
        bad = df['Target'][target.isna() | ~target.isin([0, 1])].iloc[0]
        raise ValueError(f'{path}: column "Target" holds {bad!r}; expected 0 or 1.')
    df = df.assign(Target=target.astype(int))
    coords = df[['x', 'y', 'width', 'height']].apply(pd.to_numeric, errors='coerce')
    positive = df['Target'] == 1
    if coords[positive].isna().any(axis=None):
        raise ValueError(f'{path}: a row with Target=1 has no box (x, y, width, height).')
    patients = df['patientId'].str.strip()
    per_patient = df['Target'].groupby(patients, sort=False)
    disagree = per_patient.nunique() > 1
    if disagree.any():
        raise ValueError(f'{path}: the rows of patient {disagree[disagree].index[0]!r} disagree '
                         f'on Target.')
    targets = per_patient.first()
    xywh = coords.to_numpy(dtype=np.float32)
    positive_patients = patients[positive]
    box_rows = positive_patients.groupby(positive_patients, sort=False).indices
    positive_index = np.flatnonzero(positive.to_numpy())
    empty = np.zeros((0, 4), dtype=np.float32)
    rows = []
    for patient, target_value in targets.items():
        if patient in box_rows:
            boxes = xywh[positive_index[box_rows[patient]]]
        else:
            boxes = empty.copy()
        rows.append(dict(patientId=str(patient), Target=int(target_value), boxes=boxes))
    return pd.DataFrame(rows, columns=['patientId', 'Target', 'boxes'])


@DATASETS.register_module()
class RSNAPneumoniaDataset(BaseCXRDataset):
    """RSNA Pneumonia: one record per patient image, label = ``Target``, lung-opacity boxes.

    On-disk layout::

        data_root/
          stage_2_train_labels.csv(.gz)     patientId, x, y, width, height, Target
                                            (one row per box; one row with blank box
                                             for negatives)
          stage_2_train_images/<patientId>.dcm
                                            (or PNG/JPEG conversions: img_suffix='.png')

    Record keys: ``img_path``, ``study_id`` and ``subject_id`` (both the ``patientId``: one
    image per patient), ``gt_label`` (``Target``: 0 = Normal, 1 = Pneumonia) and ``boxes``
    (``[N, 4]`` float32 ``x, y, w, h`` in original pixels, ``[0, 4]`` for negatives). DICOM
    decoding (including MONOCHROME1 inversion) is the image loader transform's job. The
    ``_id`` of ID lists is the ``patientId``; ``tools/build_eval_splits.py rsna`` writes the
    balanced 70/15/15 lists and the 1/10/100 % training subsets.

    Args:
        data_root (str): see the layout.
        ann_file (str): the labels CSV. Defaults to ``stage_2_train_labels.csv``.
        img_dir (str): image folder relative to ``data_root``.
        img_suffix (str): ``'.dcm'`` (default), ``'.png'`` or ``'.jpg'``.
        **kwargs: see :class:`BaseCXRDataset` (``split_file`` selects a split).
    """

    METAINFO = dict(classes=RSNA_CLASSES)
    DEFAULT_VIEWS = None
    ID_NAME = 'patientId'

    def __init__(self,
                 data_root: str,
                 ann_file: Optional[str] = None,
                 img_dir: str = 'stage_2_train_images',
                 img_suffix: str = '.dcm',
                 **kwargs):
        self._ann_name = ann_file
        self.img_dir = img_dir
        if not img_suffix.startswith('.'):
            img_suffix = '.' + img_suffix
        self.img_suffix = img_suffix
        super().__init__(data_root=data_root, **kwargs)

    def load_records(self) -> List[dict]:
        path = self.resolve_ann_file(self._ann_name, 'stage_2_train_labels.csv',
                                     'Set data_root to the RSNA folder or pass ann_file=.')
        self.ann_file = path
        table = read_rsna_labels(path)
        image_dir = osp.join(self.data_root, self.img_dir)
        records = []
        for patient, target, boxes in table.itertuples(index=False):
            records.append(dict(
                img_path=osp.join(image_dir, patient + self.img_suffix),
                study_id=patient,
                subject_id=patient,
                gt_label=int(target),
                boxes=boxes,
                _id=patient))
        self.load_stats.update(rows=int(sum(len(b) or 1 for b in table['boxes'])),
                               patients=len(records),
                               positives=int(table['Target'].sum()))
        return records
