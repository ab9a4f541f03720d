"""CheXpertDataset on a tiny CheXpert-v1.0-small fixture."""
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from lgdea.datasets import CheXpertDataset
from lgdea.datasets.base_cxr import CHEXPERT_CLASSES

# (path after the prefix, Frontal/Lateral, AP/PA, labels)
ROWS = [
    ('train/patient00001/study1/view1_frontal.jpg', 'Frontal', 'AP', {'Edema': '1.0', 'Cardiomegaly': '-1.0'}),
    ('train/patient00001/study1/view2_lateral.jpg', 'Lateral', '', {'Edema': '1.0'}),
    ('train/patient00002/study1/view1_frontal.jpg', 'Frontal', 'PA', {'No Finding': '1.0'}),
    ('train/patient00002/study2/view1_frontal.jpg', 'Frontal', '', {'Pleural Effusion': '0.0'}),
    ('train/patient00003/study1/view1_frontal.jpg', 'Frontal', 'LL', {}),
]


def make_chexpert_fixture(root, prefix='CheXpert-v1.0-small', rows=ROWS, name='train.csv',
                          csv_prefix=None):
    """``root/<prefix>/train.csv`` + images; ``csv_prefix`` is the prefix written in Path."""
    base = osp.join(root, prefix)
    header = ['Path', 'Sex', 'Age', 'Frontal/Lateral', 'AP/PA', *CHEXPERT_CLASSES]
    lines = [','.join(header)]
    for rel, frontal, appa, labels in rows:
        lines.append(','.join([f'{csv_prefix or prefix}/{rel}', 'Female', '60', frontal, appa] +
                              [labels.get(c, '') for c in CHEXPERT_CLASSES]))
        os.makedirs(osp.dirname(osp.join(base, rel)), exist_ok=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(osp.join(base, rel))
    os.makedirs(base, exist_ok=True)
    with open(osp.join(base, name), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return str(root)


def test_frontal_default_views_ids_and_labels(tmp_path):
    root = make_chexpert_fixture(tmp_path)
    ds = CheXpertDataset(data_root=root, check_files=True)
    recs = [ds.get_data_info(i) for i in range(len(ds))]
    # lateral and LL dropped; blank AP/PA of a frontal image -> FRONTAL, kept
    assert [r['view'] for r in recs] == ['AP', 'PA', 'FRONTAL']
    first = recs[0]
    assert first['study_id'] == 'patient00001/study1' and first['subject_id'] == 'patient00001'
    assert 'report' not in first
    assert first['img_path'] == osp.join(root, 'CheXpert-v1.0-small',
                                         'train/patient00001/study1/view1_frontal.jpg')
    classes = list(ds.metainfo['classes'])
    assert first['gt_score'][classes.index('Edema')] == 1
    assert np.isnan(first['gt_score'][classes.index('Cardiomegaly')])  # uncertain -> NaN
    assert np.isnan(first['gt_score'][classes.index('Fracture')])  # blank -> NaN
    assert recs[2]['gt_score'][classes.index('Pleural Effusion')] == 0


@pytest.mark.parametrize('uncertain,blank,expect_u,expect_blank', [
    ('ones', 'zeros', 1.0, 0.0), ('zeros', 'nan', 0.0, np.nan)])
def test_uncertain_and_blank_mapping(tmp_path, uncertain, blank, expect_u, expect_blank):
    root = make_chexpert_fixture(tmp_path)
    ds = CheXpertDataset(data_root=root, uncertain=uncertain, blank=blank,
                         classes=('Cardiomegaly', 'Fracture'))
    score = ds.get_data_info(0)['gt_score']
    assert ds.metainfo['classes'] == ('Cardiomegaly', 'Fracture')
    assert score.shape == (2, )
    np.testing.assert_equal(score, np.array([expect_u, expect_blank], np.float32))


def test_prefix_mismatch_resolved_on_disk(tmp_path):
    # CSV says CheXpert-v1.0/ but the files are the small release, data_root is that folder
    root = make_chexpert_fixture(tmp_path, csv_prefix='CheXpert-v1.0')
    ds = CheXpertDataset(data_root=osp.join(root, 'CheXpert-v1.0-small'), check_files=True)
    assert len(ds) == 3
    ds = CheXpertDataset(data_root=root, check_files=True, views=None)
    assert len(ds) == 5


def test_valid_split_and_id_list(tmp_path):
    root = make_chexpert_fixture(tmp_path, name='valid.csv')
    with pytest.raises(FileNotFoundError, match='train.csv'):
        CheXpertDataset(data_root=root, split='train')
    ids = tmp_path / 'ids.txt'
    ids.write_text('CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg\n'
                   'train/patient00001/study1/view1_frontal.jpg\n')
    ds = CheXpertDataset(data_root=root, split='valid', split_file=str(ids))
    assert sorted(ds.get_data_info(i)['subject_id'] for i in range(len(ds))) == \
        ['patient00001', 'patient00002']


def test_errors(tmp_path):
    root = make_chexpert_fixture(tmp_path)
    with pytest.raises(KeyError, match="'Nodule'"):
        CheXpertDataset(data_root=root, classes=('Nodule', ))
    with pytest.raises(ValueError, match='uncertain must be'):
        CheXpertDataset(data_root=root, uncertain='maybe')
    path = osp.join(root, 'CheXpert-v1.0-small', 'train.csv')
    text = open(path).read().replace(',Frontal,AP,', ',Oblique,AP,')
    open(path, 'w').write(text)
    with pytest.raises(ValueError, match='Frontal/Lateral'):
        CheXpertDataset(data_root=root)
