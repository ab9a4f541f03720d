"""NIH ChestX-ray14 (Wang et al., CVPR 2017)."""
import glob
import logging
import os
import os.path as osp
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from lgdea.registry import DATASETS
from .base_cxr import BaseCXRDataset, normalize_view, read_id_file, read_table, resolve_file

__all__ = ['NIHChestXray14Dataset', 'NIH_CLASSES', 'read_nih_bbox_table', 'read_nih_data_entry']

#: The 14 ChestX-ray14 findings (``Finding Labels`` spelling).
NIH_CLASSES = ('Atelectasis', 'Cardiomegaly', 'Effusion', 'Infiltration', 'Mass', 'Nodule',
               'Pneumonia', 'Pneumothorax', 'Consolidation', 'Edema', 'Emphysema', 'Fibrosis',
               'Pleural_Thickening', 'Hernia')
#: Spellings of the box list that differ from ``Finding Labels``.
_BBOX_ALIASES = {'Infiltrate': 'Infiltration', 'Pleural Thickening': 'Pleural_Thickening'}


def read_nih_bbox_table(path: str) -> pd.DataFrame:
    """Read ``BBox_List_2017.csv`` in its real or cleaned form.

    The official header is ``Image Index,Finding Label,Bbox [x,y,w,h],,,`` (the four box
    values spread over the ``Bbox [x,y,w,h]`` column and three unnamed ones); the cleaned
    form is ``image_index,finding_label,x,y,w,h``. Returns columns ``image_index``,
    ``finding_label`` (spelled as in ``Finding Labels``, e.g. ``Infiltrate`` ->
    ``Infiltration``), ``x, y, w, h`` (float, original 1024 px pixels).
    """
    df = read_table(path, (), dtype=None)
    columns = list(df.columns)
    if {'image_index', 'finding_label', 'x', 'y', 'w', 'h'} <= set(columns):
        out = df[['image_index', 'finding_label', 'x', 'y', 'w', 'h']].copy()
    elif len(columns) >= 6 and columns[0] == 'Image Index' and columns[1] == 'Finding Label':
        # unquoted, "Bbox [x,y,w,h]" spreads over four columns ('Bbox [x', 'y', 'w', 'h]')
        if not columns[2].replace(' ', '').lower().startswith('bbox[x'):
            raise KeyError(f'{path}: third column is {columns[2]!r}, expected "Bbox [x,y,w,h]".')
        out = df.iloc[:, :6].copy()
        out.columns = ['image_index', 'finding_label', 'x', 'y', 'w', 'h']
    else:
        raise KeyError(f'{path}: unrecognised header {columns}; expected the official '
                       f'"Image Index,Finding Label,Bbox [x,y,w,h],,," or '
                       f'"image_index,finding_label,x,y,w,h".')
    for column in ('x', 'y', 'w', 'h'):
        values = pd.to_numeric(out[column], errors='coerce')
        if values.isna().any():
            raise ValueError(f'{path}: box value {out[column][values.isna()].iloc[0]!r} in '
                             f'column {column!r} is not a number.')
        out[column] = values.astype(float)
    out['image_index'] = out['image_index'].astype(str).str.strip()
    out['finding_label'] = out['finding_label'].astype(str).str.strip().replace(_BBOX_ALIASES)
    unknown = sorted(set(out['finding_label']) - set(NIH_CLASSES))
    if unknown:
        raise ValueError(f'{path}: unknown finding label(s) {unknown}; expected '
                         f'{list(NIH_CLASSES)}.')
    return out.reset_index(drop=True)


