"""Figures of lgdea.visualization and tools/visualize_grounding.py on tiny demo models (CPU).

Two methods (CLIP and LGDEA, tiny encoders, untrained weights saved as checkpoints) on a small
synthetic benchmark generated once per module under a temporary directory.
"""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from conftest import tiny_bert, tiny_tokenizer, tiny_vit
from lgdea.datasets.transforms import CorruptImageError, invert_map
from lgdea.evaluation.metrics.base import label_of
from lgdea.visualization import (build_eval_dataset, build_metric, check_runs, eval_pipeline,
                                 find_eval_set, grounding_figure, grounding_maps, image_results,
                                 init_model, load_config, retrieval_figure, retrieve_reports,
                                 select_grounding_records, sensitivity_figure)
from tool_loader import load_tool as _tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SMALL = dict(num_studies=40, retrieval_per_class=4, grounding_per_class=2)


def _png_size(path):
    assert osp.isfile(path) and osp.getsize(path) > 0
    with Image.open(path) as im:
        assert im.format == 'PNG'
        arr = np.asarray(im.convert('L'))
        assert arr.std() > 0  # something was drawn
        return im.size  # (W, H)


def _tiny_config(src: str, dst: str) -> str:
    """The demo config ``src`` with tiny encoders and a small benchmark, written to ``dst``."""
    cfg = Config.fromfile(osp.join(ROOT, src))
    cfg.merge_from_dict({f'{p}.{k}': v for p in ('test_dataloader.dataset',
                                                 'test_cfg.extra_dataloaders.0.dataset')
                         for k, v in SMALL.items()})
    cfg.model.image_encoder = tiny_vit(img_size=64, patch_size=8, dims=32)
    cfg.model.text_encoder = tiny_bert()
    cfg.model.tokenizer = tiny_tokenizer()
    cfg.model.embed_dims = 16
    cfg.dump(dst)
    return dst


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp('vis')
    runs = []
    for seed, (name, src) in enumerate([('CLIP', 'configs/demo/clip_demo_p100.py'),
                                        ('LGDEA', 'configs/demo/lgdea_demo_p5.py')]):
        config = _tiny_config(src, str(root / f'{name.lower()}_tiny.py'))
        torch.manual_seed(seed)
        model = init_model(config)
        ckpt = str(root / f'{name.lower()}.pth')
        torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
        runs.append(dict(name=name, config=config, checkpoint=ckpt))
    return dict(root=root, runs=runs)


@pytest.fixture
def in_root(env, monkeypatch):
    # the synthetic benchmark and the evidence cache are generated under ./data (once)
    monkeypatch.chdir(env['root'])
    return env


# ----------------------------------------------------------------------------------- helpers
def test_find_eval_set_of_the_demo_config():
    cfg = load_config(osp.join(ROOT, 'configs/demo/clip_demo_p100.py'))
    loader, metric = find_eval_set(cfg, 'GroundingCNR', 'grounding')
    assert loader['dataset']['split'] == 'grounding' and metric['type'] == 'GroundingCNR'
    loader, metric = find_eval_set(cfg, 'RetrievalPrecisionAtK')
    assert loader['dataset']['split'] == 'retrieval'
    assert tuple(metric['topk']) == (1, 2, 5, 10)
    assert [t['type'] for t in eval_pipeline(cfg, 'GroundingCNR', 'grounding')][0] == \
        'LoadCXRImage'


def test_check_runs_errors():
    with pytest.raises(ValueError, match='empty'):
        check_runs([])
    with pytest.raises(KeyError, match='checkpoint'):
        check_runs([dict(name='a', config='c.py')])
    with pytest.raises(ValueError, match='unique'):
        check_runs([dict(name='a', config='c', checkpoint='k')] * 2)


# --------------------------------------------------------------------------------- grounding
def test_grounding_figure_size(in_root, tmp_path):
    out = grounding_figure(in_root['runs'], str(tmp_path / 'fig' / 'grounding.png'),
                           per_class=1, classes=['Edema', 'Atelectasis'])
    # 2 columns x 2 methods: W = 30 + 2 * 200 + 6 + 10, H = 50 + 2 * 200 + 6 + 20
    assert _png_size(out) == (446, 476)


def test_grounding_records_and_maps_follow_the_metric(in_root):
    run = in_root['runs'][0]
    cfg = load_config(run['config'])
    dataset = build_eval_dataset(cfg, 'GroundingCNR', 'grounding')
    records = select_grounding_records(dataset, per_class=2, classes=['Edema', 'Atelectasis'])
    assert [r['category'] for r in records] == ['Edema', 'Edema', 'Atelectasis', 'Atelectasis']
    with pytest.raises(ValueError, match='not enough'):
        select_grounding_records(dataset, per_class=99)

    model = init_model(cfg, run['checkpoint'])
    maps = grounding_maps(model, cfg, records, dataset.metainfo)
    assert len(maps) == 4
    # the same map by hand: pipeline -> preprocessor -> interface -> invert_map
    from mmengine.dataset import Compose

    from lgdea.datasets.collate import vl_collate
    item = Compose(eval_pipeline(cfg, 'GroundingCNR', 'grounding'))(dict(records[0]))
    data = model.data_preprocessor(vl_collate([item]), False)
    with torch.no_grad():
        img = model.extract_image(data['images'])
        txt = model.extract_text([records[0]['phrase']], kind='phrase')
        grid_map = model.grounding_map(img, txt)[0]
    sample = data['data_samples'][0]
    expected = invert_map(grid_map, sample.get('geometry'), sample.ori_shape)
    result, full, cnr = maps[0]
    assert full.shape == tuple(records[0]['ori_shape'])
    np.testing.assert_allclose(full, expected, rtol=1e-5, atol=1e-6)
    # and the CNR is the metric's
    metric = build_metric(find_eval_set(cfg, 'GroundingCNR', 'grounding')[1], model,
                          dataset.metainfo)
    results = image_results(model, metric, records, eval_pipeline(cfg, 'GroundingCNR',
                                                                      'grounding'))
    with torch.no_grad():
        scores = metric.pair_scores(results)
    np.testing.assert_allclose([m[2] for m in maps], [s['cnr'] for s in scores])


