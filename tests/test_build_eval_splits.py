"""tools/build_eval_splits.py: selection rules, determinism, provenance sidecars."""
import hashlib
import importlib.util
import json
import os.path as osp
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA
from lgdea.datasets import (COVIDRadiographyDataset, MIMICCXRDataset, NIHChestXray14Dataset,
                            RSNAPneumoniaDataset)
from lgdea.datasets.base_cxr import CHEXPERT_COMPETITION_TASKS, read_id_file
from test_datasets_covid import make_covid_fixture
from test_datasets_mimic_cxr import REPORT_FULL, REPORT_UNUSABLE, make_mimic_fixture
from test_datasets_nih import make_nih_fixture

_spec = importlib.util.spec_from_file_location(
    'build_eval_splits', osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools',
                                  'build_eval_splits.py'))
bes = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bes  # picklable functions (worker processes)
_spec.loader.exec_module(bes)

RSNA_LABELS = osp.join(SHARED_DATA, 'box_tables', 'rsna_pneumonia_stage_2_train_labels.csv.gz')


def five_x200_studies():
    """4 eligible test studies per class plus distractors that the rule must reject."""
    studies, eligible = [], {c: set() for c in CHEXPERT_COMPETITION_TASKS}
    n = 0

    def add(split, images, labels, report=REPORT_FULL):
        nonlocal n
        n += 1
        subject, study = f'1{n:07d}', f'5{n:07d}'
        studies.append((subject, study, split,
                        [(f'd{n}{chr(97 + k)}', v) for k, v in enumerate(images)], report, labels))
        return study

    for c in CHEXPERT_COMPETITION_TASKS:
        others = [o for o in CHEXPERT_COMPETITION_TASKS if o != c]
        eligible[c].add(add('test', ['PA', 'LATERAL'], {c: '1'}))  # others blank
        eligible[c].add(add('test', ['AP'], {c: '1', others[0]: '0', 'No Finding': '0'}))
        eligible[c].add(add('test', ['PA', 'AP'], {c: '1', 'Support Devices': '0'}))
        eligible[c].add(add('test', ['AP'], {c: '1'}))
        add('test', ['PA'], {c: '1', others[1]: '1'})  # two positives
        add('test', ['PA'], {c: '1', 'Support Devices': '-1'})  # uncertain elsewhere
        add('test', ['PA'], {c: '-1'})  # uncertain itself
        add('test', ['LATERAL'], {c: '1'})  # no frontal image
        add('train', ['PA'], {c: '1'})  # not the official test split
        add('validate', ['PA'], {c: '1'})
    add('test', ['PA'], {'No Finding': '1'})
    return studies, eligible


@pytest.fixture()
def five_x200_root(tmp_path):
    studies, eligible = five_x200_studies()
    root = make_mimic_fixture(tmp_path / 'mimic', studies=studies)
    return root, eligible


def _read_list(path):
    return pd.read_csv(path, comment='#', dtype=str)


def test_mimic_5x200_rule_and_dataset(five_x200_root, tmp_path):
    root, eligible = five_x200_root
    out = tmp_path / 'splits'
    bes.main(['mimic-5x200', '--mimic-root', root, '--out-dir', str(out), '--per-class', '3',
              '--seed', '0'])
    table = _read_list(out / 'mimic_5x200.csv')
    assert list(table.columns) == ['dicom_id', 'study_id', 'subject_id', 'view', 'label']
    assert table['label'].value_counts().to_dict() == {c: 3 for c in CHEXPERT_COMPETITION_TASKS}
    assert table['study_id'].is_unique  # one image per study
    for label, study in zip(table['label'], table['study_id']):
        assert study in eligible[label]
    assert set(table['view']) <= {'PA', 'AP'}
    candidates = _read_list(out / 'mimic_5x200_retrieval_candidates.csv')
    assert sorted(candidates['study_id']) == sorted(table['study_id'])
    # the dataset consumes the list: gt_label over the five classes, reports attached
    ds = MIMICCXRDataset(data_root=root, split='test', split_file=str(out / 'mimic_5x200.csv'),
                         classes=CHEXPERT_COMPETITION_TASKS)
    assert len(ds) == 15
    for i in range(len(ds)):
        rec = ds.get_data_info(i)
        row = table[table['study_id'] == rec['study_id']].iloc[0]
        assert CHEXPERT_COMPETITION_TASKS[rec['gt_label']] == row['label']
        assert rec['gt_score'][rec['gt_label']] == 1 and rec['report']


