"""Tests of the embedded synthetic CXR benchmark (tiny: 40 studies, 32 px)."""
import os
import os.path as osp

import numpy as np
import pytest

from lgdea.datasets import SyntheticCXRDataset
from lgdea.datasets.synthetic import (FINDING_KEYS, GENERATION_COUNT, RETRIEVAL_CLASSES,
                                      SPLIT_CLASSES, SPLITS, SYNTHETIC_CLASS_PROMPTS,
                                      SYNTHETIC_GROUNDING_PHRASES, SyntheticCXRConfig,
                                      SyntheticCXRGenerator)
from lgdea.datasets.synthetic import lexicon
from lgdea.datasets.synthetic.render import render_batch

TINY = dict(num_studies=40, image_size=32, retrieval_per_class=4, grounding_per_class=3,
            cls_binary_size=40, cls_multiclass_size=30, cls_multilabel_size=40)


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp('synthetic_cxr'))


def make_dataset(cache_dir, split, **kwargs):
    options = dict(TINY)
    options.update(kwargs)
    # serialize_data=False: mmengine's serialisation runs gc.collect(), slow inside pytest
    return SyntheticCXRDataset(split=split, cache_dir=cache_dir, show_progress=False,
                               serialize_data=False, **options)


# ----------------------------------------------------------------------------------- generator
def test_same_seed_identical_different_seed_different():
    gen_a = SyntheticCXRGenerator(TINY, show_progress=False)
    gen_b = SyntheticCXRGenerator(TINY, show_progress=False)
    gen_c = SyntheticCXRGenerator(TINY, seed=1, show_progress=False)
    studies_a, studies_b = gen_a.studies('pretrain')[:6], gen_b.studies('pretrain')[:6]
    studies_c = gen_c.studies('pretrain')[:6]
    assert [s['report'] for s in studies_a] == [s['report'] for s in studies_b]
    assert [s['report'] for s in studies_a] != [s['report'] for s in studies_c]
    for sa, sb, sc in zip(studies_a, studies_b, studies_c):
        img_a, boxes_a = gen_a.render_study(sa)
        img_b, boxes_b = gen_b.render_study(sb)
        img_c, _ = gen_c.render_study(sc)
        np.testing.assert_array_equal(img_a, img_b)
        for fa, fb in zip(boxes_a, boxes_b):
            for ba, bb in zip(fa, fb):
                np.testing.assert_array_equal(ba, bb)
        assert not np.array_equal(img_a[0], img_c[0])


def test_rendering_independent_of_batching():
    gen = SyntheticCXRGenerator(TINY, show_progress=False)
    studies = gen.studies('pretrain')[:5]
    specs = [sp for s in studies for sp in s['specs']]
    together, _ = render_batch(specs, 32)
    alone = np.stack([render_batch([sp], 32)[0][0] for sp in specs])
    np.testing.assert_array_equal(together, alone)


def test_reports_mention_positive_findings_and_negations_are_absent():
    gen = SyntheticCXRGenerator(TINY, show_progress=False)
    checked = 0
    for split in ('pretrain', 'grounding', 'retrieval'):
        for study in gen.studies(split):
            labels = {k for k, y in zip(FINDING_KEYS, study['labels']) if y}
            assert labels == {f['category'] for f in study['findings']}
            for finding in study['findings']:
                start, end = finding['span']
                assert study['report'][start:end] == finding['mention']
                assert finding['evidence'] and finding['grounding_phrase']
                checked += 1
            assert not set(study['negated']) & labels
            assert not set(study['hedged_absent']) & labels
            assert 'IMPRESSION:' in study['report']
            if split == 'retrieval':  # CheXpert-like labels exclude uncertain mentions
                assert not study['hedged_absent']
                assert not any(f['uncertain'] for f in study['findings'])
            if not study['findings']:
                assert study['report'].count('IMPRESSION:') == 1
            if not study['report'].startswith('FINDINGS:'):  # impression-only report
                assert not study['negated']
    assert checked > 50


def test_out_of_lexicon_and_misspelled_forms():
    heads = dict(atelectasis='atelectasis', cardiomegaly='cardiomegaly',
                 consolidation='consolidation', edema='edema', lung_opacity='opacity',
                 pleural_effusion='effusion', pneumonia='pneumonia', pneumothorax='pneumothorax')
    gen = SyntheticCXRGenerator(TINY, synonym_rate=1.0, misspelling_rate=0.0,
                                abbreviation_rate=0.0, show_progress=False)
    seen = set()
    for study in gen.studies('grounding'):
        for f in study['findings']:
            assert f['surface'] == 'synonym'
            assert heads[f['category']] not in f['mention'].lower(), f['mention']
            seen.add(f['category'])
    assert seen == set(FINDING_KEYS)
    gen = SyntheticCXRGenerator(TINY, synonym_rate=0.0, misspelling_rate=1.0,
                                abbreviation_rate=0.0, show_progress=False)
    for study in gen.studies('grounding'):
        for f in study['findings']:
            assert f['surface'] == 'misspelling'
            if not f['mention'].lower().startswith(('the heart', 'heart')):
                typos = lexicon.TERMS[f['category']]['misspelling']
                assert any(t in f['mention'].lower() for t in typos), f['mention']


