"""MSCXRDataset on a tiny MS-CXR CSV with MIMIC-CXR-JPG paths."""
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from lgdea.datasets import MSCXRDataset

HEADER = 'dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height'
P1 = 'files/p10/p10000001/s50000001/d1.jpg'
P2 = 'files/p11/p11000002/s50000002/d2.jpg'
ROWS = [
    # two boxes of one phrase on d1
    f'd1,Pleural Effusion,bilateral pleural effusions,{P1},10,200,50,40,300,320',
    f'd1,Pleural Effusion,bilateral pleural effusions,{P1},220,210,45,35,300,320',
    # another phrase on the same image
    f'd1,Cardiomegaly,enlarged heart,{P1},100,150,120,90,300,320',
    f'd2,Pneumothorax,small left apical pneumothorax,{P2},20,10,30,25,256,240',
]


def make_ms_cxr_fixture(root, rows=ROWS, with_split=True, splits=('test', 'test', 'val', 'train'),
                        version='1.1.0', image_root=None):
    image_root = image_root or root
    os.makedirs(root, exist_ok=True)
    lines = [HEADER + (',split' if with_split else '')]
    for row, split in zip(rows, splits):
        lines.append(row + (f',{split}' if with_split else ''))
    with open(osp.join(root, f'MS_CXR_Local_Alignment_v{version}.csv'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    for rel in (P1, P2):
        os.makedirs(osp.dirname(osp.join(image_root, rel)), exist_ok=True)
        Image.fromarray(np.zeros((32, 30), np.uint8)).save(osp.join(image_root, rel))
    return str(root)


def test_grouping_boxes_and_keys(tmp_path):
    mimic = tmp_path / 'mimic'
    root = make_ms_cxr_fixture(str(tmp_path / 'mscxr'), image_root=str(mimic))
    ds = MSCXRDataset(data_root=root, image_root=str(mimic), check_files=True)
    assert len(ds) == 3
    recs = {ds.get_data_info(i)['phrase']: ds.get_data_info(i) for i in range(len(ds))}
    effusion = recs['bilateral pleural effusions']
    assert set(effusion) == {'img_path', 'study_id', 'subject_id', 'phrase', 'category',
                             'gt_label', 'boxes', 'ori_shape', 'sample_idx'}
    assert effusion['boxes'].dtype == np.float32
    np.testing.assert_array_equal(effusion['boxes'], [[10, 200, 50, 40], [220, 210, 45, 35]])
    assert effusion['ori_shape'] == (320, 300)
    assert effusion['category'] == 'Pleural Effusion'
    assert ds.metainfo['classes'][effusion['gt_label']] == 'Pleural Effusion'
    assert effusion['subject_id'] == '10000001' and effusion['study_id'] == '50000001'
    assert effusion['img_path'] == osp.join(str(mimic), P1)
    assert recs['enlarged heart']['boxes'].shape == (1, 4)
    assert recs['small left apical pneumothorax']['ori_shape'] == (240, 256)


def test_split_column_and_v100(tmp_path):
    root = make_ms_cxr_fixture(str(tmp_path / 'a'))
    assert len(MSCXRDataset(data_root=root, split='test')) == 1
    assert len(MSCXRDataset(data_root=root, split='val')) == 1
    old = make_ms_cxr_fixture(str(tmp_path / 'b'), with_split=False, version='1.0.0')
    assert len(MSCXRDataset(data_root=old)) == 3
    with pytest.raises(KeyError, match='no "split" column'):
        MSCXRDataset(data_root=old, split='test')


def test_preprocessed_root_keeps_original_boxes(tmp_path):
    root = make_ms_cxr_fixture(str(tmp_path / 'a'))
    pre = tmp_path / 'pre'
    (pre / osp.dirname(P1)).mkdir(parents=True)
    ds = MSCXRDataset(data_root=root, preprocessed_root=str(pre))
    rec = ds.get_data_info(0)
    assert rec['img_path'].startswith(str(pre))
    np.testing.assert_array_equal(rec['boxes'][0], [10, 200, 50, 40])
    assert rec['ori_shape'] == (320, 300)


def test_exclusion_and_errors(tmp_path):
    root = make_ms_cxr_fixture(str(tmp_path / 'a'))
    excl = tmp_path / 'ex.txt'
    excl.write_text('p10000001\n')
    ds = MSCXRDataset(data_root=root, exclude_subjects_file=str(excl))
    assert len(ds) == 1 and ds.load_stats['excluded_subjects'] == 1
    bad = make_ms_cxr_fixture(str(tmp_path / 'bad'),
                              rows=[ROWS[0].replace('Pleural Effusion,', 'Mystery,', 1)],
                              splits=('test', ))
    with pytest.raises(ValueError, match="unknown category_name \\['Mystery'\\]"):
        MSCXRDataset(data_root=bad)
    with pytest.raises(FileNotFoundError, match='MS_CXR_Local_Alignment'):
        MSCXRDataset(data_root=str(tmp_path))