def test_mimic_5x200_determinism_and_sidecar(five_x200_root, tmp_path):
    root, _ = five_x200_root
    runs = {}
    for name, seed in (('a', 0), ('b', 0), ('c', 1)):
        bes.main(['mimic-5x200', '--mimic-root', root, '--out-dir', str(tmp_path / name),
                  '--per-class', '3', '--seed', str(seed)])
        runs[name] = (tmp_path / name / 'mimic_5x200.csv').read_bytes()
    assert runs['a'] == runs['b']
    assert runs['a'] != runs['c']
    sidecar = json.loads((tmp_path / 'a' / 'mimic_5x200.csv.json').read_text())
    assert sidecar['seed'] == 0 and sidecar['rows'] == 15
    assert sidecar['file_sha256'] == hashlib.sha256(runs['a']).hexdigest()
    names = sorted(osp.basename(s['path']) for s in sidecar['sources'])
    assert names == ['mimic-cxr-2.0.0-chexpert.csv.gz', 'mimic-cxr-2.0.0-metadata.csv.gz',
                     'mimic-cxr-2.0.0-split.csv.gz']
    for source in sidecar['sources']:
        with open(source['path'], 'rb') as f:
            assert source['sha256'] == hashlib.sha256(f.read()).hexdigest()
    header = [ln for ln in runs['a'].decode().splitlines() if ln.startswith('#')]
    assert any('seed=0' in ln for ln in header)
    assert sum('sha256=' in ln for ln in header) == 3


def test_mimic_5x200_too_few_and_report_filter(tmp_path):
    studies, eligible = five_x200_studies()
    # make one eligible Edema study's report unusable
    target = sorted(eligible['Edema'])[0]
    studies = [s if s[1] != target else s[:4] + (REPORT_UNUSABLE, ) + s[5:] for s in studies]
    root = make_mimic_fixture(tmp_path / 'mimic', studies=studies)
    with pytest.raises(ValueError, match="only 4 eligible test studies for 'Atelectasis'"):
        bes.main(['mimic-5x200', '--mimic-root', root, '--out-dir', str(tmp_path / 'o'),
                  '--per-class', '5'])
    bes.main(['mimic-5x200', '--mimic-root', root, '--out-dir', str(tmp_path / 'o'),
              '--per-class', '5', '--allow-fewer', '--report-root', root])
    table = _read_list(tmp_path / 'o' / 'mimic_5x200.csv')
    assert table['label'].value_counts()['Edema'] == 3
    assert target not in set(table['study_id'])
    assert table['label'].value_counts()['Cardiomegaly'] == 4


def test_exclude_subjects(five_x200_root, tmp_path):
    root, _ = five_x200_root
    out = tmp_path / 'splits'
    bes.main(['mimic-5x200', '--mimic-root', root, '--out-dir', str(out), '--per-class', '2'])
    ms = tmp_path / 'ms.csv'
    ms.write_text('dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height\n'
                  'dz,Edema,edema,files/p10/p10000009/s50000009/dz.jpg,1,2,3,4,10,10\n'
                  'dz,Edema,edema,files/p17/p17777777/s57777777/dy.jpg,1,2,3,4,10,10\n')
    bes.main(['exclude', '--mimic-root', root, '--ms-cxr-csv', str(ms), '--five-x200',
              str(out / 'mimic_5x200.csv'), '--out-dir', str(out)])
    subjects = [ln.strip() for ln in (out / 'exclude_subjects.txt').read_text().splitlines()
                if ln.strip() and not ln.startswith('#')]
    split = pd.read_csv(osp.join(root, 'mimic-cxr-2.0.0-split.csv.gz'), dtype=str)
    test_subjects = set(split.loc[split['split'] == 'test', 'subject_id'])
    five = set(_read_list(out / 'mimic_5x200.csv')['subject_id'])
    assert set(subjects) == test_subjects | five | {'10000009', '17777777'}
    assert subjects == sorted(subjects)
    sidecar = json.loads((out / 'exclude_subjects.txt.json').read_text())
    assert sidecar['counts']['ms_cxr'] == 2
    assert sidecar['counts']['total_unique'] == len(subjects)
    ds = MIMICCXRDataset(data_root=root, exclude_subjects_file=str(out / 'exclude_subjects.txt'))
    assert all(ds.get_data_info(i)['subject_id'] not in test_subjects for i in range(len(ds)))
    present = set(split['subject_id'])
    assert ds.load_stats['excluded_subjects'] == len(present & set(subjects))
    assert '10000009' in present and '10000009' not in test_subjects  # MS-CXR, train split


def test_balanced_split_helpers():
    ids = [f'id{i:03d}' for i in range(60)]
    labels = ['neg'] * 45 + ['pos'] * 15
    balanced = bes.balance_classes(ids, labels, seed=3)
    assert balanced['label'].value_counts().to_dict() == {'neg': 15, 'pos': 15}
    assert balanced.equals(bes.balance_classes(ids[::-1], labels[::-1], seed=3))  # order-free
    parts = bes.stratified_split(balanced, (0.7, 0.15, 0.15), seed=3)
    sizes = {k: v['label'].value_counts().to_dict() for k, v in parts.items()}
    assert sizes == {'train': {'neg': 11, 'pos': 11}, 'val': {'neg': 2, 'pos': 2},
                     'test': {'neg': 2, 'pos': 2}}
    all_ids = pd.concat(parts.values())['id']
    assert all_ids.is_unique and set(all_ids) == set(balanced['id'])
    fractions = bes.stratified_fractions(parts['train'], [10, 50, 100], seed=3)
    assert fractions[10]['label'].value_counts().to_dict() == {'neg': 1, 'pos': 1}
    assert set(fractions[10]['id']) <= set(fractions[50]['id']) <= set(fractions[100]['id'])
    assert set(fractions[100]['id']) == set(parts['train']['id'])
    with pytest.raises(ValueError, match='summing to 1'):
        bes.stratified_split(balanced, (0.7, 0.2, 0.2), seed=0)


