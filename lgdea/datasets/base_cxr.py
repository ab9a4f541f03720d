"""Shared machinery of the real-format chest X-ray datasets.

Every dataset of :mod:`lgdea.datasets` that reads a public chest X-ray collection subclasses
:class:`BaseCXRDataset`. A subclass only implements :meth:`BaseCXRDataset.load_records`,
which turns the collection's own files into records (plain dicts, the keys of
``docs/architecture.md`` section 1) plus a private ``_id`` key: the identifier that ID lists
(``split_file``, written by ``tools/build_eval_splits.py``) refer to. The base class then
applies, in this order and counting what each step drops:

1. the ID list (``split_file`` / ``id_file``), optionally taking ``gt_label`` from its
   ``label`` column;
2. the subject exclusion list (``exclude_subjects_file``);
3. the view filter (``views``; records without an image are never view-filtered);
4. the optional file check (``check_files=True``);

and strips the private keys, so the records handed to mmengine are picklable plain types
and numpy arrays (mmengine's default ``serialize_data=True`` works). The counts are kept in
``dataset.load_stats`` and logged.

Bad input fails early with an error that names the file or column and says what to do:
a missing ``data_root``, a missing annotation file (``.csv`` and ``.csv.gz`` are both
accepted), a missing column, an unknown view or label value.
"""
import io
import logging
import os.path as osp
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from lgdea.registry import TRANSFORMS

__all__ = [
    'BaseCXRDataset', 'CHEXPERT_CLASSES', 'CHEXPERT_COMPETITION_TASKS', 'FRONTAL_VIEWS',
    'KNOWN_VIEWS', 'normalize_view', 'resolve_file', 'read_table', 'require_columns',
    'read_id_file', 'read_subject_list', 'map_chexpert_labels', 'file_stem', 'utf8_error'
]

#: The 14 CheXpert observations, in the column order of CheXpert's ``train.csv``.
#: MIMIC-CXR's ``mimic-cxr-2.0.0-chexpert.csv`` has the same 14 columns (alphabetical);
#: both datasets use this order for ``gt_score`` so their scores line up.
CHEXPERT_CLASSES = (
    'No Finding', 'Enlarged Cardiomediastinum', 'Cardiomegaly', 'Lung Opacity',
    'Lung Lesion', 'Edema', 'Consolidation', 'Pneumonia', 'Atelectasis', 'Pneumothorax',
    'Pleural Effusion', 'Pleural Other', 'Fracture', 'Support Devices')

#: The five CheXpert competition tasks (the classes of CheXpert-/MIMIC-5x200).
CHEXPERT_COMPETITION_TASKS = ('Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema',
                              'Pleural Effusion')

#: Frontal view positions: the default ``views`` of the pretraining datasets.
FRONTAL_VIEWS = ('PA', 'AP')

#: Every view position the datasets know (upper case). ``FRONTAL`` is a frontal image whose
#: projection is not recorded (CheXpert rows with a blank ``AP/PA``).
KNOWN_VIEWS = ('PA', 'AP', 'FRONTAL', 'LATERAL', 'LL', 'RL', 'AP AXIAL', 'PA LLD', 'AP LLD',
               'AP RLD', 'PA RLD', 'LAO', 'RAO', 'LPO', 'RPO', 'XTABLE LATERAL', 'SWIMMERS')

_VIEW_ALIASES = {
    'L': 'LATERAL',
    'LAT': 'LATERAL',
    'LATERAL VIEW': 'LATERAL',
    'LEFT LATERAL': 'LL',
    'RIGHT LATERAL': 'RL',
    'POSTEROANTERIOR': 'PA',
    'ANTEROPOSTERIOR': 'AP',
    'FRONT': 'FRONTAL',
}