def read_nih_data_entry(path: str) -> pd.DataFrame:
    """Read ``Data_Entry_2017.csv`` / ``Data_Entry_2017_v2020.csv`` (checked columns)."""
    df = read_table(path, ('Image Index', 'Finding Labels', 'Patient ID', 'View Position'),
                    'Expected the NIH Data_Entry_2017(_v2020).csv.')
    labels = set()
    for value in df['Finding Labels'].dropna():
        labels.update(s.strip() for s in value.split('|'))
    unknown = sorted(labels - set(NIH_CLASSES) - {'No Finding'})
    if unknown:
        raise ValueError(f'{path}: unknown value(s) {unknown} in "Finding Labels"; expected '
                         f'{list(NIH_CLASSES)} or "No Finding".')
    if df['Finding Labels'].isna().any():
        raise ValueError(f'{path}: blank "Finding Labels" cell in row '
                         f'{int(np.flatnonzero(df["Finding Labels"].isna())[0]) + 2}.')
    return df


@DATASETS.register_module()
class NIHChestXray14Dataset(BaseCXRDataset):
    """NIH ChestX-ray14: 14-label classification, or the 2017 box list for grounding.

    On-disk layout::

        data_root/
          Data_Entry_2017_v2020.csv   (or Data_Entry_2017.csv)
                                      Image Index, Finding Labels (pipe-separated),
                                      Follow-up #, Patient ID, Patient Age, Patient Gender,
                                      View Position, ...
          BBox_List_2017.csv          Image Index,Finding Label,Bbox [x,y,w,h],,,
                                      (or image_index,finding_label,x,y,w,h)
          train_val_list.txt          official image lists (one Image Index per line)
          test_list.txt
          images/00000001_000.png     (or images_001/images/..., images_002/images/... as
                                       the archives unpack; both are searched)

    ``mode='classification'`` (default): one record per image with ``img_path``,
    ``study_id`` (the image name without ``.png``), ``subject_id`` (8-digit Patient ID),
    ``view``, ``gt_score`` (``[14]`` float32 multi-hot; ``No Finding`` = all zeros).
    ``mode='grounding'``: one record per (image, finding) of the box list with all its
    boxes (``[N, 4]`` float32 ``x, y, w, h`` in original pixels), ``phrase`` and
    ``category`` (the finding), ``gt_label``, ``ori_shape=(1024, 1024)``; the Data Entry
    file is optional there. The ``_id`` of ID lists is the ``Image Index``.

    Args:
        data_root (str): see the layout.
        split (str, optional): ``'train_val'`` (alias ``'train'``) or ``'test'``: the official
            lists; None: all images. ``split_file`` (e.g. a 1 % list) is applied after it.
        mode (str): ``'classification'`` or ``'grounding'``.
        ann_file (str, optional): the Data Entry CSV (default: v2020, then 2017).
        bbox_file (str): the box list. Defaults to ``BBox_List_2017.csv``.
        **kwargs: see :class:`BaseCXRDataset`.
    """

    METAINFO = dict(classes=NIH_CLASSES)
    DEFAULT_VIEWS = None
    SPLITS = ('train_val', 'test')
    SPLIT_ALIASES = {'train': 'train_val', 'trainval': 'train_val'}
    ID_NAME = 'Image Index'
    _SPLIT_FILES = {'train_val': 'train_val_list.txt', 'test': 'test_list.txt'}

    def __init__(self,
                 data_root: str,
                 split: Optional[str] = None,
                 mode: str = 'classification',
                 ann_file: Optional[str] = None,
                 bbox_file: str = 'BBox_List_2017.csv',
                 **kwargs):
        if mode not in ('classification', 'grounding'):
            raise ValueError(f"NIHChestXray14Dataset: mode must be 'classification' or "
                             f"'grounding', got {mode!r}.")
        self.mode = mode
        self._ann_name = ann_file
        self.bbox_file = bbox_file
        super().__init__(data_root=data_root, split=split, **kwargs)

    def _image_index(self) -> Dict[str, str]:
        """Map image name -> path, from ``images/`` and ``images_*/images/``."""
        folders = [osp.join(self.data_root, 'images')]
        folders += sorted(glob.glob(osp.join(self.data_root, 'images_*', 'images')))
        folders += sorted(d for d in glob.glob(osp.join(self.data_root, 'images_*'))
                          if osp.isdir(d) and not osp.isdir(osp.join(d, 'images')))
        index = {}
        for folder in folders:
            if not osp.isdir(folder):
                continue
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_file():
                        index.setdefault(entry.name, entry.path)
        return index

    def _find_data_entry(self, required: bool) -> Optional[str]:
        names = [self._ann_name] if self._ann_name else ['Data_Entry_2017_v2020.csv',
                                                         'Data_Entry_2017.csv']
        for name in names:
            try:
                return resolve_file(name, [self.data_root], 'annotation file',
                                    'NIHChestXray14Dataset')
            except FileNotFoundError:
                continue
        if required:
            raise FileNotFoundError(
                f'NIHChestXray14Dataset: none of {names} found in {self.data_root}; set data_root '
                f'to the ChestX-ray14 folder or pass ann_file=.')
        return None

    def _official_ids(self) -> Optional[set]:
        if self.split is None:
            return None
        path = resolve_file(self._SPLIT_FILES[self.split], [self.data_root], 'official split list',
                            'NIHChestXray14Dataset',
                            'Copy train_val_list.txt / test_list.txt from the NIH release or '
                            'use split=None with split_file=.')
        ids, _ = read_id_file(path)
        return set(ids)

    def load_records(self) -> List[dict]:
        index = self._image_index()
        if not index:
            self._log(f'no images found under {self.data_root}/images or images_*/images; '
                      f'img_path points to images/<Image Index>', logging.WARNING)
        default_dir = osp.join(self.data_root, 'images')
        official = self._official_ids()
        classes = list(self.classes)
        records = []
        if self.mode == 'classification':
            path = self._find_data_entry(required=True)
            self.ann_file = path
            df = read_nih_data_entry(path)
            for name, labels, patient, view in zip(df['Image Index'], df['Finding Labels'],
                                                   df['Patient ID'], df['View Position']):
                name = name.strip()
                if official is not None and name not in official:
                    continue
                score = np.zeros(len(classes), dtype=np.float32)
                for label in labels.split('|'):
                    label = label.strip()
                    if label in classes:
                        score[classes.index(label)] = 1.0
                records.append(dict(
                    img_path=index.get(name, osp.join(default_dir, name)),
                    study_id=osp.splitext(name)[0],
                    subject_id=_patient(patient, name),
                    view=normalize_view(view),
                    gt_score=score,
                    _id=name))
        else:
            bbox_path = resolve_file(
                self.bbox_file, [self.data_root], 'box list', 'NIHChestXray14Dataset',
                'Copy BBox_List_2017.csv from the NIH release or pass bbox_file=.')
            self.ann_file = bbox_path
            boxes = read_nih_bbox_table(bbox_path)
            entry_path = self._find_data_entry(required=False)
            meta = {}
            if entry_path is not None:
                entry = read_nih_data_entry(entry_path)
                rows = zip(entry['Image Index'], entry['Patient ID'], entry['View Position'])
                meta = {n.strip(): (p, v) for n, p, v in rows}
            for (name, label), group in boxes.groupby(['image_index', 'finding_label'], sort=False):
                if official is not None and name not in official:
                    continue
                patient, view = meta.get(name, (None, None))
                record = dict(
                    img_path=index.get(name, osp.join(default_dir, name)),
                    study_id=osp.splitext(name)[0],
                    subject_id=_patient(patient, name),
                    phrase=label.replace('_', ' ').lower(),
                    category=label,
                    gt_label=classes.index(label),
                    boxes=group[['x', 'y', 'w', 'h']].to_numpy(dtype=np.float32).reshape(-1, 4),
                    ori_shape=(1024, 1024),
                    _id=name)
                if view is not None:
                    record['view'] = normalize_view(view)
                records.append(record)
        self.load_stats.update(records=len(records), images_found_on_disk=len(index))
        return records


def _patient(patient, image_name: str) -> str:
    """8-digit patient ID (from ``Patient ID`` or the image name ``PPPPPPPP_FFF.png``)."""
    if patient is not None and not (isinstance(patient, float) and np.isnan(patient)):
        text = str(patient).strip()
        if text.isdigit():
            return f'{int(text):08d}'
        return text
    return image_name.split('_')[0]
