"""COVID-19 Radiography Database (Chowdhury et al. / Rahman et al., Kaggle)."""
import os
import os.path as osp
from typing import List, Sequence, Tuple

from lgdea.registry import DATASETS
from .base_cxr import BaseCXRDataset

__all__ = ['COVIDRadiographyDataset', 'list_covid_images', 'COVID_CLASSES', 'IMAGE_SUFFIXES']

#: Default classes (MedCLIP's COVID task: Normal vs COVID).
COVID_CLASSES = ('Normal', 'COVID')
#: Image file suffixes that are listed (lower case).
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
_MASK_DIRS = ('masks', 'mask')


def list_covid_images(data_root: str, class_dir: str) -> Tuple[List[str], str]:
    """Relative image paths of one class folder, never its masks.

    Layout 2 (current): ``<class>/images/*.png`` next to ``<class>/masks/*.png`` -> only
    ``images/``. Layout 1 (older, flat): images directly in ``<class>/`` -> those files (the
    listing is not recursive, so a ``masks/`` folder is skipped as well).

    Returns:
        (sorted paths relative to ``data_root`` with ``/`` separators, layout name).
    """
    folder = osp.join(data_root, class_dir)
    images_dir = osp.join(folder, 'images')
    if osp.isdir(images_dir):
        base, rel_prefix, layout = images_dir, f'{class_dir}/images/', 'images/'
    else:
        base, rel_prefix, layout = folder, f'{class_dir}/', 'flat'
    paths = []
    with os.scandir(base) as entries:
        for entry in entries:
            if not entry.is_file():
                continue  # masks/ and any other sub-folder
            if osp.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                paths.append(rel_prefix + entry.name)
    paths = [p for p in paths if not any(part.lower() in _MASK_DIRS for part in p.split('/'))]
    return sorted(paths), layout


@DATASETS.register_module()
class COVIDRadiographyDataset(BaseCXRDataset):
    """COVID-19 Radiography Database: single-label classification by class folder.

    On-disk layout (``data_root`` = ``COVID-19_Radiography_Dataset``)::

        data_root/
          COVID/images/COVID-1.png ...        COVID/masks/COVID-1.png ... (never read)
          Normal/images/...                   Normal/masks/...
          Lung_Opacity/images/...             Lung_Opacity/masks/...
          Viral Pneumonia/images/...          Viral Pneumonia/masks/...
          *.metadata.xlsx                     (ignored)

    The older flat layout (images directly in ``COVID/``, ``Normal/``, ...) is accepted too;
    a ``masks`` folder is skipped in both. Class names are folder names.

    Record keys: ``img_path``, ``study_id`` (``<class>/<file stem>``), ``subject_id`` (the
    file stem: the database has no patient IDs, so splits are image-level), ``gt_label``
    (index into ``classes``). The ``_id`` of ID lists is the path relative to ``data_root``
    (``COVID/images/COVID-1.png``); ``tools/build_eval_splits.py covid`` writes balanced
    lists.

    Args:
        data_root (str): see the layout.
        classes (Sequence[str]): class folders to read, in label order. Defaults to
            ``('Normal', 'COVID')``; e.g. ``('COVID', 'Normal', 'Lung_Opacity',
            'Viral Pneumonia')`` for all four.
        **kwargs: see :class:`BaseCXRDataset`.
    """

    METAINFO = dict(classes=COVID_CLASSES)
    DEFAULT_VIEWS = None
    ID_NAME = 'path relative to data_root'

    def __init__(self, data_root: str, classes: Sequence[str] = COVID_CLASSES, **kwargs):
        if isinstance(classes, str) or not classes:
            raise ValueError('COVIDRadiographyDataset: classes must be a non-empty sequence of '
                             'class folder names.')
        metainfo = dict(kwargs.pop('metainfo', None) or {})
        metainfo['classes'] = tuple(classes)
        super().__init__(data_root=data_root, metainfo=metainfo, **kwargs)

    def load_records(self) -> List[dict]:
        available = sorted(d for d in os.listdir(self.data_root)
                           if osp.isdir(osp.join(self.data_root, d)))
        records = []
        for label, name in enumerate(self.classes):
            if not osp.isdir(osp.join(self.data_root, name)):
                raise FileNotFoundError(
                    f'COVIDRadiographyDataset: class folder {name!r} not found in {self.data_root} '
                    f'(folders there: {available}); fix classes= or data_root.')
            paths, layout = list_covid_images(self.data_root, name)
            if not paths:
                raise FileNotFoundError(f'COVIDRadiographyDataset: no images in '
                                        f'{osp.join(self.data_root, name)} ({layout} layout).')
            for rel in paths:
                stem = osp.splitext(osp.basename(rel))[0]
                records.append(dict(
                    img_path=osp.join(self.data_root, rel),
                    study_id=f'{name}/{stem}',
                    subject_id=stem,
                    gt_label=label,
                    _id=rel))
            self.load_stats[f'images_{name}'] = len(paths)
        return records