def normalize_view(value) -> Optional[str]:
    """Upper-case view position with the common aliases resolved (``'l'`` -> ``'LATERAL'``).

    Returns None for a missing value (None, NaN or blank). Values that are not in
    :data:`KNOWN_VIEWS` are returned upper-cased as they are, so that a view filter drops
    them instead of failing on an odd header value.
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = ' '.join(str(value).strip().upper().replace('_', ' ').split())
    if not text or text in ('NAN', 'NONE'):
        return None
    return _VIEW_ALIASES.get(text, text)


def resolve_file(name: str,
                 roots: Union[str, Sequence[str], None] = None,
                 what: str = 'annotation file',
                 owner: str = 'dataset',
                 hint: str = '') -> str:
    """Find ``name`` under the first root that has it, accepting ``.csv`` and ``.csv.gz``.

    Args:
        name: file name or path; an absolute path is used as is (still trying the other
            compression).
        roots: folder(s) to look in, in order.
        what / owner / hint: words of the error message.

    Returns:
        The absolute path of the existing file.

    Raises:
        FileNotFoundError: naming every path tried and ``hint`` (what to do).
    """
    if not name:
        raise ValueError(f'{owner}: no {what} name was given.')
    name = osp.expanduser(str(name))
    if roots is None or osp.isabs(name):
        roots = ['']
    elif isinstance(roots, str):
        roots = [roots]
    variants = [name]
    if name.endswith('.gz'):
        variants.append(name[:-3])
    else:
        variants.append(name + '.gz')
    tried = []
    for root in roots:
        for variant in variants:
            path = osp.join(root, variant) if root else variant
            tried.append(path)
            if osp.isfile(path):
                return osp.abspath(path)
    raise FileNotFoundError(f'{owner}: {what} {name!r} not found (tried: {", ".join(tried)}). '
                            f'{hint}'.strip())


def require_columns(df: pd.DataFrame, columns: Iterable[str], path: str, hint: str = ''):
    """Raise a KeyError naming ``path`` and each missing column (and the columns found)."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f'{path}: missing column(s) {missing}; found {list(df.columns)}. '
                       f'{hint or "Check that this is the right file or rename the columns."}')


def utf8_error(path: str, exc: Optional[UnicodeDecodeError] = None) -> ValueError:
    """A ValueError naming ``path``, the line and the column of its first byte sequence that
    is not UTF-8, and how to convert the file (gzipped files are read through gzip)."""
    opener = open
    if str(path).endswith('.gz'):
        import gzip
        opener = gzip.open
    where = ''
    with opener(path, 'rb') as f:
        for line_no, raw in enumerate(f, 1):
            try:
                raw.decode('utf-8')
            except UnicodeDecodeError as e:
                col = len(raw[:e.start].decode('utf-8')) + 1
                where = f'line {line_no}, column {col} (byte 0x{raw[e.start]:02x})'
                break
    if not where:
        where = f'byte {exc.start}' if exc is not None else 'somewhere'
    return ValueError(
        f'{path}: {where} is not UTF-8 text. Annotation files must be UTF-8: convert this one, '
        f'e.g. `iconv -f WINDOWS-1252 -t UTF-8 {path} > fixed` when it was saved by Excel '
        '(Latin-1 / Windows-1252), and point the dataset at the converted file.')


def read_table(path: str,
               columns: Iterable[str] = (),
               hint: str = '',
               **kwargs) -> pd.DataFrame:
    """Read a CSV (plain or gzipped) as strings and check its columns.

    Every cell is read as ``str`` (blank cells are NaN) so that identifiers keep their
    leading zeros and label cells can be checked exactly.
    """
    kwargs.setdefault('dtype', str)
    try:
        df = pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f'{path}: the file is empty.') from exc
    except UnicodeDecodeError as exc:
        raise utf8_error(path, exc) from exc
    except pd.errors.ParserError as exc:
        raise ValueError(f'{path}: cannot be parsed as CSV ({exc}).') from exc
    df.columns = [str(c).strip() for c in df.columns]
    require_columns(df, columns, path, hint)
    return df


