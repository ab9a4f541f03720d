"""GenericVLDataset (CSV / JSONL) and the shared BaseCXRDataset behaviour."""
import json
import os.path as osp
import pickle

import numpy as np
import pytest
from PIL import Image

from lgdea.datasets import GenericVLDataset
from lgdea.datasets.base_cxr import normalize_view, read_id_file, resolve_file
from lgdea.registry import DATASETS, TRANSFORMS


def _images(root, names):
    for name in names:
        path = osp.join(root, name)
        import os
        os.makedirs(osp.dirname(path), exist_ok=True)
        Image.fromarray(np.full((5, 7), 9, np.uint8)).save(path)


def test_csv_single_label_inferred_classes(tmp_path):
    _images(tmp_path, ['img/a.png', 'img/b.png', 'img/c.png'])
    (tmp_path / 'ann.csv').write_text(
        'image,report,subject_id,view,label\n'
        'img/a.png,Clear   lungs.,p1,pa,normal\n'
        'img/b.png,Left effusion.,p1,AP,effusion\n'
        'img/c.png,,p2,lateral,normal\n')
    ds = GenericVLDataset(data_root=str(tmp_path), ann_file='ann.csv', check_files=True)
    assert ds.metainfo['classes'] == ('effusion', 'normal')
    recs = [ds.get_data_info(i) for i in range(len(ds))]
    assert recs[0]['img_path'] == osp.join(str(tmp_path), 'img/a.png')
    assert recs[0]['report'] == 'Clear lungs.' and recs[2]['report'] is None
    assert recs[0]['study_id'] == 'img/a' and recs[0]['subject_id'] == 'p1'
    assert [r['view'] for r in recs] == ['PA', 'AP', 'LATERAL']
    assert [r['gt_label'] for r in recs] == [1, 0, 1]
    frontal = GenericVLDataset(data_root=str(tmp_path), ann_file='ann.csv', views=('PA', 'AP'))
    assert len(frontal) == 2


def test_jsonl_multilabel_lists_and_pipes(tmp_path):
    rows = [dict(image='x.png', report='r1', labels=['edema', 'effusion'], study_id='s1'),
            dict(image='y.png', report='r2', labels='effusion', study_id='s2'),
            dict(image='z.png', report='r3', labels=[], study_id='s3'),
            dict(report='report only', labels='edema|effusion', study_id='s4')]
    (tmp_path / 'ann.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    ds = GenericVLDataset(data_root=str(tmp_path), ann_file='ann.jsonl',
                          classes=('effusion', 'edema', 'nodule'))
    recs = [ds.get_data_info(i) for i in range(len(ds))]
    np.testing.assert_array_equal(recs[0]['gt_score'], [1, 1, 0])
    np.testing.assert_array_equal(recs[1]['gt_score'], [1, 0, 0])
    np.testing.assert_array_equal(recs[2]['gt_score'], [0, 0, 0])
    assert recs[3]['img_path'] is None and recs[3]['report'] == 'report only'
    assert recs[0]['gt_score'].dtype == np.float32


def test_pipe_separated_csv_split_and_unknown_label(tmp_path):
    (tmp_path / 'ann.csv').write_text('image,labels,split\na.png,A|B,train\nb.png,,test\n'
                                      'c.png,C,train\n')
    ds = GenericVLDataset(data_root=str(tmp_path), ann_file='ann.csv', split='train')
    assert ds.metainfo['classes'] == ('A', 'B', 'C') and len(ds) == 2
    with pytest.raises(ValueError, match="label 'C' is not one of the classes"):
        GenericVLDataset(data_root=str(tmp_path), ann_file='ann.csv', classes=('A', 'B'))


def test_column_map_errors(tmp_path):
    (tmp_path / 'ann.csv').write_text('file,text\na.png,hello\n')
    with pytest.raises(KeyError, match='needs an "image" or a "report" column'):
        GenericVLDataset(data_root=str(tmp_path), ann_file='ann.csv')
    ds = GenericVLDataset(data_root=str(tmp_path), ann_file='ann.csv',
                          column_map=dict(image='file', report='text'))
    assert ds.get_data_info(0)['report'] == 'hello'
    with pytest.raises(KeyError, match="column 'diagnosis'"):
        GenericVLDataset(data_root=str(tmp_path), ann_file='ann.csv',
                         column_map=dict(image='file', label='diagnosis'))
    with pytest.raises(ValueError, match='not fields'):
        GenericVLDataset(data_root=str(tmp_path), ann_file='ann.csv', column_map=dict(img='file'))
    with pytest.raises(FileNotFoundError, match="'missing.csv' not found"):
        GenericVLDataset(data_root=str(tmp_path), ann_file='missing.csv')
    with pytest.raises(FileNotFoundError, match='data_root'):
        GenericVLDataset(data_root=str(tmp_path / 'nope'), ann_file='ann.csv')


def test_check_files_reports_count_and_examples(tmp_path):
    _images(tmp_path, ['a.png'])
    (tmp_path / 'ann.csv').write_text('image\na.png\nb.png\nc.png\n')
    with pytest.raises(FileNotFoundError, match=r"2 of 3 image files are missing, e\.g\. \[.*b\.png"):
        GenericVLDataset(data_root=str(tmp_path), ann_file='ann.csv', check_files=True)