# --------------------------------------------------------------------------------- retrieval
def test_retrieval_figure_size(in_root, tmp_path):
    out = retrieval_figure(in_root['runs'], str(tmp_path / 'retrieval.png'), num_queries=2,
                           topk=2)
    # 2 queries x (image + 2 methods): W = 10 + 200 + 2 * (340 + 8) + 10,
    # H = 30 + 2 * max(200, 2 * 100) + 8 + 20
    assert _png_size(out) == (916, 458)


def test_retrieval_ranking_is_the_metric_ranking(in_root):
    run = in_root['runs'][1]  # LGDEA: candidates carry their evidence
    cfg = load_config(run['config'])
    dataset = build_eval_dataset(cfg, 'RetrievalPrecisionAtK')
    records = [dataset.get_data_info(i) for i in range(len(dataset))]
    model = init_model(cfg, run['checkpoint'])
    ranked = retrieve_reports(model, cfg, records, records, topk=2,
                              dataset_meta=dataset.metainfo)
    assert len(ranked) == len(records) and all(len(r) == 2 for r in ranked)
    assert [r[0]['query_label'] for r in ranked] == [label_of(r['gt_label'], '')
                                                     for r in records]
    p_at_2 = 100.0 * np.mean([[e['label'] == e['query_label'] for e in r] for r in ranked])
    metric = build_metric(find_eval_set(cfg, 'RetrievalPrecisionAtK')[1], model,
                          dataset.metainfo)
    image_results(model, metric, records, eval_pipeline(cfg, 'RetrievalPrecisionAtK'))
    metric.results.sort(key=lambda r: r['sample_idx'])
    with torch.no_grad():
        expected = metric.compute_from_results(metric.results)
    assert p_at_2 == pytest.approx(expected['P@2'])


# ------------------------------------------------------------------------------- sensitivity
def test_sensitivity_figure(tmp_path):
    sweep = {'K': [(64, 0.61, 0.02), (32, 0.52, 0.05), (128, 0.58, None), (96, 0.6, 0.01)],
             'L': [(32, 0.5, 0.1), (48, 0.55, 0.04), (64, 0.6, 0.03), (80, 0.57, 0.02)]}
    out = sensitivity_figure(sweep, str(tmp_path / 'sens.png'), metric_label='CNR')
    # W = 60 + 2 * 320 + 80 + 20, H = 30 + 240 + 50
    assert _png_size(out) == (800, 320)
    out = sensitivity_figure({'K': sweep['K']}, str(tmp_path / 'k.png'), metric_label='ACC')
    assert _png_size(out) == (400, 320)
    with pytest.raises(ValueError, match='empty'):
        sensitivity_figure({}, str(tmp_path / 'x.png'))
    with pytest.raises(ValueError, match='value, mean, std'):
        sensitivity_figure({'K': [(32, 0.5)]}, str(tmp_path / 'x.png'))


# ------------------------------------------------------------------- tools/visualize_grounding
def _write_image(path, kind, h, w):
    y, x = np.mgrid[0:h, 0:w]
    arr = ((3 * x + 2 * y) % 256).astype(np.uint8)
    if kind == 'dicom':
        pytest.importorskip('pydicom')
        from test_transforms import _write_dicom
        return _write_dicom(path, arr.astype(np.uint16) * 16, 'MONOCHROME2')
    Image.fromarray(arr).save(path)
    return str(path)


@pytest.mark.parametrize('kind,h,w', [('wide.png', 50, 130), ('tall.jpg', 130, 50),
                                      ('dicom', 40, 70)])
def test_visualize_grounding_keeps_the_image_aspect(in_root, tmp_path, capsys, kind, h, w):
    image = _write_image(str(tmp_path / (kind if kind != 'dicom' else 'x.dcm')), kind, h, w)
    out = str(tmp_path / 'out.png')
    run = in_root['runs'][0]
    res = _tool('visualize_grounding').main(
        [run['config'], run['checkpoint'], image, 'right lower lobe opacity', '--out', out,
         '--box', '5', '6', '20', '15'])
    assert capsys.readouterr().out.strip().splitlines()[-1] == out
    assert res['map'].shape == (h, w) and np.isfinite(res['map']).all()
    assert res['cnr'] is not None and np.isfinite(res['cnr'])
    # two panels with the image's aspect: longest side 400 px, top 40, margins 5, gap 10
    W, H = _png_size(out)
    pw, ph = (W - 5 - 5 - 10) / 2, H - 40 - 5
    assert max(pw, ph) == 400
    assert abs(pw / ph - w / h) <= w / h / min(pw, ph)  # within one pixel of rounding


def test_visualize_grounding_errors(env, tmp_path):
    run = env['runs'][0]
    tool = _tool('visualize_grounding')
    missing = str(tmp_path / 'missing.png')
    with pytest.raises(FileNotFoundError, match='missing.png'):
        tool.main([run['config'], run['checkpoint'], missing, 'opacity'])
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'this is not an image')
    with pytest.raises(CorruptImageError, match='bad.png'):
        tool.main([run['config'], run['checkpoint'], str(bad), 'opacity'])
    with pytest.raises(SystemExit):
        tool.main([run['config'], run['checkpoint'], str(bad), '  '])
