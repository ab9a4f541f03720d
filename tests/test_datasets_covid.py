"""COVIDRadiographyDataset (fixture) and the real Hannover COVID images via GenericVLDataset."""
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED_DATA
from lgdea.datasets import COVIDRadiographyDataset, GenericVLDataset

HANNOVER = osp.join(SHARED_DATA, 'hannover_covid_cxr')


def _img(path):
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(path)


def make_covid_fixture(root, layout='images'):
    counts = {'COVID': 3, 'Normal': 5, 'Lung_Opacity': 2, 'Viral Pneumonia': 1}
    for cls, n in counts.items():
        for i in range(1, n + 1):
            name = f'{cls}-{i}.png'
            if layout == 'images':
                _img(osp.join(root, cls, 'images', name))
            else:
                _img(osp.join(root, cls, name))
            _img(osp.join(root, cls, 'masks', name))  # same names as the images
    with open(osp.join(root, 'COVID.metadata.xlsx'), 'wb') as f:
        f.write(b'not read')
    return str(root)


@pytest.mark.parametrize('layout', ['images', 'flat'])
def test_default_binary_and_masks_never_listed(tmp_path, layout):
    root = make_covid_fixture(str(tmp_path), layout)
    ds = COVIDRadiographyDataset(data_root=root, check_files=True)
    recs = [ds.get_data_info(i) for i in range(len(ds))]
    assert ds.metainfo['classes'] == ('Normal', 'COVID')
    assert len(recs) == 8
    assert not any('masks' in r['img_path'].split(os.sep) for r in recs)
    assert sum(r['gt_label'] == 1 for r in recs) == 3
    r = next(r for r in recs if r['gt_label'] == 1)
    assert set(r) == {'img_path', 'study_id', 'subject_id', 'gt_label', 'sample_idx'}
    expected_dir = osp.join(root, 'COVID', 'images') if layout == 'images' else osp.join(root, 'COVID')
    assert osp.dirname(r['img_path']) == expected_dir


def test_four_classes_and_id_list(tmp_path):
    root = make_covid_fixture(str(tmp_path))
    classes = ('COVID', 'Normal', 'Lung_Opacity', 'Viral Pneumonia')
    ds = COVIDRadiographyDataset(data_root=root, classes=classes)
    assert len(ds) == 11
    labels = [ds.get_data_info(i)['gt_label'] for i in range(len(ds))]
    assert np.bincount(labels).tolist() == [3, 5, 2, 1]
    ids = tmp_path / 'covid_test.csv'
    ids.write_text('path,label\nViral Pneumonia/images/Viral Pneumonia-1.png,Viral Pneumonia\n'
                   'COVID/images/COVID-2.png,COVID\n')
    sub = COVIDRadiographyDataset(data_root=root, classes=classes, split_file=str(ids))
    assert sorted(sub.get_data_info(i)['study_id'] for i in range(len(sub))) == \
        ['COVID/COVID-2', 'Viral Pneumonia/Viral Pneumonia-1']


def test_missing_class_folder(tmp_path):
    root = make_covid_fixture(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="class folder 'Pneumonia' not found"):
        COVIDRadiographyDataset(data_root=root, classes=('Normal', 'Pneumonia'))


@pytest.mark.skipif(not osp.isdir(HANNOVER), reason='shared Hannover COVID images not present')
def test_real_hannover_images_through_generic():
    """243 real radiographs of 71 patients, all COVID-19 positive (labels.csv, CC BY 3.0)."""
    ds = GenericVLDataset(
        data_root=HANNOVER, ann_file='labels.csv', classes=('Normal', 'COVID'),
        column_map=dict(label='label_covid19', view='projection', subject_id='patient_id',
                        study_id='image_id'),
        label_map={1: 'COVID', 0: 'Normal'}, check_files=True)
    recs = [ds.get_data_info(i) for i in range(len(ds))]
    assert len(recs) == 243
    assert len({r['subject_id'] for r in recs}) == 71
    assert all(r['gt_label'] == 1 for r in recs)  # all COVID-positive
    assert {r['view'] for r in recs} <= {'AP', 'PA'}
    frontal = GenericVLDataset(
        data_root=HANNOVER, ann_file='labels.csv', classes=('Normal', 'COVID'),
        column_map=dict(label='label_covid19', view='projection'),
        label_map={1: 'COVID'}, views=('PA', ))
    assert 0 < len(frontal) < 243
    # the size columns agree with the files for a sample
    with Image.open(recs[0]['img_path']) as im:
        import pandas as pd
        row = pd.read_csv(osp.join(HANNOVER, 'labels.csv')).iloc[0]
        assert im.size == (row['width'], row['height'])