def test_pipeline_from_lgdea_registry_and_serialisation(tmp_path):
    _images(tmp_path, ['a.png'])
    (tmp_path / 'ann.csv').write_text('image,report\na.png,text\n')
    pipeline = []
    if 'LoadCXRImage' in TRANSFORMS.module_dict:
        pipeline = [dict(type='LoadCXRImage')]
    cfg = dict(type='GenericVLDataset', data_root=str(tmp_path), ann_file='ann.csv',
               pipeline=pipeline)
    ds = DATASETS.build(cfg)
    item = ds[0]
    if pipeline:
        assert item['img'].shape == (5, 7)
    data = pickle.loads(pickle.dumps(ds.get_data_info(0)))
    assert data['report'] == 'text'


def test_shared_helpers(tmp_path):
    assert normalize_view(' l ') == 'LATERAL' and normalize_view(float('nan')) is None
    assert normalize_view('ap') == 'AP' and normalize_view('') is None
    (tmp_path / 'x.csv.gz').write_bytes(b'')
    assert resolve_file('x.csv', [str(tmp_path)]).endswith('x.csv.gz')
    with pytest.raises(FileNotFoundError, match='tried'):
        resolve_file('y.csv', [str(tmp_path)])
    (tmp_path / 'plain.txt').write_text('# comment\nid\n001\n002\n')
    assert read_id_file(str(tmp_path / 'plain.txt')) == (['001', '002'], None)
    (tmp_path / 'labelled.csv').write_text('# seed=3\npatientId,label\nA,Normal\nB,Pneumonia\n')
    assert read_id_file(str(tmp_path / 'labelled.csv')) == (
        ['A', 'B'], {'A': 'Normal', 'B': 'Pneumonia'})


def test_header_only_csv_is_an_error_naming_it(tmp_path):
    """Without the check mmengine fails with "need at least one array to concatenate"."""
    (tmp_path / 'ann.csv').write_text('image,report,study_id\n')
    with pytest.raises(ValueError, match=r'ann\.csv: holds no data rows'):
        GenericVLDataset(data_root=str(tmp_path), ann_file='ann.csv')


def test_non_utf8_annotation_files_name_file_and_line(tmp_path):
    from lgdea.datasets import IUXrayDataset, LimitedPairingDataset
    from lgdea.datasets.base_cxr import read_id_file, read_subject_list
    latin1 = 'Épanchement pleural gauche.'.encode('latin-1')
    (tmp_path / 'ann.csv').write_bytes(b'image,report\na.png,Clear lungs.\nb.png,' + latin1
                                       + b'\n')
    with pytest.raises(ValueError, match=r'ann\.csv: line 3, column 7 \(byte 0xc9\) is not '
                                         r'UTF-8.*iconv'):
        GenericVLDataset(data_root=str(tmp_path), ann_file='ann.csv')
    (tmp_path / 'ann.jsonl').write_bytes(b'{"image": "a.png", "report": "Clear."}\n'
                                         b'{"image": "b.png", "report": "' + latin1 + b'"}\n')
    with pytest.raises(ValueError, match=r'ann\.jsonl: line 2, column 31 \(byte 0xc9\)'):
        GenericVLDataset(data_root=str(tmp_path), ann_file='ann.jsonl')
    (tmp_path / 'reports.jsonl').write_bytes(b'{"id": "1", "images": [], "findings": "'
                                             + latin1 + b'"}\n')
    with pytest.raises(ValueError, match=r'reports\.jsonl: line 1, column 40'):
        IUXrayDataset(data_root=str(tmp_path), ann_file='reports.jsonl')
    (tmp_path / 'exclude.txt').write_bytes(b'p1\np\xe92\n')
    with pytest.raises(ValueError, match=r'exclude\.txt: line 2, column 2'):
        read_subject_list(str(tmp_path / 'exclude.txt'))
    (tmp_path / 'split.txt').write_bytes(b'# seed 0\nid,label\nd1,normal\nd\xe92,normal\n')
    with pytest.raises(ValueError, match=r'split\.txt: line 4, column 2 \(byte 0xe9\)'):
        read_id_file(str(tmp_path / 'split.txt'))
    (tmp_path / 'ok.csv').write_text('image,report,study_id\na.png,Clear lungs.,s1\n')
    with pytest.raises(ValueError, match=r'exclude\.txt: line 2, column 2'):
        LimitedPairingDataset(dataset=GenericVLDataset(data_root=str(tmp_path),
                                                       ann_file='ok.csv'),
                              exclude_subjects_file=str(tmp_path / 'exclude.txt'))


def test_missing_image_column_is_said_not_silently_report_only(tmp_path, monkeypatch):
    import lgdea.datasets.generic as generic
    said = []
    monkeypatch.setattr(generic, 'print_log', lambda msg, **kw: said.append(msg))
    (tmp_path / 'ann.csv').write_text('file,report\na.png,Clear.\n')
    ds = GenericVLDataset(data_root=str(tmp_path), ann_file='ann.csv')
    assert ds.get_data_info(0)['img_path'] is None  # loaded as a report-only row, and said
    assert any('no "image" column' in m and "['file', 'report']" in m
               and 'column_map=dict(image=' in m for m in said), said
    said.clear()
    (tmp_path / 'ok.csv').write_text('image,report\na.png,Clear.\n')
    GenericVLDataset(data_root=str(tmp_path), ann_file='ok.csv', lazy_init=True).full_init()
    assert not said
