"""IUXrayDataset: synthetic Open-i XML reports + PNGs, and the shared JSONL read in place.

The XML texts below are written for these tests; no IU report text is copied (CC BY-NC-ND).
"""
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED_DATA
from lgdea.datasets import IUXrayDataset
from lgdea.datasets.iu_xray import IU_CLASSES, iu_labels_from_mesh, parse_iu_xml

IU_JSONL = osp.join(SHARED_DATA, 'iu_xray_reports_dev', 'reports.jsonl')

XML = """<?xml version="1.0" encoding="utf-8"?>
<eCitation>
  <meta type="rr"/>
  <uId id="CXR{n}"/>
  <MedlineCitation Owner="Synthetic" Status="supplied by publisher">
    <Article PubModel="Electronic">
      <ArticleTitle>Synthetic chest x-ray report</ArticleTitle>
      <Abstract>
        <AbstractText Label="COMPARISON">None.</AbstractText>
        <AbstractText Label="INDICATION">Synthetic indication {n}.</AbstractText>
        {findings}
        {impression}
      </Abstract>
    </Article>
  </MedlineCitation>
  <MeSH>{mesh}</MeSH>
  {images}
</eCitation>
"""

STUDIES = {
    1: dict(findings='Synthetic   lungs are clear.', impression='Synthetic normal study.',
            mesh=['normal'], images=['CXR1_1_IM-0001-3001', 'CXR1_1_IM-0001-4001']),
    2: dict(findings=None, impression='Synthetic enlarged heart.',
            mesh=['Cardiomegaly/mild', 'Catheters, Indwelling'], images=['CXR2_IM-0652-1001']),
    3: dict(findings=None, impression=None, mesh=['Opacity/lung/base/left'],
            images=['CXR3_IM-1384-1001']),
    4: dict(findings='Synthetic small effusion.', impression=None,
            mesh=['Pleural Effusion/right/small'], images=[]),
}


def make_iu_fixture(root, with_images=True, missing_images=()):
    xml_dir = osp.join(root, 'ecgen-radiology')
    os.makedirs(xml_dir, exist_ok=True)
    for n, s in STUDIES.items():
        def section(label, text):
            return (f'<AbstractText Label="{label}">{text}</AbstractText>' if text
                    else f'<AbstractText Label="{label}"/>')
        images = ''.join(f'<parentImage id="{i}"><caption>synthetic</caption></parentImage>'
                         for i in s['images'])
        mesh = ''.join(f'<major>{m}</major>' for m in s['mesh']) + '<minor>synthetic</minor>'
        with open(osp.join(xml_dir, f'{n}.xml'), 'w') as f:
            f.write(XML.format(n=n, findings=section('FINDINGS', s['findings']),
                               impression=section('IMPRESSION', s['impression']), mesh=mesh,
                               images=images))
        if with_images:
            for image in s['images']:
                if image not in missing_images:
                    path = osp.join(root, 'images', image + '.png')
                    os.makedirs(osp.dirname(path), exist_ok=True)
                    Image.fromarray(np.zeros((6, 6), np.uint8)).save(path)
    return str(root)


def test_parse_xml(tmp_path):
    root = make_iu_fixture(str(tmp_path))
    study = parse_iu_xml(osp.join(root, 'ecgen-radiology', '2.xml'))
    assert study['id'] == 'CXR2'
    assert study['findings'] is None and study['impression'] == 'Synthetic enlarged heart.'
    assert study['images'][0]['png_name'] == 'CXR2_IM-0652-1001.png'
    assert study['labels_from_mesh']['cardiomegaly'] == 1
    assert study['labels_from_mesh']['support_devices'] == 1
    assert sum(study['labels_from_mesh'].values()) == 2


