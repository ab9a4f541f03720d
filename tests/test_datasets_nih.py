"""NIHChestXray14Dataset on a tiny fixture, and the shipped BBox_List_2017 table."""
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED_DATA
from lgdea.datasets import NIHChestXray14Dataset
from lgdea.datasets.nih import NIH_CLASSES, read_nih_bbox_table

NIH_BBOX = osp.join(SHARED_DATA, 'box_tables', 'nih_bbox_list_2017.csv')

ENTRY = """Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]
00000001_000.png,Cardiomegaly,0,1,58,M,PA,1024,1024,0.143,0.143
00000001_001.png,Cardiomegaly|Emphysema,1,1,58,M,PA,1024,1024,0.143,0.143
00000002_000.png,No Finding,0,2,81,M,AP,1024,1024,0.171,0.171
00000003_000.png,Infiltration|Effusion|Pleural_Thickening,0,3,74,F,PA,1024,1024,0.143,0.143
"""
OFFICIAL_BBOX = """Image Index,Finding Label,Bbox [x,y,w,h],,,
00000001_000.png,Cardiomegaly,300.5,400.25,200,150
00000003_000.png,Infiltrate,10,20,30,40
00000003_000.png,Infiltrate,50,60,70,80
00000003_000.png,Effusion,1,2,3,4
"""


def make_nih_fixture(root, layout='archives', bbox=OFFICIAL_BBOX):
    os.makedirs(root, exist_ok=True)
    with open(osp.join(root, 'Data_Entry_2017_v2020.csv'), 'w') as f:
        f.write(ENTRY)
    with open(osp.join(root, 'BBox_List_2017.csv'), 'w') as f:
        f.write(bbox)
    with open(osp.join(root, 'train_val_list.txt'), 'w') as f:
        f.write('00000001_000.png\n00000001_001.png\n00000003_000.png\n')
    with open(osp.join(root, 'test_list.txt'), 'w') as f:
        f.write('00000002_000.png\n')
    names = [line.split(',')[0] for line in ENTRY.splitlines()[1:]]
    for i, name in enumerate(names):
        if layout == 'archives':
            folder = osp.join(root, f'images_{1 + i // 2:03d}', 'images')
        else:
            folder = osp.join(root, 'images')
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(osp.join(folder, name))
    return str(root)


@pytest.mark.parametrize('layout', ['archives', 'flat'])
def test_classification_records(tmp_path, layout):
    root = make_nih_fixture(str(tmp_path), layout)
    ds = NIHChestXray14Dataset(data_root=root, check_files=True)
    recs = {osp.basename(ds.get_data_info(i)['img_path']): ds.get_data_info(i)
            for i in range(len(ds))}
    assert len(recs) == 4
    classes = list(ds.metainfo['classes'])
    assert classes == list(NIH_CLASSES)
    r = recs['00000001_001.png']
    assert set(r) == {'img_path', 'study_id', 'subject_id', 'view', 'gt_score', 'sample_idx'}
    assert r['subject_id'] == '00000001' and r['study_id'] == '00000001_001' and r['view'] == 'PA'
    expected = np.zeros(14, np.float32)
    expected[[classes.index('Cardiomegaly'), classes.index('Emphysema')]] = 1
    np.testing.assert_array_equal(r['gt_score'], expected)
    assert recs['00000002_000.png']['gt_score'].sum() == 0  # No Finding -> all zeros
    assert recs['00000003_000.png']['gt_score'][classes.index('Pleural_Thickening')] == 1
    if layout == 'archives':
        assert '/images_002/images/' in recs['00000003_000.png']['img_path']


def test_official_splits_and_fraction_list(tmp_path):
    root = make_nih_fixture(str(tmp_path))
    test = NIHChestXray14Dataset(data_root=root, split='test')
    assert [test.get_data_info(i)['study_id'] for i in range(len(test))] == ['00000002_000']
    train = NIHChestXray14Dataset(data_root=root, split='train_val')
    assert len(train) == 3
    frac = tmp_path / 'nih_train_1pct.csv'
    frac.write_text('# seed=0\nimage_index\n00000003_000.png\n')
    sub = NIHChestXray14Dataset(data_root=root, split='train', split_file=str(frac))
    assert len(sub) == 1


