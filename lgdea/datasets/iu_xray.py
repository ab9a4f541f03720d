"""IU X-ray (Indiana University chest X-ray collection, Open-i)."""
import glob
import json
import logging
import os.path as osp
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Sequence

import numpy as np

from lgdea.registry import DATASETS
from .base_cxr import FRONTAL_VIEWS, BaseCXRDataset, normalize_view, utf8_error

__all__ = ['IUXrayDataset', 'IU_CLASSES', 'iu_labels_from_mesh', 'parse_iu_xml']

#: Label keys of ``labels_from_mesh`` (in the order of the shared JSONL).
IU_CLASSES = ('normal', 'cardiomegaly', 'pleural_effusion', 'atelectasis', 'opacity', 'edema',
              'pneumothorax', 'nodule_mass', 'emphysema', 'granuloma', 'fracture',
              'support_devices')

# MeSH <major> term prefixes (lower case) that set each label. A term such as
# "Opacity/lung/base/left" matches when it starts with one of the prefixes.
_MESH_PREFIXES = {
    'normal': ('normal', ),
    'cardiomegaly': ('cardiomegaly', ),
    'pleural_effusion': ('pleural effusion', ),
    'atelectasis': ('pulmonary atelectasis', 'atelectasis'),
    'opacity': ('opacity', 'airspace disease', 'consolidation', 'infiltrate', 'pneumonia'),
    'edema': ('pulmonary edema', 'pulmonary congestion', 'edema'),
    'pneumothorax': ('pneumothorax', ),
    'nodule_mass': ('nodule', 'mass', 'lung neoplasms', 'pulmonary nodule'),
    'emphysema': ('emphysema', 'pulmonary emphysema'),
    'granuloma': ('granuloma', 'calcified granuloma', 'granulomatous disease'),
    'fracture': ('fractures, bone', ),
    'support_devices': ('catheters, indwelling', 'implanted medical device', 'medical device',
                        'stents', 'surgical instruments', 'tube, inserted'),
}


def iu_labels_from_mesh(major_terms: Sequence[str]) -> Dict[str, int]:
    """Binary labels (keys :data:`IU_CLASSES`) from the MeSH ``<major>`` terms of a report.

    Prefix matching of the lower-cased terms against a fixed table. On the shared
    ``reports.jsonl`` it reproduces the shipped ``labels_from_mesh`` except where a term
    starts with ``Tuberculosis``, which the shipped flags count as a support device (a
    ``tube`` prefix match) and this table does not.
    """
    terms = [str(t).strip().lower() for t in major_terms]
    return {key: int(any(t.startswith(p) for t in terms for p in prefixes))
            for key, prefixes in _MESH_PREFIXES.items()}


def _text(element) -> Optional[str]:
    if element is None:
        return None
    text = ' '.join(''.join(element.itertext()).split())
    return text or None