def _is_blank(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or (
        isinstance(value, str) and value.strip() == '')


_ID_HEADERS = {'id', 'ids', 'dicom_id', 'patientid', 'image', 'image index', 'image_index',
               'path', 'subject_id', 'study_id', 'filename'}


def read_id_file(path: str) -> Tuple[List[str], Optional[Dict[str, str]]]:
    """Read an ID list written by ``tools/build_eval_splits.py`` (or a plain list).

    Format: lines starting with ``#`` are comments (the tool writes the seed and source
    hashes there). Then either a CSV with a header row whose first column holds the IDs and
    an optional ``label`` column (class name), or one ID per line (such as NIH's official
    ``train_val_list.txt``), optionally under a header word like ``id``.

    Returns:
        ``(ids, labels)`` where ``labels`` maps ID -> class name, or None without a
        ``label`` column.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'ID list {path!r} not found. Write it with '
                                f'tools/build_eval_splits.py or fix the split_file path.')
    try:
        with open(path, encoding='utf-8') as f:
            lines = [ln for ln in f if ln.strip() and not ln.lstrip().startswith('#')]
    except UnicodeDecodeError as exc:
        raise utf8_error(path, exc) from exc
    if not lines:
        raise ValueError(f'ID list {path!r} holds no IDs.')
    if ',' in lines[0]:
        df = pd.read_csv(io.StringIO(''.join(lines)), dtype=str)
        df.columns = [str(c).strip() for c in df.columns]
        id_col = df.columns[0]
        if df[id_col].isna().any():
            raise ValueError(f'ID list {path!r}: blank ID in column {id_col!r}.')
        ids = [s.strip() for s in df[id_col].tolist()]
        labels = None
        if 'label' in df.columns:
            if df['label'].isna().any():
                raise ValueError(f'ID list {path!r}: blank value in column "label".')
            labels = dict(zip(ids, [s.strip() for s in df['label'].tolist()]))
        return ids, labels
    ids = [ln.strip() for ln in lines]
    if ids[0].lower() in _ID_HEADERS:
        ids = ids[1:]
    return ids, None


def read_subject_list(path: str) -> List[str]:
    """Read a subject exclusion list: one subject ID per line, ``#`` comments allowed."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'exclude_subjects_file {path!r} not found. Write it with '
            f'`python tools/build_eval_splits.py exclude ...` or set exclude_subjects_file=None.')
    try:
        with open(path, encoding='utf-8') as f:
            subjects = [ln.split(',')[0].strip() for ln in f
                        if ln.strip() and not ln.lstrip().startswith('#')]
    except UnicodeDecodeError as exc:
        raise utf8_error(path, exc) from exc
    if subjects and subjects[0].lower() in ('subject_id', 'subject', 'id'):
        subjects = subjects[1:]
    return subjects


def map_chexpert_labels(df: pd.DataFrame,
                        classes: Sequence[str],
                        path: str,
                        uncertain: str = 'ignore',
                        blank: str = 'nan') -> np.ndarray:
    """CheXpert-style label columns (1 / 0 / -1 / blank) -> float32 ``[N, C]`` scores.

    Args:
        df: the table (cells as strings or numbers).
        classes: the label columns to read, in output order.
        path: the file name, for errors.
        uncertain: what -1 becomes: ``'ones'`` (U-ones) -> 1, ``'zeros'`` (U-zeros) -> 0,
            ``'ignore'`` -> NaN.
        blank: what a blank cell (not mentioned) becomes: ``'nan'`` or ``'zeros'``.

    Raises:
        KeyError: a label column is missing. ValueError: a cell is not 1/0/-1/blank.
    """
    uncertain_values = dict(ones=1.0, zeros=0.0, ignore=np.nan)
    blank_values = dict(nan=np.nan, zeros=0.0)
    if uncertain not in uncertain_values:
        raise ValueError(f"uncertain must be one of {list(uncertain_values)}, got {uncertain!r}")
    if blank not in blank_values:
        raise ValueError(f"blank must be one of {list(blank_values)}, got {blank!r}")
    require_columns(df, classes, path, 'Pass classes= with the label column names of this file.')
    out = np.full((len(df), len(classes)), np.nan, dtype=np.float32)
    for j, name in enumerate(classes):
        column = df[name]
        numeric = pd.to_numeric(column, errors='coerce')
        bad = numeric.isna() & ~column.map(_is_blank)
        bad |= ~numeric.isna() & ~numeric.isin([1.0, 0.0, -1.0])
        if bad.any():
            value = column[bad].iloc[0]
            raise ValueError(f'{path}: column {name!r} holds {value!r}; CheXpert labels must be '
                             f'1, 0, -1 or blank. Check the file or the classes option.')
        values = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
        mapped = np.where(np.isnan(values), blank_values[blank],
                          np.where(values == -1.0, uncertain_values[uncertain], values))
        out[:, j] = mapped
    return out