BBOX_VARIANTS = {
    # header as shipped, data rows padded to the header's nine fields
    'official_trailing_commas': '\n'.join(
        [OFFICIAL_BBOX.splitlines()[0]] + [r + ',,,' for r in OFFICIAL_BBOX.splitlines()[1:]]) + '\n',
    'official': OFFICIAL_BBOX,
    'cleaned': OFFICIAL_BBOX.replace('Image Index,Finding Label,Bbox [x,y,w,h],,,',
                                     'image_index,finding_label,x,y,w,h'),
}


@pytest.mark.parametrize('variant', sorted(BBOX_VARIANTS))
def test_bbox_header_variants_and_grounding(tmp_path, variant):
    root = make_nih_fixture(str(tmp_path), bbox=BBOX_VARIANTS[variant])
    table = read_nih_bbox_table(osp.join(root, 'BBox_List_2017.csv'))
    assert list(table.columns) == ['image_index', 'finding_label', 'x', 'y', 'w', 'h']
    assert len(table) == 4
    assert set(table['finding_label']) == {'Cardiomegaly', 'Infiltration', 'Effusion'}
    ds = NIHChestXray14Dataset(data_root=root, mode='grounding', check_files=True)
    recs = {(ds.get_data_info(i)['study_id'], ds.get_data_info(i)['category']): ds.get_data_info(i)
            for i in range(len(ds))}
    assert len(recs) == 3  # (image, finding) groups
    infiltration = recs[('00000003_000', 'Infiltration')]
    np.testing.assert_array_equal(infiltration['boxes'], [[10, 20, 30, 40], [50, 60, 70, 80]])
    assert infiltration['phrase'] == 'infiltration'
    assert infiltration['ori_shape'] == (1024, 1024)
    assert infiltration['gt_label'] == NIH_CLASSES.index('Infiltration')
    np.testing.assert_allclose(recs[('00000001_000', 'Cardiomegaly')]['boxes'],
                               [[300.5, 400.25, 200, 150]])


def test_errors(tmp_path):
    root = make_nih_fixture(str(tmp_path))
    path = osp.join(root, 'Data_Entry_2017_v2020.csv')
    open(path, 'w').write(ENTRY.replace('No Finding', 'Covid'))
    with pytest.raises(ValueError, match="'Covid'"):
        NIHChestXray14Dataset(data_root=root)
    open(path, 'w').write(ENTRY.replace('Finding Labels', 'Labels'))
    with pytest.raises(KeyError, match='Finding Labels'):
        NIHChestXray14Dataset(data_root=root)
    open(osp.join(root, 'BBox_List_2017.csv'), 'w').write('img,label,x,y,w,h\na.png,Mass,1,2,3,4\n')
    with pytest.raises(KeyError, match='unrecognised header'):
        NIHChestXray14Dataset(data_root=root, mode='grounding')
    with pytest.raises(ValueError, match="mode must be"):
        NIHChestXray14Dataset(data_root=root, mode='segmentation')


@pytest.mark.skipif(not osp.isfile(NIH_BBOX), reason='shared NIH box table not present')
def test_real_bbox_list(tmp_path):
    table = read_nih_bbox_table(NIH_BBOX)
    assert len(table) == 984
    assert table['image_index'].nunique() == 880
    assert set(table['finding_label']) == {'Atelectasis', 'Cardiomegaly', 'Effusion',
                                           'Infiltration', 'Mass', 'Nodule', 'Pneumonia',
                                           'Pneumothorax'}
    assert ((table[['w', 'h']] > 0).all(axis=None))
    assert (table[['x', 'y']] >= 0).all(axis=None) and (table['x'] + table['w'] <= 1024).all()
    # grounding records without Data Entry or images: one per (image, finding)
    ds = NIHChestXray14Dataset(data_root=str(tmp_path), mode='grounding', bbox_file=NIH_BBOX)
    pairs = table.groupby(['image_index', 'finding_label']).ngroups
    assert len(ds) == pairs
    assert sum(len(ds.get_data_info(i)['boxes']) for i in range(len(ds))) == 984
    assert len({ds.get_data_info(i)['study_id'] for i in range(len(ds))}) == 880