def test_rsna_fixture_lists_feed_the_dataset(tmp_path):
    root = tmp_path / 'rsna'
    root.mkdir()
    rows = [f'neg{i:02d},,,,,0' for i in range(30)]
    rows += [f'pos{i:02d},{i},{i},10,10,1' for i in range(10)] + ['pos00,50,50,5,5,1']
    (root / 'stage_2_train_labels.csv').write_text('patientId,x,y,width,height,Target\n' +
                                                   '\n'.join(rows) + '\n')
    out = tmp_path / 'splits'
    bes.main(['rsna', '--rsna-root', str(root), '--out-dir', str(out), '--seed', '1'])
    parts = {n: _read_list(out / f'rsna_{n}.csv') for n in ('train', 'val', 'test')}
    assert list(parts['train'].columns) == ['patientId', 'label']
    # 10 positive patients -> 10 negatives drawn; per class 6 / 2 / 2 (val, test: 1.5 -> 2)
    assert {n: p['label'].value_counts().to_dict() for n, p in parts.items()} == {
        'train': {'Normal': 6, 'Pneumonia': 6}, 'val': {'Normal': 2, 'Pneumonia': 2},
        'test': {'Normal': 2, 'Pneumonia': 2}}
    one = _read_list(out / 'rsna_train_1pct.csv')
    assert one['label'].value_counts().to_dict() == {'Normal': 1, 'Pneumonia': 1}
    ds = RSNAPneumoniaDataset(data_root=str(root), split_file=str(out / 'rsna_val.csv'))
    assert len(ds) == 4
    assert sorted(ds.get_data_info(i)['gt_label'] for i in range(4)) == [0, 0, 1, 1]


@pytest.mark.skipif(not osp.isfile(RSNA_LABELS), reason='shared RSNA label table not present')
def test_rsna_real_table_balanced_70_15_15(tmp_path):
    out = tmp_path / 'splits'
    bes.main(['rsna', '--rsna-root', osp.dirname(RSNA_LABELS), '--labels-csv',
              osp.basename(RSNA_LABELS), '--out-dir', str(out), '--seed', '0'])
    sizes = {}
    for name in ('train', 'val', 'test', 'train_1pct', 'train_10pct', 'train_100pct'):
        table = _read_list(out / f'rsna_{name}.csv')
        counts = table['label'].value_counts().to_dict()
        assert counts['Normal'] == counts['Pneumonia']  # balanced in every list
        sizes[name] = len(table)
    # 6012 positive patients -> 6012 negatives drawn; per class 4208 / 902 / 902
    assert sizes == dict(train=8416, val=1804, test=1804, train_1pct=84, train_10pct=842,
                         train_100pct=8416)
    ids = [set(_read_list(out / f'rsna_{n}.csv')['patientId']) for n in ('train', 'val', 'test')]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert set(_read_list(out / 'rsna_train_1pct.csv')['patientId']) <= ids[0]


def test_covid_and_nih_lists(tmp_path):
    covid = make_covid_fixture(str(tmp_path / 'covid'))
    out = tmp_path / 'splits'
    bes.main(['covid', '--covid-root', covid, '--out-dir', str(out), '--ratios', '0.34', '0.33',
              '0.33', '--fractions', '100'])
    parts = {n: _read_list(out / f'covid_{n}.csv') for n in ('train', 'val', 'test')}
    union = pd.concat(parts.values())
    assert union['label'].value_counts().to_dict() == {'COVID': 3, 'Normal': 3}
    assert not union['path'].str.contains('masks').any()
    ds = COVIDRadiographyDataset(data_root=covid, split_file=str(out / 'covid_train.csv'))
    assert len(ds) == len(parts['train'])

    nih = make_nih_fixture(str(tmp_path / 'nih'))
    bes.main(['nih', '--nih-root', nih, '--out-dir', str(out), '--val-fraction', '0.5',
              '--fractions', '1', '10'])
    train, _ = read_id_file(str(out / 'nih_train.csv'))
    val, _ = read_id_file(str(out / 'nih_val.csv'))
    test, _ = read_id_file(str(out / 'nih_test.csv'))
    assert test == ['00000002_000.png']
    assert sorted(train + val) == ['00000001_000.png', '00000001_001.png', '00000003_000.png']
    assert not {i.split('_')[0] for i in train} & {i.split('_')[0] for i in val}  # by patient
    one, _ = read_id_file(str(out / 'nih_train_1pct.csv'))
    assert 1 <= len(one) <= len(train) and set(one) <= set(train)
    ds = NIHChestXray14Dataset(data_root=nih, split='train_val', split_file=str(out / 'nih_train.csv'))
    assert len(ds) == len(train)
    assert np.all([ds.get_data_info(i)['study_id'] + '.png' in train for i in range(len(ds))])
