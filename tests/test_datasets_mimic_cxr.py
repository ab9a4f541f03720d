"""MIMICCXRDataset on a tiny MIMIC-CXR-JPG fixture in the real layout."""
import gzip
import os
import os.path as osp
import pickle

import numpy as np
import pytest
from PIL import Image

from lgdea.datasets import MIMICCXRDataset
from lgdea.datasets.base_cxr import CHEXPERT_CLASSES, CHEXPERT_COMPETITION_TASKS
from lgdea.registry import DATASETS

REPORT_FULL = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)
 
 INDICATION:  Cough.
 
 FINDINGS: 
 
 Lungs are clear.
 
 IMPRESSION: 
 
 No acute process.
"""
REPORT_IMPRESSION_ONLY = """ INDICATION:  Fever.
 
 IMPRESSION:  Right lower lobe pneumonia.
"""
REPORT_NO_HEADERS = """                                 FINAL REPORT
 PORTABLE CHEST OF ___
 
 Moderate cardiomegaly, unchanged.
"""
REPORT_UNUSABLE = """                                 FINAL REPORT
 WET READ: ___ no change
"""

# (subject, study, split, [(dicom, view)], report text or None = missing file, labels)
# labels: dict class -> '1' / '0' / '-1' (others blank)
STUDIES = [
    ('10000001', '50000001', 'train', [('d1a', 'PA'), ('d1b', 'LATERAL')], REPORT_FULL,
     {'No Finding': '1'}),
    ('10000001', '50000002', 'train', [('d2a', 'AP')], REPORT_IMPRESSION_ONLY,
     {'Pneumonia': '1', 'Consolidation': '-1'}),
    ('10000002', '50000003', 'validate', [('d3a', 'PA'), ('d3b', 'PA')], REPORT_NO_HEADERS,
     {'Cardiomegaly': '1', 'Edema': '0'}),
    ('10000003', '50000004', 'test', [('d4a', 'AP')], None, {'Edema': '1'}),
    ('11000004', '50000005', 'test', [('d5a', 'PA'), ('d5b', 'LL')], REPORT_UNUSABLE,
     {'Atelectasis': '1'}),
    ('11000005', '50000006', 'train', [('d6a', '')], REPORT_FULL, {}),  # no view recorded
]


def _write_csv(path, header, rows, gz=False):
    text = ','.join(header) + '\n' + ''.join(','.join(r) + '\n' for r in rows)
    if gz:
        with gzip.open(path + '.gz', 'wt') as f:
            f.write(text)
    else:
        with open(path, 'w') as f:
            f.write(text)


def make_mimic_fixture(root, studies=STUDIES, gz=True, report_root=None, image_size=(24, 20),
                       with_labels_for_all=False):
    """Write a MIMIC-CXR-JPG tree (CSV.gz tables, JPEG images, text reports) under ``root``."""
    report_root = report_root or root
    split_rows, meta_rows, label_rows = [], [], []
    for subject, study, split, images, report, labels in studies:
        for dicom, view in images:
            split_rows.append([dicom, study, subject, split])
            meta_rows.append([dicom, subject, study, 'CHEST (PA AND LAT)', view,
                              str(image_size[1] * 10), str(image_size[0] * 10)])
            folder = osp.join(root, 'files', f'p{subject[:2]}', f'p{subject}', f's{study}')
            os.makedirs(folder, exist_ok=True)
            Image.fromarray(np.full(image_size[::-1], 100, np.uint8)).save(
                osp.join(folder, f'{dicom}.jpg'))
        if report is not None:
            folder = osp.join(report_root, 'files', f'p{subject[:2]}', f'p{subject}')
            os.makedirs(folder, exist_ok=True)
            with open(osp.join(folder, f's{study}.txt'), 'w') as f:
                f.write(report)
        if labels or with_labels_for_all:
            label_rows.append([subject, study] + [labels.get(c, '') for c in sorted(CHEXPERT_CLASSES)])
    _write_csv(osp.join(root, 'mimic-cxr-2.0.0-split.csv'),
               ['dicom_id', 'study_id', 'subject_id', 'split'], split_rows, gz)
    _write_csv(osp.join(root, 'mimic-cxr-2.0.0-metadata.csv'),
               ['dicom_id', 'subject_id', 'study_id', 'PerformedProcedureStepDescription',
                'ViewPosition', 'Rows', 'Columns'], meta_rows, gz)
    _write_csv(osp.join(root, 'mimic-cxr-2.0.0-chexpert.csv'),
               ['subject_id', 'study_id'] + sorted(CHEXPERT_CLASSES), label_rows, gz)
    return str(root)


@pytest.fixture()
def mimic_root(tmp_path):
    return make_mimic_fixture(tmp_path / 'mimic')


def _by_image(dataset):
    return {osp.basename(dataset[i]['img_path']): dataset.get_data_info(i) for i in range(len(dataset))}


def test_frontal_records_reports_and_labels(mimic_root):
    ds = MIMICCXRDataset(data_root=mimic_root)
    recs = _by_image(ds)
    # frontal only (no lateral d1b, no LL d5b, no unknown-view d6a)
    assert sorted(recs) == ['d1a.jpg', 'd2a.jpg', 'd3a.jpg', 'd3b.jpg', 'd4a.jpg', 'd5a.jpg']
    assert set(recs['d1a.jpg']) == {'img_path', 'study_id', 'subject_id', 'view', 'report',
                                    'gt_score', 'sample_idx'}
    assert recs['d1a.jpg']['study_id'] == '50000001'
    assert recs['d1a.jpg']['subject_id'] == '10000001'
    assert recs['d1a.jpg']['view'] == 'PA'
    assert recs['d1a.jpg']['report'] == 'Lungs are clear. No acute process.'
    assert recs['d2a.jpg']['report'] == 'Right lower lobe pneumonia.'
    assert recs['d3a.jpg']['report'] == 'Moderate cardiomegaly, unchanged.'  # last paragraph
    assert recs['d4a.jpg']['report'] is None  # missing file
    assert recs['d5a.jpg']['report'] is None  # no usable section
    assert osp.isfile(recs['d1a.jpg']['img_path'])
    # labels: CheXpert order, blank -> NaN, -1 -> NaN (uncertain='ignore')
    classes = list(ds.metainfo['classes'])
    assert classes == list(CHEXPERT_CLASSES)
    score = recs['d2a.jpg']['gt_score']
    assert score.dtype == np.float32 and score.shape == (14, )
    assert score[classes.index('Pneumonia')] == 1
    assert np.isnan(score[classes.index('Consolidation')])
    assert np.isnan(score[classes.index('Edema')])
    assert recs['d3a.jpg']['gt_score'][classes.index('Edema')] == 0
    assert ds.load_stats['missing_report_files'] == 1
    assert ds.load_stats['reports_without_usable_section'] == 1
    assert ds.load_stats['dropped_by_view'] == 3


def test_label_mapping_options(mimic_root):
    ds = MIMICCXRDataset(data_root=mimic_root, uncertain='ones', blank='zeros', with_report=False)
    recs = _by_image(ds)
    classes = list(ds.metainfo['classes'])
    score = recs['d2a.jpg']['gt_score']
    assert score[classes.index('Consolidation')] == 1 and score[classes.index('Edema')] == 0
    assert 'report' not in recs['d2a.jpg']


def test_split_views_and_unknown_views(mimic_root):
    test = MIMICCXRDataset(data_root=mimic_root, split='test')
    assert sorted(_by_image(test)) == ['d4a.jpg', 'd5a.jpg']
    val = MIMICCXRDataset(data_root=mimic_root, split='val', views=None)
    assert sorted(_by_image(val)) == ['d3a.jpg', 'd3b.jpg']
    everything = MIMICCXRDataset(data_root=mimic_root, views=None)
    assert len(everything) == 9
    lateral = MIMICCXRDataset(data_root=mimic_root, views=('LATERAL', 'LL'))
    assert sorted(_by_image(lateral)) == ['d1b.jpg', 'd5b.jpg']
    keep_unknown = MIMICCXRDataset(data_root=mimic_root, keep_unknown_views=True)
    assert 'd6a.jpg' in _by_image(keep_unknown)
    assert 'view' not in _by_image(keep_unknown)['d6a.jpg']


def test_exclusion_list_counts(mimic_root, tmp_path):
    exclude = tmp_path / 'exclude_subjects.txt'
    exclude.write_text('# evaluation subjects\n10000001\np10000002\n99999999\n')
    ds = MIMICCXRDataset(data_root=mimic_root, exclude_subjects_file=str(exclude))
    assert sorted(_by_image(ds)) == ['d4a.jpg', 'd5a.jpg']
    assert ds.load_stats['excluded_subjects'] == 2
    assert ds.load_stats['excluded_records'] == 5  # before the view filter: d1b counts too


def test_split_file_with_labels_gives_gt_label(mimic_root, tmp_path):
    id_file = tmp_path / 'mimic_5x200.csv'
    id_file.write_text('# seed=0\ndicom_id,study_id,subject_id,view,label\n'
                       'd4a,50000004,10000003,AP,Edema\nd5a,50000005,11000004,PA,Atelectasis\n')
    ds = MIMICCXRDataset(data_root=mimic_root, split='test', split_file=str(id_file),
                         classes=CHEXPERT_COMPETITION_TASKS)
    recs = _by_image(ds)
    assert ds.metainfo['classes'] == CHEXPERT_COMPETITION_TASKS
    assert recs['d4a.jpg']['gt_label'] == CHEXPERT_COMPETITION_TASKS.index('Edema')
    assert recs['d5a.jpg']['gt_label'] == CHEXPERT_COMPETITION_TASKS.index('Atelectasis')
    assert recs['d4a.jpg']['gt_score'].shape == (5, )
    assert recs['d4a.jpg']['gt_score'][CHEXPERT_COMPETITION_TASKS.index('Edema')] == 1


def test_separate_report_root_and_files_folder(tmp_path):
    root = make_mimic_fixture(tmp_path / 'jpg', report_root=str(tmp_path / 'reports'))
    ds = MIMICCXRDataset(data_root=root, report_root=str(tmp_path / 'reports'))
    assert _by_image(ds)['d1a.jpg']['report'] == 'Lungs are clear. No acute process.'
    ds = MIMICCXRDataset(data_root=root, report_root=str(tmp_path / 'reports' / 'files'))
    assert _by_image(ds)['d1a.jpg']['report'] == 'Lungs are clear. No acute process.'
    # reports not found under data_root -> counted warnings, not a crash
    ds = MIMICCXRDataset(data_root=root)
    assert ds.load_stats['missing_report_files'] == 6


def test_preprocessed_root_and_ori_shape(mimic_root, tmp_path):
    pre = tmp_path / 'pre'
    rel = 'files/p10/p10000001/s50000001/d1a.jpg'
    (pre / osp.dirname(rel)).mkdir(parents=True)
    Image.fromarray(np.zeros((12, 10), np.uint8)).save(pre / rel)
    (pre / 'sizes.csv').write_text(f'path,width,height,new_width,new_height\n{rel},200,240,10,12\n')
    ds = MIMICCXRDataset(data_root=mimic_root, preprocessed_root=str(pre))
    recs = _by_image(ds)
    assert recs['d1a.jpg']['img_path'] == str(pre / rel)
    assert recs['d1a.jpg']['ori_shape'] == (240, 200)
    # not in sizes.csv -> from the metadata Rows / Columns
    assert recs['d2a.jpg']['ori_shape'] == (200, 240)
    with pytest.raises(FileNotFoundError, match='check_files'):
        MIMICCXRDataset(data_root=mimic_root, preprocessed_root=str(pre), check_files=True)


def test_serialization_pipeline_and_registry(mimic_root):
    ds = DATASETS.build(dict(type='MIMICCXRDataset', data_root=mimic_root, check_files=True))
    assert ds.serialize_data
    item = ds[0]  # empty pipeline: the record itself
    assert isinstance(item['gt_score'], np.ndarray)
    pickle.dumps(ds.get_data_info(0))
    lazy = MIMICCXRDataset(data_root=mimic_root, lazy_init=True)
    assert len(lazy) == len(ds)


def test_clear_errors(mimic_root, tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        MIMICCXRDataset(data_root=str(tmp_path / 'nope'))
    with pytest.raises(FileNotFoundError, match='mimic-cxr-2.0.0-split.csv'):
        MIMICCXRDataset(data_root=str(tmp_path))
    with pytest.raises(ValueError, match='unknown view'):
        MIMICCXRDataset(data_root=mimic_root, views=('PA', 'SIDEWAYS'))
    with pytest.raises(ValueError, match='unknown split'):
        MIMICCXRDataset(data_root=mimic_root, split='holdout')
    # wrong column name
    path = osp.join(mimic_root, 'mimic-cxr-2.0.0-metadata.csv.gz')
    with gzip.open(path, 'rt') as f:
        text = f.read()
    with gzip.open(path, 'wt') as f:
        f.write(text.replace('ViewPosition', 'View'))
    with pytest.raises(KeyError, match="ViewPosition"):
        MIMICCXRDataset(data_root=mimic_root)


def test_bad_label_value(tmp_path):
    studies = [('10000001', '50000001', 'train', [('d1a', 'PA')], REPORT_FULL, {'Edema': '2'})]
    root = make_mimic_fixture(tmp_path / 'm', studies=studies, gz=False)
    with pytest.raises(ValueError, match="column 'Edema' holds '2'"):
        MIMICCXRDataset(data_root=root)


def test_feeds_the_limited_pairing_layer(mimic_root):
    """Studies without usable text keep their images in the unpaired-image pool."""
    lp_cls = DATASETS.get('LimitedPairingDataset')
    if lp_cls is None:
        pytest.skip('LimitedPairingDataset is not registered yet')
    source = MIMICCXRDataset(data_root=mimic_root)
    lp = lp_cls(dataset=source, pair_ratio=1.0, pair_seed=0)
    # 6 frontal images of 5 studies; studies 50000004 (missing file) and 50000005 (no section)
    # have no report: 2 images unpaired, 3 studies paired with 4 images
    assert sorted(lp.paired_studies) == ['50000001', '50000002', '50000003']
    assert len(lp.images) == 6 and len(lp.reports) == 3
    unpaired = {lp.images[i]['study_id'] for i in lp.unpaired_image_ids}
    assert unpaired == {'50000004', '50000005'}


def test_report_cache(mimic_root, tmp_path):
    cache = tmp_path / 'cache' / 'reports.json'
    first = MIMICCXRDataset(data_root=mimic_root, report_cache=str(cache))
    assert cache.is_file()
    # the cache is used: editing a report file does not change the record until it is deleted
    path = osp.join(mimic_root, 'files', 'p10', 'p10000001', 's50000002.txt')
    with open(path, 'w') as f:
        f.write(' IMPRESSION:  Changed text.\n')
    cached = MIMICCXRDataset(data_root=mimic_root, report_cache=str(cache))
    assert _by_image(cached)['d2a.jpg']['report'] == _by_image(first)['d2a.jpg']['report']
    assert cached.load_stats['missing_report_files'] == 1
    assert cached.load_stats['reports_without_usable_section'] == 1
    other_sections = MIMICCXRDataset(data_root=mimic_root, report_cache=str(cache),
                                     sections=('impression', ))
    assert _by_image(other_sections)['d2a.jpg']['report'] == 'Changed text.'
    cache.unlink()
    fresh = MIMICCXRDataset(data_root=mimic_root, report_cache=str(cache))
    assert _by_image(fresh)['d2a.jpg']['report'] == 'Changed text.'