def test_xml_with_images(tmp_path):
    root = make_iu_fixture(str(tmp_path))
    ds = IUXrayDataset(data_root=root, check_files=True)
    recs = [ds.get_data_info(i) for i in range(len(ds))]
    # one record per image; study 4 has no image; XML has no view -> kept (keep_unknown_views)
    assert len(recs) == 4
    assert {r['study_id'] for r in recs} == {'CXR1', 'CXR2', 'CXR3'}
    r1 = next(r for r in recs if r['study_id'] == 'CXR1')
    assert set(r1) == {'img_path', 'study_id', 'subject_id', 'report', 'gt_score', 'sample_idx'}
    assert r1['report'] == 'Synthetic lungs are clear. Synthetic normal study.'
    assert r1['gt_score'].shape == (12, ) and r1['gt_score'][IU_CLASSES.index('normal')] == 1
    r3 = next(r for r in recs if r['study_id'] == 'CXR3')
    assert r3['report'] is None
    only_impression = IUXrayDataset(data_root=root, sections=('impression', ))
    assert only_impression.get_data_info(0)['report'] == 'Synthetic normal study.'


def test_require_images(tmp_path):
    root = make_iu_fixture(str(tmp_path / 'a'), with_images=False)
    with pytest.raises(FileNotFoundError, match='require_images=False'):
        IUXrayDataset(data_root=root)
    ds = IUXrayDataset(data_root=root, require_images=False)
    recs = [ds.get_data_info(i) for i in range(len(ds))]
    # report-only: one per study with text (CXR3 has none)
    assert sorted(r['study_id'] for r in recs) == ['CXR1', 'CXR2', 'CXR4']
    assert all(r['img_path'] is None for r in recs)
    assert ds.load_stats['studies_without_text_or_image'] == 1
    # partially present images: image records where the file exists, report-only otherwise
    root = make_iu_fixture(str(tmp_path / 'b'), missing_images=('CXR2_IM-0652-1001', ))
    ds = IUXrayDataset(data_root=root, require_images=False)
    recs = [ds.get_data_info(i) for i in range(len(ds))]
    kinds = sorted((r['study_id'], r['img_path'] is None) for r in recs)
    assert kinds == [('CXR1', False), ('CXR1', False), ('CXR2', True), ('CXR3', False),
                     ('CXR4', True)]


def test_jsonl_form_views(tmp_path):
    root = tmp_path
    rows = [dict(id='CXR10', images=[dict(image_id='a', png_name='a.png', view='PA'),
                                     dict(image_id='b', png_name='b.png', view='L')],
                 findings='Synthetic finding.', impression=None,
                 labels_from_mesh={k: 0 for k in IU_CLASSES})]
    (root / 'reports.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    (root / 'images').mkdir()
    ds = IUXrayDataset(data_root=str(root))
    assert len(ds) == 1 and ds.get_data_info(0)['view'] == 'PA'
    assert len(IUXrayDataset(data_root=str(root), views=None)) == 2
    rows[0]['labels_from_mesh']['mystery'] = 1
    (root / 'reports.jsonl').write_text(json.dumps(rows[0]) + '\n')
    with pytest.raises(ValueError, match="'mystery'"):
        IUXrayDataset(data_root=str(root))
    (root / 'reports.jsonl').write_text('{"images": []}\n')
    with pytest.raises(KeyError, match="'id'"):
        IUXrayDataset(data_root=str(root))


@pytest.mark.skipif(not osp.isfile(IU_JSONL), reason='shared IU JSONL not present')
def test_shared_jsonl_in_place_report_only():
    ds = IUXrayDataset(data_root=osp.dirname(IU_JSONL), require_images=False)
    with open(IU_JSONL) as f:
        studies = [json.loads(line) for line in f]
    with_text = [s for s in studies if (s['findings'] or '').strip() or (s['impression'] or '').strip()]
    assert len(studies) == 1318
    assert len(ds) == len(with_text)
    recs = [ds.get_data_info(i) for i in range(len(ds))]
    assert all(r['img_path'] is None and r['report'] for r in recs)
    by_id = {s['id']: s for s in studies}
    for r in recs[:50]:
        expected = np.array([by_id[r['study_id']]['labels_from_mesh'][k] for k in IU_CLASSES],
                            np.float32)
        np.testing.assert_array_equal(r['gt_score'], expected)
    # the MeSH prefix table reproduces the shipped flags (documented tuberculosis exception)
    for s in studies:
        derived = iu_labels_from_mesh(s['mesh_major'])
        for key in IU_CLASSES:
            if derived[key] != s['labels_from_mesh'][key]:
                assert key == 'support_devices'
                assert any(m.lower().startswith('tuberculosis') for m in s['mesh_major'])