class BaseCXRDataset(BaseDataset):
    """Base of the real-format chest X-ray datasets (see the module docstring).

    Args:
        data_root (str): root folder of the collection; must exist.
        ann_file (str): annotation file, relative to ``data_root`` or absolute; ``.csv`` and
            ``.csv.gz`` are both accepted. Each subclass has its own default.
        split (str, optional): which official split to read, where the collection has one
            (see each subclass: ``SPLITS``). None reads everything.
        views (Sequence[str] | None | 'default'): view positions to keep (upper case, see
            :data:`KNOWN_VIEWS`). ``'default'`` is the subclass's ``DEFAULT_VIEWS``:
            ``('PA', 'AP')`` for pretraining sources, None (all) for evaluation sets.
        keep_unknown_views (bool): keep images whose view is not recorded when ``views`` is
            set. Defaults to False.
        exclude_subjects_file (str, optional): subject IDs (one per line, ``#`` comments) to
            drop, such as ``exclude_subjects.txt`` of ``tools/build_eval_splits.py``. The
            number of dropped records and subjects is counted and logged. A relative path
            (here and for ``split_file``) is looked up from the working directory first,
            then under ``data_root``.
        split_file (str, optional): an ID list (see :func:`read_id_file`); only records whose
            ``_id`` is listed are kept. With a ``label`` column, ``gt_label`` is set from it
            (index into ``metainfo['classes']``; an existing ``gt_label`` must agree).
        id_file (str, optional): alias of ``split_file``.
        check_files (bool): verify at load time that every ``img_path`` exists, and raise an
            error with the count and the first few missing paths. Defaults to False (the
            image loader transform checks lazily).
        metainfo, pipeline, test_mode, lazy_init, serialize_data, indices, filter_cfg,
            max_refetch: as in :class:`mmengine.dataset.BaseDataset`; ``pipeline`` dicts are
            built from :data:`lgdea.registry.TRANSFORMS`.
    """

    METAINFO: dict = dict(classes=())
    #: Views kept when ``views='default'``.
    DEFAULT_VIEWS: Optional[Tuple[str, ...]] = None
    #: Official splits the ``split`` option accepts (None: the collection has none).
    SPLITS: Optional[Tuple[str, ...]] = None
    #: Aliases of split names (e.g. ``'val'`` -> ``'validate'``).
    SPLIT_ALIASES: Dict[str, str] = {}
    #: What the ``_id`` of a record (and so an ID list) holds, for messages and docs.
    ID_NAME: str = 'id'

    def __init__(self,
                 data_root: str,
                 ann_file: str = '',
                 split: Optional[str] = None,
                 views: Union[str, Sequence[str], None] = 'default',
                 keep_unknown_views: bool = False,
                 exclude_subjects_file: Optional[str] = None,
                 split_file: Optional[str] = None,
                 id_file: Optional[str] = None,
                 check_files: bool = False,
                 metainfo: Optional[dict] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 test_mode: bool = False,
                 lazy_init: bool = False,
                 serialize_data: bool = True,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 filter_cfg: Optional[dict] = None,
                 max_refetch: int = 1000):
        name = type(self).__name__
        if not data_root:
            raise ValueError(f'{name}: data_root is required (the folder that holds the '
                             f'collection; see the class docstring for the layout).')
        data_root = osp.abspath(osp.expanduser(str(data_root)))
        if not osp.isdir(data_root):
            raise FileNotFoundError(
                f'{name}: data_root {data_root!r} does not exist or is not a folder. Set '
                f'data_root to the folder of the collection (layout in docs/datasets.md).')
        self.split = self._check_split(split)
        self.views = self._check_views(views)
        self.keep_unknown_views = keep_unknown_views
        if split_file and id_file and split_file != id_file:
            raise ValueError(f'{name}: give split_file or id_file (an alias), not both.')
        self.split_file = self._abs_under(split_file or id_file, data_root)
        self.exclude_subjects_file = self._abs_under(exclude_subjects_file, data_root)
        self.check_files = check_files
        self.load_stats: Dict[str, int] = {}
        built = []
        for transform in pipeline:
            built.append(TRANSFORMS.build(transform) if isinstance(transform, dict) else transform)
        super().__init__(
            ann_file=ann_file,
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=dict(img_path=''),
            filter_cfg=filter_cfg,
            indices=indices,
            serialize_data=serialize_data,
            pipeline=built,
            test_mode=test_mode,
            lazy_init=lazy_init,
            max_refetch=max_refetch)

    # ----------------------------------------------------------------------------------
    # option checks and helpers for subclasses
    @staticmethod
    def _abs_under(path: Optional[str], root: str) -> Optional[str]:
        """An absolute path; a relative one that exists from the working directory wins,
        otherwise it is taken relative to ``data_root``."""
        if not path:
            return None
        path = osp.expanduser(str(path))
        if osp.isabs(path):
            return path
        return osp.abspath(path) if osp.exists(path) else osp.join(root, path)

    def _check_split(self, split: Optional[str]) -> Optional[str]:
        if split is None:
            return None
        name = type(self).__name__
        if self.SPLITS is None:
            raise ValueError(f'{name} has no official split; select records with split_file=... '
                             f'(an ID list from tools/build_eval_splits.py) and set split=None.')
        split = self.SPLIT_ALIASES.get(str(split).lower(), str(split).lower())
        if split not in self.SPLITS:
            raise ValueError(f'{name}: unknown split {split!r}; use one of {list(self.SPLITS)} '
                             f'or None.')
        return split

    def _check_views(self, views) -> Optional[Tuple[str, ...]]:
        if isinstance(views, str) and views == 'default':
            views = self.DEFAULT_VIEWS
        if views is None:
            return None
        if isinstance(views, str):
            views = (views, )
        out = []
        for view in views:
            norm = normalize_view(view)
            if norm not in KNOWN_VIEWS:
                raise ValueError(f'{type(self).__name__}: unknown view {view!r} in views=; '
                                 f'use values from {list(KNOWN_VIEWS)} or views=None for all.')
            out.append(norm)
        return tuple(out)

    def resolve_ann_file(self, name: Optional[str], default: str, hint: str = '',
                         roots: Optional[Sequence[str]] = None) -> str:
        """Resolve an annotation file relative to ``data_root`` (``.csv`` / ``.csv.gz``)."""
        return resolve_file(name or default, roots or [self.data_root], 'annotation file',
                            type(self).__name__, hint)

    @property
    def classes(self) -> Tuple[str, ...]:
        return tuple(self._metainfo.get('classes', ()))

    @classmethod
    def normalize_subject_id(cls, subject_id) -> str:
        """Canonical form of a subject ID (used for the exclusion list)."""
        return str(subject_id).strip()

    @classmethod
    def normalize_id(cls, record_id: str) -> str:
        """Canonical form of an ID read from an ID list (compared with record ``_id``)."""
        return str(record_id).strip()

    def _log(self, msg: str, level: int = logging.INFO):
        print_log(f'{type(self).__name__}: {msg}', logger='current', level=level)

    # ----------------------------------------------------------------------------------
    # loading
    def load_records(self) -> List[dict]:
        """Read the collection into records (with a private ``_id``). Subclasses implement."""
        raise NotImplementedError

    def load_data_list(self) -> List[dict]:
        """Load the records and apply the ID list, exclusions, view filter and file check."""
        records = self.load_records()
        stats = dict(loaded=len(records))
        if self.split_file:
            records = self._apply_id_file(records, stats)
        if self.exclude_subjects_file:
            records = self._apply_exclusion(records, stats)
        if self.views is not None:
            records = self._apply_views(records, stats)
        for record in records:
            # private keys go; so do unknown optional values (absent key = not available),
            # except report / img_path, whose None is meaningful (no usable text / no image)
            for key in [k for k, v in record.items()
                        if k.startswith('_') or (v is None and k not in ('report', 'img_path'))]:
                del record[key]
        if self.check_files:
            self._check_image_files(records)
        stats['kept'] = len(records)
        self.load_stats.update(stats)
        self._log('; '.join(f'{k}={v}' for k, v in self.load_stats.items()))
        return records

    def _apply_id_file(self, records: List[dict], stats: dict) -> List[dict]:
        ids, labels = read_id_file(self.split_file)
        ids = [self.normalize_id(i) for i in ids]
        if labels is not None:
            labels = {self.normalize_id(k): v for k, v in labels.items()}
        wanted = set(ids)
        kept = [r for r in records if r.get('_id') in wanted]
        found = {r.get('_id') for r in kept}
        stats['dropped_by_split_file'] = len(records) - len(kept)
        stats['split_file_ids_not_found'] = len(wanted - found)
        if not kept:
            raise ValueError(
                f'{type(self).__name__}: none of the {len(wanted)} IDs of {self.split_file} '
                f'matched a record ({self.ID_NAME}; e.g. {ids[:3]} vs records like '
                f'{[r.get("_id") for r in records[:3]]}). Check that the list was built for '
                f'this dataset and split.')
        if wanted - found:
            self._log(f'{len(wanted - found)} IDs of {self.split_file} matched no record '
                      f'(e.g. {sorted(wanted - found)[:5]})', logging.WARNING)
        if labels is not None:
            classes = list(self.classes)
            for record in kept:
                label = labels[record['_id']]
                if label not in classes:
                    raise ValueError(f'{self.split_file}: label {label!r} of {record["_id"]!r} '
                                     f'is not one of the classes {classes}; pass classes=... '
                                     f'matching the list.')
                index = classes.index(label)
                if 'gt_label' in record and int(record['gt_label']) != index:
                    raise ValueError(
                        f'{self.split_file}: label {label!r} of {record["_id"]!r} disagrees with '
                        f'the annotation ({classes[int(record["gt_label"])]!r}); rebuild the list.')
                record['gt_label'] = index
        return kept

    def _apply_exclusion(self, records: List[dict], stats: dict) -> List[dict]:
        listed = read_subject_list(self.exclude_subjects_file)
        excluded = {self.normalize_subject_id(s) for s in listed}
        kept, dropped_subjects = [], set()
        for record in records:
            subject = record.get('subject_id')
            if subject is not None and self.normalize_subject_id(subject) in excluded:
                dropped_subjects.add(subject)
            else:
                kept.append(record)
        stats['excluded_records'] = len(records) - len(kept)
        stats['excluded_subjects'] = len(dropped_subjects)
        self._log(f'excluded {len(records) - len(kept)} records of {len(dropped_subjects)} '
                  f'subjects listed in {self.exclude_subjects_file} '
                  f'({len(excluded)} subjects listed)')
        return kept

    def _apply_views(self, records: List[dict], stats: dict) -> List[dict]:
        kept, dropped, unknown = [], 0, 0
        for record in records:
            if record.get('img_path') is None:
                kept.append(record)  # report-only records carry no view
                continue
            view = record.get('view')
            if view is None:
                unknown += 1
                if self.keep_unknown_views:
                    kept.append(record)
                else:
                    dropped += 1
            elif view in self.views:
                kept.append(record)
            else:
                dropped += 1
        stats['dropped_by_view'] = dropped
        stats['unknown_view'] = unknown
        if unknown and not self.keep_unknown_views:
            self._log(f'{unknown} images have no recorded view and were dropped (set '
                      f'keep_unknown_views=True or views=None to keep them)', logging.WARNING)
        return kept

    def _check_image_files(self, records: List[dict], max_listed: int = 5):
        paths = [r['img_path'] for r in records if r.get('img_path')]
        missing = [p for p in paths if not osp.isfile(p)]
        if missing:
            raise FileNotFoundError(
                f'{type(self).__name__}: {len(missing)} of {len(paths)} image files are missing, '
                f'e.g. {missing[:max_listed]}. Check data_root (and image-root / suffix options) '
                f'or use check_files=False to let the loader skip them lazily.')

    def _set_classes(self, classes: Sequence[str]):
        """Record the classes this instance uses in its metainfo."""
        self._metainfo['classes'] = tuple(classes)


def file_stem(path: str) -> str:
    """File name without folder and extension(s) (``a/b/x.dcm`` -> ``x``)."""
    return osp.splitext(osp.basename(path))[0]
