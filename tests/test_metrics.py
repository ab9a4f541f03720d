"""Metrics on hand-checkable cases, with a fake model whose embeddings the test controls."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.evaluator import Evaluator
from mmpretrain.structures import DataSample
from scipy.ndimage import gaussian_filter

from lgdea.datasets.transforms.geometry import resize_record
from lgdea.evaluation import (GroundingCNR, RetrievalPrecisionAtK, ZeroShotAccuracy,
                              argmax_first, boxes_mask, contrast_to_noise_ratio, macro_f1,
                              zscore_columns)
from lgdea.evaluation.metrics.base import stack_image_feats


class FakeVLModel(torch.nn.Module):
    """The inference interface with fixed embeddings.

    ``similarity`` is ``embed @ embed.T``; with one-hot image embeddings, similarity(image i,
    text t) is component ``i`` of the text's vector, so a test writes the similarity matrix
    directly as text vectors. ``grounding_map`` is ``patch_embed @ phrase embed`` on the grid.
    """

    def __init__(self, text_vectors: dict):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.text_vectors = {k: torch.as_tensor(v, dtype=torch.float32)
                             for k, v in text_vectors.items()}
        self.text_calls = []

    def extract_text(self, texts, kind='report', evidence=None):
        self.text_calls.append(dict(texts=list(texts), kind=kind, evidence=evidence))
        return dict(embed=torch.stack([self.text_vectors[t] for t in texts]))

    def similarity(self, img_feats, txt_feats):
        return img_feats['embed'] @ txt_feats['embed'].t()

    def grounding_map(self, img_feats, txt_feats):
        h, w = img_feats['grid']
        sim = torch.einsum('bpd,bd->bp', img_feats['patch_embed'], txt_feats['embed'])
        return sim.view(-1, h, w)


def _sample(embed, **fields):
    ds = DataSample()
    label = fields.pop('gt_label', None)
    if label is not None:
        ds.set_gt_label(label)
    for k, v in fields.items():
        ds.set_field(v, k, field_type='metainfo' if k in ('ori_shape', 'geometry', 'study_id',
                                                            'category', 'sample_idx')
                     else 'data')
    ds.image_feats = dict(embed=torch.as_tensor(embed, dtype=torch.float32))
    return ds


def _evaluate(metric, model, samples, meta=None, batch_size=None):
    metric.bind_model(model)
    evaluator = Evaluator([metric])
    if meta is not None:
        evaluator.dataset_meta = meta
    step = batch_size or len(samples)
    for i in range(0, len(samples), step):
        evaluator.process(samples[i:i + step])
    return evaluator.evaluate(len(samples))


# --------------------------------------------------------------------------- retrieval
# similarity of query image q (one-hot e_q) with candidate report c: S[q, c]
S = np.array([[0.9, 0.1, 0.8, 0.3],   # label 0: c0 (0) then c2 (1)
              [0.5, 0.2, 0.5, 0.1],   # label 0: c0 and c2 tie, c0 first by index
              [0.2, 0.3, 0.1, 0.9],   # label 1: c3 (2) then c1 (0): no hit in top 2
              [0.1, 0.2, 0.3, 0.4]])  # label 2: c3 (2) then c2 (1)
LABELS = [0, 0, 1, 2]


def _retrieval_samples():
    return [_sample(np.eye(4)[i], gt_label=LABELS[i], text=f'r{i}', study_id=f's{i}',
                    sample_idx=i) for i in range(4)]


def test_precision_at_k_by_hand():
    model = FakeVLModel({f'r{c}': S[:, c] for c in range(4)})
    metric = RetrievalPrecisionAtK(topk=(1, 2, 4))
    m = _evaluate(metric, model, _retrieval_samples(), batch_size=3)
    # the per-query terms of Eq. R1 / R2, under the reported keys
    cases = metric.keyed_per_case()
    assert cases['retrieval/P@1'].tolist() == [100.0, 100.0, 0.0, 100.0]
    assert cases['retrieval/P@2'].tolist() == [50.0, 50.0, 0.0, 50.0]
    assert cases['retrieval/Hit@4'].tolist() == [100.0] * 4
    # P@1 = (1 + 1 + 0 + 1) / 4; P@2 = (1/2 + 1/2 + 0 + 1/2) / 4; P@4 = (2+2+1+1) / 4 / 4
    assert m['retrieval/P@1'] == pytest.approx(75.0)
    assert m['retrieval/Hit@1'] == pytest.approx(75.0)
    assert m['retrieval/P@2'] == pytest.approx(37.5)
    assert m['retrieval/Hit@2'] == pytest.approx(75.0)
    assert m['retrieval/P@4'] == pytest.approx(37.5)
    assert m['retrieval/Hit@4'] == pytest.approx(100.0)
    assert m['retrieval/num_candidates'] == 4
    assert all(c['kind'] == 'report' for c in model.text_calls)


def test_retrieval_ties_follow_candidate_index_and_study_dedup():
    # the two candidates are identical (like normal reports): candidate 0 always ranks first
    model = FakeVLModel({'normal': [1.0, 1.0, 1.0], 'effusion': [1.0, 1.0, 1.0]})
    samples = [_sample(np.eye(3)[0], gt_label=1, text='effusion', study_id='a', sample_idx=0),
               _sample(np.eye(3)[1], gt_label=0, text='normal', study_id='b', sample_idx=1),
               _sample(np.eye(3)[2], gt_label=0, text='normal', study_id='b', sample_idx=2)]
    m = _evaluate(RetrievalPrecisionAtK(topk=(1,)), model, samples)
    # candidates: 'effusion' (label 1) then 'normal' (label 0; study b once)
    assert m['retrieval/num_candidates'] == 2
    assert m['retrieval/P@1'] == pytest.approx(100 / 3)
    # exclude_own_study removes a query's own report: each query sees only the other class
    m = _evaluate(RetrievalPrecisionAtK(topk=(1,), exclude_own_study=True), model, samples)
    assert m['retrieval/P@1'] == pytest.approx(0.0)


def test_retrieval_passes_evidence_and_config_candidates():
    model = FakeVLModel({'a': [1.0, 0.0], 'b': [0.0, 1.0]})
    samples = [_sample([1.0, 0.0], gt_label=0, text='a', study_id='s0', evidence=['x']),
               _sample([0.0, 1.0], gt_label=1, text='b', study_id='s1', evidence=['y', 'z'])]
    m = _evaluate(RetrievalPrecisionAtK(topk=(1,)), model, samples)
    assert m['retrieval/P@1'] == 100.0
    assert model.text_calls[-1]['evidence'] == [['x'], ['y', 'z']]
    cands = [dict(text='b', label='B'), dict(text='a', label='A')]
    m = _evaluate(RetrievalPrecisionAtK(topk=(1, 2), candidates=cands), model, samples,
                  meta=dict(classes=['A', 'B']))
    assert m['retrieval/P@1'] == 100.0 and m['retrieval/P@2'] == 50.0
    with pytest.raises(ValueError, match='exceeds'):
        _evaluate(RetrievalPrecisionAtK(topk=(3,)), model, samples)


# --------------------------------------------------------------------------- zero-shot
# image x prompt similarities, prompts [A1, A2, B1, B2]; labels A, B, A, B
P = np.array([[0.5, 0.4, 0.7, 0.6],
              [0.2, 0.1, 0.9, 0.8],
              [0.9, 0.1, 0.6, 0.6],
              [0.3, 0.3, 0.8, 0.7]])
PROMPTS = dict(A=['A1', 'A2'], B=['B1', 'B2'])


def _zero_shot_samples():
    return [_sample(np.eye(4)[i], gt_label=[0, 1, 0, 1][i], sample_idx=i) for i in range(4)]


def _zs_model():
    return FakeVLModel({name: P[:, j] for j, name in enumerate(['A1', 'A2', 'B1', 'B2'])})


def test_zero_shot_max_zscore_and_mean_logit_by_hand():
    metric = ZeroShotAccuracy(prompts=PROMPTS, aggregation='max', extra_protocols=[
        dict(name='official_gloria', aggregation='max', zscore=True),
        dict(name='mean_logit', aggregation='mean_logit')])
    m = _evaluate(metric, _zs_model(), _zero_shot_samples(), batch_size=3)
    # max: A = [.5 .2 .9 .3], B = [.7 .9 .6 .8] -> [B, B, A, B]: 3/4 right
    assert m['zero_shot/accuracy'] == pytest.approx(75.0)
    assert metric.keyed_per_case()['zero_shot/accuracy'].tolist() == [0.0, 100.0, 100.0, 100.0]
    assert metric.keyed_per_case()['zero_shot/mean_logit/accuracy'].tolist() == [
        0.0, 100.0, 0.0, 100.0]
    # F1_A = 2*1/(2+0+1), F1_B = 2*2/(4+1+0)
    assert m['zero_shot/macro_f1'] == pytest.approx(100 * (2 / 3 + 4 / 5) / 2)
    # z-scored per class across images: zA = [.09 -1.03 1.59 -.65], zB = [-.45 1.34 -1.34 .45]
    assert m['zero_shot/official_gloria/accuracy'] == pytest.approx(100.0)
    assert m['zero_shot/official_gloria/macro_f1'] == pytest.approx(100.0)
    # mean logit: A = [.45 .15 .5 .3], B = [.65 .85 .6 .75] -> all B
    assert m['zero_shot/mean_logit/accuracy'] == pytest.approx(50.0)
    assert m['zero_shot/mean_logit/macro_f1'] == pytest.approx(100 * (0 + 4 / 6) / 2)


def test_zero_shot_mean_embedding_default_uses_dataset_prompts():
    model = _zs_model()
    m = _evaluate(ZeroShotAccuracy(), model, _zero_shot_samples(),
                  meta=dict(classes=['A', 'B'], prompts=PROMPTS))
    # t_c = normalize(mean_j normalize(p_cj)); score[i, c] = t_c[i] (one-hot images)
    vec = {k: P[:, j] / np.linalg.norm(P[:, j]) for j, k in enumerate(['A1', 'A2', 'B1', 'B2'])}
    t_a, t_b = (vec['A1'] + vec['A2']) / 2, (vec['B1'] + vec['B2']) / 2
    scores = np.stack([t_a / np.linalg.norm(t_a), t_b / np.linalg.norm(t_b)], axis=1)
    expected = np.mean(scores.argmax(1) == np.array([0, 1, 0, 1])) * 100
    assert m['zero_shot/accuracy'] == pytest.approx(expected)
    # normalising the prompts removes B's larger norm: 4/4 right (max gives 3/4)
    assert expected == 100.0
    assert all(c['kind'] == 'phrase' for c in model.text_calls)
    # classes follow dataset_meta order, prompts of other classes are ignored
    m = _evaluate(ZeroShotAccuracy(prompts=dict(B=['B1'], A=['A1'], C=['A2'])), model,
                  _zero_shot_samples(), meta=dict(classes=['A', 'B']))
    assert 'zero_shot/accuracy' in m
    with pytest.raises(ValueError, match='no prompt for classes'):
        _evaluate(ZeroShotAccuracy(prompts=dict(A=['A1'])), model, _zero_shot_samples(),
                  meta=dict(classes=['A', 'B']))


def test_scoring_helpers():
    assert argmax_first(np.array([[1.0, 1.0, 0.5], [0.2, 0.3, 0.3]])).tolist() == [0, 1]
    z = zscore_columns(np.array([[1.0, 5.0], [3.0, 5.0]]))
    np.testing.assert_allclose(z, [[-1.0, 0.0], [1.0, 0.0]])
    from sklearn.metrics import f1_score
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 50), rng.integers(0, 3, 50)
    assert macro_f1(p, y) == pytest.approx(f1_score(y, p, average='macro', zero_division=0))


# --------------------------------------------------------------------------- grounding
MAP = np.array([[0, 0, 0, 0],
                [0, 4, 4, 0],
                [0, 4, 2, 0],
                [0, 0, 0, 1]], dtype=np.float64)
BOX = np.array([[1, 1, 2, 2]], np.float32)  # x, y, w, h


def test_cnr_by_hand():
    inside = boxes_mask(BOX, (4, 4))
    assert inside.sum() == 4 and inside[1:3, 1:3].all()
    # in: 4 4 4 2 -> mean 3.5, var 0.75; out: eleven 0 and one 1 -> mean 1/12, var 11/144
    expected = (3.5 - 1 / 12) / math.sqrt(0.75 + 11 / 144)
    assert expected == pytest.approx(41 / math.sqrt(119))
    assert contrast_to_noise_ratio(MAP, inside) == pytest.approx(expected)
    assert contrast_to_noise_ratio(-MAP, inside, signed=True) == pytest.approx(-expected)
    assert contrast_to_noise_ratio(-MAP, inside) == pytest.approx(expected)
    with_nan = MAP.copy()
    with_nan[3, 3] = np.nan  # outside the field of view: out = eleven 0
    assert contrast_to_noise_ratio(with_nan, inside) == pytest.approx(3.5 / math.sqrt(0.75))
    assert math.isnan(contrast_to_noise_ratio(np.ones((4, 4)), inside))
    assert math.isnan(contrast_to_noise_ratio(MAP, np.ones((4, 4), bool)))
    # fractional boxes: a pixel is inside when its centre is (0.6 <= c + .5 < 1.6, ...)
    frac = boxes_mask(np.array([[0.6, 0.4, 1.0, 1.2]]), (4, 4))
    assert np.argwhere(frac).tolist() == [[0, 1], [1, 1]]


def _grounding_sample(grid_map, boxes, category, ori_shape, geometry=(), idx=0):
    ds = _sample(np.zeros(1), phrase=f'phrase {category}', boxes=np.asarray(boxes, np.float32),
                 category=category, ori_shape=tuple(ori_shape), geometry=list(geometry),
                 sample_idx=idx)
    g = np.asarray(grid_map, np.float32)
    ds.image_feats = dict(embed=torch.zeros(1),
                          patch_embed=torch.from_numpy(g.reshape(-1, 1)).clone(),
                          grid=g.shape)
    return ds


def _grounding_model():
    return FakeVLModel({f'phrase {c}': [1.0] for c in ('Edema', 'Effusion')})


def test_grounding_cnr_metric_per_class_degenerate_and_preresized():
    expected = 41 / math.sqrt(119)
    samples = [
        _grounding_sample(MAP, BOX, 'Edema', (4, 4), idx=0),
        _grounding_sample(-MAP, BOX, 'Edema', (4, 4), idx=1),           # inverted map
        _grounding_sample(np.full((4, 4), 2.0), BOX, 'Effusion', (4, 4), idx=2),  # constant
        _grounding_sample(MAP, [[0, 0, 4, 4]], 'Effusion', (4, 4), idx=3),  # box = image
        # an 8x8 original read from a 4x4 file: boxes in the 8x8 frame
        _grounding_sample(MAP, BOX * 2, 'Effusion', (8, 8),
                          geometry=[resize_record((8, 8), (4, 4), offline=True)], idx=4),
    ]
    m = _evaluate(GroundingCNR(signed=True, batch_size=2), _grounding_model(), samples,
                  meta=dict(classes=['Effusion', 'Edema']), batch_size=2)
    direct = contrast_to_noise_ratio(
        np.asarray(F.interpolate(torch.from_numpy(MAP)[None, None], size=(8, 8),
                                 mode='bilinear', align_corners=False)[0, 0]),
        boxes_mask(BOX * 2, (8, 8)))
    assert m['grounding/num_pairs'] == 5 and m['grounding/num_degenerate'] == 2
    assert m['grounding/cnr_Edema'] == pytest.approx(expected)
    assert m['grounding/signed_cnr_Edema'] == pytest.approx(0.0)
    assert m['grounding/cnr_Effusion'] == pytest.approx(direct)
    assert m['grounding/cnr'] == pytest.approx((2 * expected + direct) / 3)
    assert m['grounding/signed_cnr'] == pytest.approx(direct / 3)
    assert list(m)[:2] == ['grounding/cnr', 'grounding/signed_cnr']
    assert direct != pytest.approx(expected)


def test_grounding_cnr_smoothing_on_the_patch_grid():
    samples = [_grounding_sample(MAP, BOX, 'Edema', (4, 4))]
    m = _evaluate(GroundingCNR(smooth_sigma=1.5), _grounding_model(), samples)
    expected = contrast_to_noise_ratio(gaussian_filter(MAP, 1.5), boxes_mask(BOX, (4, 4)))
    assert m['grounding/cnr'] == pytest.approx(expected)
    assert expected != pytest.approx(41 / math.sqrt(119))


def test_metric_requires_image_feats_and_a_bound_model():
    ds = DataSample()
    ds.set_gt_label(0)
    metric = ZeroShotAccuracy(prompts=PROMPTS)
    with pytest.raises(KeyError, match='image_feats'):
        metric.process(None, [ds.to_dict()])
    metric = ZeroShotAccuracy(prompts=PROMPTS)
    metric.process(None, [s.to_dict() for s in _zero_shot_samples()])
    with pytest.raises(RuntimeError, match='bind_model'):
        metric.compute_metrics(metric.results)


def test_stack_image_feats_shares_grid_and_keeps_ragged_lists():
    feats = [dict(embed=torch.ones(3), grid=(2, 2), tokens=torch.ones(2, 3)),
             dict(embed=torch.zeros(3), grid=(2, 2), tokens=torch.ones(5, 3))]
    out = stack_image_feats(feats)
    assert out['embed'].shape == (2, 3) and out['grid'] == (2, 2)
    assert isinstance(out['tokens'], list) and len(out['tokens']) == 2


def test_metrics_of_one_dataset_share_the_image_features():
    zs, ret = ZeroShotAccuracy(prompts=PROMPTS), RetrievalPrecisionAtK(topk=(1,))
    evaluator = Evaluator([zs, ret])
    samples = _zero_shot_samples()
    for s in samples:
        s.text, s.study_id = 'A1', 'x'
    evaluator.process(samples)
    assert zs.results[0]['image_feats']['embed'] is ret.results[0]['image_feats']['embed']
    assert zs.results[0]['image_feats']['embed'] is samples[0].image_feats['embed']