def test_boxes_inside_image_and_findings_change_pixels_in_box():
    gen = SyntheticCXRGenerator(TINY, show_progress=False)
    size = TINY['image_size']
    seen = set()
    for study in gen.studies('grounding'):
        spec = study['specs'][0]
        normal, _ = render_batch([dict(spec, findings=[])], size)
        for finding in spec['findings']:
            image, boxes = render_batch([dict(spec, findings=[finding])], size)
            fboxes = boxes[0][0]
            assert fboxes.shape == ((2, 4) if len(finding['geo']) == 2 else (1, 4))
            inside = np.zeros((size, size), bool)
            for x, y, w, h in fboxes:
                assert w > 0 and h > 0
                assert x >= 0 and y >= 0 and x + w <= size and y + h <= size
                inside[int(y):int(y + h), int(x):int(x + w)] = True
            diff = np.abs(image[0].astype(np.float32) - normal[0])
            assert diff[inside].mean() > 1.0, finding['category']
            assert diff[inside].mean() > 2 * diff[~inside].mean(), finding['category']
            seen.add(finding['category'])
    assert seen == set(FINDING_KEYS)


def test_severity_changes_signature():
    gen = SyntheticCXRGenerator(TINY, image_size=64, show_progress=False)
    study = next(s for s in gen.studies('grounding')
                 if s['findings'][0]['category'] == 'pleural_effusion')
    spec = study['specs'][0]
    finding = next(f for f in spec['findings'] if f['category'] == 'pleural_effusion')
    normal, _ = render_batch([dict(spec, findings=[])], 64)
    areas, changes = [], []
    for severity in ('mild', 'moderate', 'large'):
        image, boxes = render_batch([dict(spec, findings=[dict(finding, severity=severity)])], 64)
        areas.append(float((boxes[0][0][:, 2] * boxes[0][0][:, 3]).sum()))
        changes.append(float(np.abs(image[0].astype(np.float32) - normal[0]).sum()))
    assert areas[0] < areas[1] < areas[2]
    assert changes[0] < changes[1] < changes[2]


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match='signal_strength'):
        SyntheticCXRConfig(signal_strength=-1)
    with pytest.raises(ValueError, match='synonym_rate'):
        SyntheticCXRConfig(synonym_rate=1.5)
    with pytest.raises(ValueError, match='findings_count_probs'):
        SyntheticCXRConfig(findings_count_probs=(0.5, 0.2))
    with pytest.raises(ValueError, match='unknown generator options'):
        SyntheticCXRGenerator(dict(num_studdies=3))
    assert SyntheticCXRConfig().config_hash() != SyntheticCXRConfig(noise_std=0.05).config_hash()


# ----------------------------------------------------------------------------------- dataset
def test_records_have_contract_keys(cache_dir):
    for split in SPLITS:
        ds = make_dataset(cache_dir, split)
        assert tuple(ds.metainfo['classes']) == SPLIT_CLASSES[split]
        num_classes = len(ds.metainfo['classes'])
        assert len(ds) > 0
        for i in range(len(ds)):
            rec = ds.get_data_info(i)
            assert osp.isabs(rec['img_path']) and osp.isfile(rec['img_path'])
            assert isinstance(rec['study_id'], str) and isinstance(rec['subject_id'], str)
            assert rec['view'] in ('PA', 'AP')
            assert tuple(rec['ori_shape']) == (32, 32)
            if split in ('pretrain', 'retrieval', 'grounding'):
                assert isinstance(rec['report'], str) and 'IMPRESSION:' in rec['report']
            if 'gt_score' in rec:
                assert rec['gt_score'].dtype == np.float32
                assert rec['gt_score'].shape == ((num_classes, ) if split != 'grounding' else
                                                 (8, ))
            if split in ('retrieval', 'cls_binary', 'cls_multiclass', 'grounding'):
                assert 0 <= rec['gt_label'] < num_classes
            if split == 'grounding':
                assert rec['boxes'].dtype == np.float32 and rec['boxes'].shape[1] == 4
                assert rec['phrase'] and rec['category'] == ds.metainfo['classes'][
                    rec['gt_label']]
        for name in ds.metainfo['classes']:
            assert len(ds.metainfo['prompts'][name]) >= 3


def test_retrieval_balanced_with_exactly_one_positive(cache_dir):
    ds = make_dataset(cache_dir, 'retrieval')
    assert tuple(ds.metainfo['classes']) == RETRIEVAL_CLASSES
    counts = np.zeros(5, int)
    for i in range(len(ds)):
        rec = ds.get_data_info(i)
        assert rec['gt_score'].sum() == 1 and rec['gt_score'][rec['gt_label']] == 1
        assert len(rec['gt_evidence']) == 1  # no other finding in the study
        counts[rec['gt_label']] += 1
    assert counts.tolist() == [TINY['retrieval_per_class']] * 5


