"""CheXpert v1.0 (Stanford): images for pretraining, labels for evaluation."""
import os.path as osp
from typing import List, Optional, Sequence

from lgdea.registry import DATASETS
from .base_cxr import (CHEXPERT_CLASSES, FRONTAL_VIEWS, BaseCXRDataset, map_chexpert_labels,
                       normalize_view, read_table)

__all__ = ['CheXpertDataset', 'CHEXPERT_PREFIXES']

#: Folder names that start the ``Path`` column of the official CSVs.
CHEXPERT_PREFIXES = ('CheXpert-v1.0-small', 'CheXpert-v1.0')


def _split_prefix(path: str):
    """``CheXpert-v1.0-small/train/p/s/v.jpg`` -> (``CheXpert-v1.0-small``, ``train/p/s/v.jpg``)."""
    path = path.strip().replace('\\', '/')
    head, _, rest = path.partition('/')
    if head in CHEXPERT_PREFIXES:
        return head, rest
    return None, path


@DATASETS.register_module()
class CheXpertDataset(BaseCXRDataset):
    """CheXpert v1.0 / v1.0-small.

    On-disk layout (either the full or the downsampled release; ``data_root`` may be the
    folder that holds ``CheXpert-v1.0[-small]/`` or that folder itself)::

        data_root/
          CheXpert-v1.0-small/            (or CheXpert-v1.0/)
            train.csv   valid.csv         Path, Sex, Age, Frontal/Lateral, AP/PA,
                                          No Finding, ..., Support Devices (14 labels,
                                          1 / 0 / -1 / blank)
            train/patientXXXXX/studyN/viewM_frontal.jpg
            valid/...

    ``Path`` starts with ``CheXpert-v1.0/`` or ``CheXpert-v1.0-small/``; images are resolved
    under whichever of ``data_root/CheXpert-v1.0-small``, ``data_root/CheXpert-v1.0`` and
    ``data_root`` holds them (the folder of the CSV when none does yet).

    One record per image: ``img_path``, ``study_id`` (``patientXXXXX/studyN``),
    ``subject_id`` (``patientXXXXX``), ``view`` (``AP``/``PA``/``LL``/``RL`` for frontal
    images, ``FRONTAL`` when ``AP/PA`` is blank, ``LATERAL`` for lateral ones) and
    ``gt_score`` (``[C]`` float32 over ``classes``). No reports (the Stanford reports were
    never released): an image-only source for pretraining. The ``_id`` of ID lists is the
    ``Path`` without its ``CheXpert-v1.0*/`` prefix (``train/patient00001/study1/...jpg``).

    Args:
        data_root (str): see the layout.
        split (str): ``'train'`` (``train.csv``) or ``'valid'`` (alias ``'val'``,
            ``valid.csv``); ignored when ``ann_file`` is given.
        ann_file (str, optional): a CSV in the official format.
        views: defaults to ``('PA', 'AP', 'FRONTAL')`` (frontal images).
        with_labels (bool): attach ``gt_score``. Defaults to True.
        classes (Sequence[str], optional): label columns (default: all 14).
        uncertain (str): -1 -> ``'ones'``, ``'zeros'`` or ``'ignore'`` (NaN, default).
        blank (str): blank -> ``'nan'`` (default) or ``'zeros'``.
        **kwargs: see :class:`BaseCXRDataset`.
    """

    METAINFO = dict(classes=CHEXPERT_CLASSES)
    DEFAULT_VIEWS = FRONTAL_VIEWS + ('FRONTAL', )
    SPLITS = ('train', 'valid')
    SPLIT_ALIASES = {'val': 'valid', 'validate': 'valid', 'validation': 'valid'}
    ID_NAME = 'Path without the CheXpert-v1.0*/ prefix'

    def __init__(self,
                 data_root: str,
                 split: Optional[str] = 'train',
                 ann_file: Optional[str] = None,
                 with_labels: bool = True,
                 classes: Optional[Sequence[str]] = None,
                 uncertain: str = 'ignore',
                 blank: str = 'nan',
                 **kwargs):
        self.with_labels = with_labels
        self.label_classes = tuple(classes) if classes else CHEXPERT_CLASSES
        self.uncertain = uncertain
        self.blank = blank
        self._ann_name = ann_file
        if classes:
            metainfo = dict(kwargs.pop('metainfo', None) or {})
            metainfo['classes'] = tuple(classes)
            kwargs['metainfo'] = metainfo
        super().__init__(data_root=data_root, split=split, **kwargs)

    def _image_base(self, ann_path: str, rel_paths: List[str]) -> str:
        candidates = [osp.join(self.data_root, p) for p in CHEXPERT_PREFIXES] + [self.data_root]
        candidates = [c for c in candidates if osp.isdir(c)]
        probe = rel_paths[0] if rel_paths else None
        if probe is not None:
            for base in candidates:
                if osp.isfile(osp.join(base, probe)):
                    return base
        return osp.dirname(ann_path)

    def load_records(self) -> List[dict]:
        default = f'{self.split or "train"}.csv'
        roots = [self.data_root] + [osp.join(self.data_root, p) for p in CHEXPERT_PREFIXES]
        path = self.resolve_ann_file(
            self._ann_name, default,
            'Set data_root to the folder that holds CheXpert-v1.0[-small]/ (or to that folder).',
            roots=roots)
        self.ann_file = path
        columns = ['Path', 'Frontal/Lateral', 'AP/PA']
        if self.with_labels:
            columns += list(self.label_classes)
        df = read_table(path, columns, 'Expected the official CheXpert train.csv / valid.csv.')
        rel_paths = [_split_prefix(p)[1] for p in df['Path']]
        base = self._image_base(path, rel_paths)
        scores = (map_chexpert_labels(df, self.label_classes, path, self.uncertain, self.blank)
                  if self.with_labels else None)

        records = []
        views = zip(rel_paths, df['Frontal/Lateral'], df['AP/PA'])
        for i, (rel, frontal, appa) in enumerate(views):
            parts = rel.split('/')
            if len(parts) < 4:
                raise ValueError(f'{path}: Path {df["Path"].iloc[i]!r} is not '
                                 f'<prefix>/<split>/patientX/studyN/viewM.jpg.')
            subject, study = parts[-3], parts[-2]
            frontal = str(frontal).strip().lower()
            if frontal == 'lateral':
                view = 'LATERAL'
            elif frontal == 'frontal':
                view = normalize_view(appa) or 'FRONTAL'
            else:
                raise ValueError(f'{path}: column "Frontal/Lateral" holds {frontal!r} at row '
                                 f'{i + 2}; expected Frontal or Lateral.')
            record = dict(
                img_path=osp.join(base, rel),
                study_id=f'{subject}/{study}',
                subject_id=subject,
                view=view,
                _id=rel)
            if scores is not None:
                record['gt_score'] = scores[i].copy()
            records.append(record)
        self.load_stats['images'] = len(records)
        return records

    @classmethod
    def normalize_id(cls, record_id: str) -> str:
        """ID lists may hold the ``Path`` with or without its ``CheXpert-v1.0*/`` prefix."""
        return _split_prefix(record_id)[1]