def parse_iu_xml(path: str) -> dict:
    """One ``ecgen-radiology/*.xml`` report -> a dict in the JSONL record form.

    Keys: ``id`` (``uId``, e.g. ``CXR1``), ``images`` (``[{image_id, png_name, view=None}]``
    from ``parentImage``), ``comparison``, ``indication``, ``findings``, ``impression``
    (``AbstractText`` by ``Label``; None when empty), ``mesh_major``, ``mesh_minor`` and
    ``labels_from_mesh`` (:func:`iu_labels_from_mesh`).
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f'{path}: not a readable IU X-ray XML report ({exc}).') from exc
    uid = root.find('.//uId')
    study = uid.get('id') if uid is not None and uid.get('id') else (
        'CXR' + osp.splitext(osp.basename(path))[0])
    sections = {}
    for element in root.iter('AbstractText'):
        label = (element.get('Label') or '').strip().lower()
        if label:
            sections[label] = _text(element)
    images = []
    for element in root.iter('parentImage'):
        image_id = element.get('id')
        if image_id:
            images.append(dict(image_id=image_id, png_name=image_id + '.png', view=None))
    major = [_text(e) for e in root.iter('major') if _text(e)]
    minor = [_text(e) for e in root.iter('minor') if _text(e)]
    return dict(id=study, xml=osp.basename(path), images=images,
                comparison=sections.get('comparison'), indication=sections.get('indication'),
                findings=sections.get('findings'), impression=sections.get('impression'),
                mesh_major=major, mesh_minor=minor, labels_from_mesh=iu_labels_from_mesh(major))


@DATASETS.register_module()
class IUXrayDataset(BaseCXRDataset):
    """IU X-ray / Open-i reports with their PNG images, or as a report-only source.

    On-disk layout (either report form)::

        data_root/
          ecgen-radiology/1.xml ...   Open-i XML reports: AbstractText Label="FINDINGS" /
                                      "IMPRESSION", parentImage id="CXR1_1_IM-0001-3001",
                                      MeSH <major>/<minor>
          reports.jsonl               or the JSONL form: one study per line with id,
                                      images [{image_id, png_name, view, ...}], findings,
                                      impression, mesh_major, labels_from_mesh, ...
          images/CXR1_1_IM-0001-3001.png ...   (NLMCXR_png; optional with
                                                require_images=False)

    Image records: ``img_path``, ``study_id`` / ``subject_id`` (the study ``id``; IU has no
    patient IDs), ``report`` (``sections`` joined, None when empty), ``view`` (JSONL only;
    the XML has none), ``gt_score`` (``[12]`` float32 over :data:`IU_CLASSES` from
    ``labels_from_mesh``; derived from the MeSH terms for XML). Report-only records (no image
    on disk, ``require_images=False``) have ``img_path=None`` and no view. The ``_id`` of ID
    lists is the study ``id``.

    Args:
        data_root (str): see the layout.
        ann_file (str, optional): a ``.jsonl`` file or an XML folder; default:
            ``ecgen-radiology/`` if present, else ``reports.jsonl``.
        img_dir (str): image folder relative to ``data_root``. Defaults to ``images``.
        require_images (bool): True (default): the image folder must exist and every listed
            image gives a record. False: images on disk give image records; a study with no
            image file on disk gives one report-only record (``img_path=None``).
        sections (Sequence[str]): report sections, in order (``findings``, ``impression``,
            ``indication``, ``comparison``).
        views: defaults to ``('PA', 'AP')``; ``keep_unknown_views`` defaults to True here
            because the XML form (and some JSONL images) carry no view.
        **kwargs: see :class:`BaseCXRDataset`.
    """

    METAINFO = dict(classes=IU_CLASSES)
    DEFAULT_VIEWS = FRONTAL_VIEWS
    ID_NAME = 'study id (CXR<n>)'

    def __init__(self,
                 data_root: str,
                 ann_file: Optional[str] = None,
                 img_dir: str = 'images',
                 require_images: bool = True,
                 sections: Sequence[str] = ('findings', 'impression'),
                 keep_unknown_views: bool = True,
                 **kwargs):
        self._ann_name = ann_file
        self.img_dir = img_dir
        self.require_images = require_images
        self.sections = tuple(sections)
        unknown = set(self.sections) - {'findings', 'impression', 'indication', 'comparison'}
        if unknown:
            raise ValueError(f'IUXrayDataset: unknown sections {sorted(unknown)}; use findings, '
                             f'impression, indication, comparison.')
        super().__init__(data_root=data_root, keep_unknown_views=keep_unknown_views, **kwargs)

    def _read_studies(self) -> List[dict]:
        name = self._ann_name
        if name is None:
            if osp.isdir(osp.join(self.data_root, 'ecgen-radiology')):
                name = 'ecgen-radiology'
            elif osp.isfile(osp.join(self.data_root, 'reports.jsonl')):
                name = 'reports.jsonl'
            else:
                raise FileNotFoundError(
                    f'IUXrayDataset: neither ecgen-radiology/ nor reports.jsonl in '
                    f'{self.data_root}; set data_root to the IU X-ray folder or pass ann_file=.')
        path = name if osp.isabs(name) else osp.join(self.data_root, name)
        self.ann_file = path
        if osp.isdir(path):
            files = sorted(glob.glob(osp.join(path, '*.xml')))
            if not files:
                raise FileNotFoundError(f'IUXrayDataset: no *.xml reports in {path}.')
            return [parse_iu_xml(f) for f in files]
        if not osp.isfile(path):
            raise FileNotFoundError(f'IUXrayDataset: annotation file {path!r} not found; pass '
                                    f'ann_file= a reports.jsonl or the ecgen-radiology folder.')
        studies = []
        try:
            with open(path, encoding='utf-8') as f:
                lines = list(f)
        except UnicodeDecodeError as exc:
            raise utf8_error(path, exc) from exc
        for line_no, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                study = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f'{path}: line {line_no} is not JSON ({exc}).') from exc
            for key in ('id', 'images'):
                if key not in study:
                    raise KeyError(f'{path}: line {line_no} has no {key!r} key; expected the '
                                   f'IU X-ray JSONL form (id, images, findings, impression).')
            studies.append(study)
        return studies

    def _score(self, study: dict) -> Optional[np.ndarray]:
        labels = study.get('labels_from_mesh')
        if labels is None:
            if 'mesh_major' not in study:
                return None
            labels = iu_labels_from_mesh(study['mesh_major'])
        unknown = set(labels) - set(self.classes)
        if unknown:
            raise ValueError(f'{self.ann_file}: study {study["id"]!r} has labels {sorted(unknown)} '
                             f'outside classes {list(self.classes)}.')
        score = np.full(len(self.classes), np.nan, dtype=np.float32)
        for j, name in enumerate(self.classes):
            if name in labels:
                value = labels[name]
                if value not in (0, 1):
                    raise ValueError(f'{self.ann_file}: study {study["id"]!r} label {name!r} = '
                                     f'{value!r}; expected 0 or 1.')
                score[j] = float(value)
        return score

    def load_records(self) -> List[dict]:
        studies = self._read_studies()
        image_dir = osp.join(self.data_root, self.img_dir)
        has_images = osp.isdir(image_dir)
        if self.require_images and not has_images:
            raise FileNotFoundError(
                f'IUXrayDataset: image folder {image_dir!r} not found. Put the Open-i PNGs there '
                f'(img_dir=) or use require_images=False for a report-only source.')
        records = []
        report_only = dropped_empty = 0
        for study in studies:
            pieces = [study.get(s) for s in self.sections]
            report = ' '.join(' '.join(p.split()) for p in pieces if p and p.strip()) or None
            score = self._score(study)
            common = dict(study_id=str(study['id']), subject_id=str(study['id']), report=report)
            n_before = len(records)
            for image in study['images']:
                png = image.get('png_name') or (image.get('image_id', '') + '.png')
                path = osp.join(image_dir, png)
                if not self.require_images and not osp.isfile(path):
                    continue
                record = dict(img_path=path, view=normalize_view(image.get('view')), **common)
                if score is not None:
                    record['gt_score'] = score.copy()
                record['_id'] = str(study['id'])
                records.append(record)
            if len(records) == n_before and not self.require_images:
                if report is None:
                    dropped_empty += 1
                    continue
                record = dict(img_path=None, **common)
                if score is not None:
                    record['gt_score'] = score.copy()
                record['_id'] = str(study['id'])
                records.append(record)
                report_only += 1
        self.load_stats.update(studies=len(studies), report_only_records=report_only,
                               studies_without_text_or_image=dropped_empty,
                               studies_without_usable_report=sum(
                                   1 for s in studies
                                   if not any((s.get(k) or '').strip() for k in self.sections)))
        if not has_images:
            self._log(f'no image folder {image_dir}: {report_only} report-only records',
                      logging.INFO)
        return records