def test_eval_subjects_disjoint_from_pretrain(cache_dir):
    pretrain = make_dataset(cache_dir, 'pretrain')
    pre_subjects = {pretrain.get_data_info(i)['subject_id'] for i in range(len(pretrain))}
    pre_studies = {pretrain.get_data_info(i)['study_id'] for i in range(len(pretrain))}
    assert len(pre_subjects) < len(pre_studies)  # several studies per subject
    assert len(pre_studies) < len(pretrain)  # several images per study
    for split in SPLITS[1:]:
        subsets = ('train', 'val', 'test') if split.startswith('cls_') else (None, )
        for subset in subsets:
            ds = make_dataset(cache_dir, split, subset=subset)
            subjects = {ds.get_data_info(i)['subject_id'] for i in range(len(ds))}
            assert not subjects & pre_subjects, (split, subset)


def test_classification_subsets_by_subject_and_nested_fractions(cache_dir):
    for split in ('cls_binary', 'cls_multiclass', 'cls_multilabel'):
        parts = {s: make_dataset(cache_dir, split, subset=s) for s in ('train', 'val', 'test')}
        subjects = {s: {d.get_data_info(i)['subject_id'] for i in range(len(d))}
                    for s, d in parts.items()}
        assert all(subjects.values())
        assert not subjects['train'] & subjects['val']
        assert not subjects['train'] & subjects['test']
        assert not subjects['val'] & subjects['test']
        small = make_dataset(cache_dir, split, subset='train', train_fraction=0.1)
        ids = {small.get_data_info(i)['study_id'] for i in range(len(small))}
        full = {parts['train'].get_data_info(i)['study_id'] for i in range(len(parts['train']))}
        assert ids < full
        if split != 'cls_multilabel':  # stratified: every class kept
            labels = {small.get_data_info(i)['gt_label'] for i in range(len(small))}
            assert labels == set(range(len(small.metainfo['classes'])))
    with pytest.raises(ValueError, match='train_fraction'):
        make_dataset(cache_dir, 'pretrain', train_fraction=0.1)
    with pytest.raises(ValueError, match='subset'):
        make_dataset(cache_dir, 'retrieval', subset='train')


def test_cache_reused_and_bit_identical(cache_dir, tmp_path):
    first = make_dataset(cache_dir, 'grounding')
    index_path = first.generator.index_path('grounding')
    png = first.get_data_info(0)['img_path']
    stamps = (os.stat(index_path).st_mtime_ns, os.stat(png).st_mtime_ns)
    count = GENERATION_COUNT['grounding']
    second = make_dataset(cache_dir, 'grounding')
    assert GENERATION_COUNT['grounding'] == count  # found in the cache, not rendered again
    assert (os.stat(index_path).st_mtime_ns, os.stat(png).st_mtime_ns) == stamps
    assert second.root == first.root and len(second) == len(first)
    # a fresh cache of the same config holds the same bytes
    other = make_dataset(str(tmp_path), 'grounding')
    assert GENERATION_COUNT['grounding'] == count + 1
    for i in range(len(first)):
        a, b = first.get_data_info(i), other.get_data_info(i)
        with open(a['img_path'], 'rb') as fa, open(b['img_path'], 'rb') as fb:
            assert fa.read() == fb.read()
        np.testing.assert_array_equal(a['boxes'], b['boxes'])
        assert a['report'] == b['report'] and a['phrase'] == b['phrase']
    # a different config lives in a different directory
    harder = make_dataset(str(tmp_path), 'grounding', signal_strength=0.5)
    assert harder.root != other.root


def test_evidence_from_gt_and_relative_cache_dir(tmp_path):
    ds = SyntheticCXRDataset(split='pretrain', cache_dir='cache', data_root=str(tmp_path),
                             evidence_from_gt=True, show_progress=False, **TINY)
    assert ds.root.startswith(str(tmp_path / 'cache'))
    for i in range(len(ds)):
        rec = ds.get_data_info(i)
        if rec['gt_score'].sum() == 0:
            assert rec['evidence'] == ['no acute cardiopulmonary abnormality']
        else:
            assert rec['evidence'] == rec['gt_evidence']
            assert len(rec['evidence']) == int(rec['gt_score'].sum())


def test_prompts_and_grounding_phrases_cover_all_classes():
    for split in SPLITS:
        for name in SPLIT_CLASSES[split]:
            assert len(SYNTHETIC_CLASS_PROMPTS[name]) >= 3
    assert set(SYNTHETIC_GROUNDING_PHRASES) == set(SPLIT_CLASSES['grounding'])
    assert 'small left pleural effusion' in SYNTHETIC_GROUNDING_PHRASES['Pleural Effusion']


def test_preview_tool_writes_png(tmp_path):
    import importlib.util
    path = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools',
                    'preview_synthetic.py')
    spec = importlib.util.spec_from_file_location('preview_synthetic', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = str(tmp_path / 'grid.png')
    module.main(['--num', '2', '--image-size', '32', '--num-studies', '4', '--with-normal',
                 '--out', out])
    assert osp.getsize(out) > 1000
