"""Linear-probe evaluation (docs/linear_probe.md): head, metrics, tasks, feature cache,
tools/test.py / tools/linear_probe.py integration and the fine-tuning mode."""
import glob
import json
import os
import os.path as osp
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from PIL import Image

from conftest import tiny_bert, tiny_tokenizer, tiny_vit
from lgdea.evaluation.linear_probe import (MEAN_LABEL_ACCURACY_KEY, build_feature_table,
                                           check_train_labels, classification_metrics,
                                           feature_cache_key, finetune_classifier, load_subset,
                                           macro_auroc, mean_label_accuracy, model_fingerprint,
                                           parse_task, predict_scores, run_linear_probe,
                                           train_linear_probe)
from lgdea.evaluation.linear_probe.metrics import rank_auroc
from lgdea.models import BaseVLPModel
from lgdea.registry import MODELS
from tool_loader import load_tool as _tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PIPE32 = [dict(type='LoadCXRImage'), dict(type='ResizeCXR', scale=(32, 32)),
          dict(type='PackVLInputs')]




class PooledPixelEncoder(BaseVLPModel):
    """A fixed (parameter-free, deterministic) image encoder: ``probe`` = the image average-
    pooled to 8 x 8 (64 values). Enough signal for the synthetic findings, no training."""

    def loss(self, images, data_samples, reports):
        raise NotImplementedError

    def extract_text(self, texts, kind='report', evidence=None):
        raise NotImplementedError

    def extract_image(self, images):
        probe = F.adaptive_avg_pool2d(images, 8).flatten(1)
        return dict(embed=F.normalize(probe, dim=-1), probe=probe)


def _synthetic(tmp_path, **sizes):
    return dict(type='SyntheticCXRDataset', cache_dir=str(tmp_path / 'syn'), seed=0,
                image_size=32, show_progress=False, **sizes)


def _tiny_clip():
    model = MODELS.build(dict(type='CLIPBaseline', image_encoder=tiny_vit(),
                              text_encoder=tiny_bert(), tokenizer=tiny_tokenizer(), embed_dims=16,
                              data_preprocessor=dict(type='VLDataPreprocessor')))
    model.init_weights()
    return model


# ------------------------------------------------------------------ (a) hand-checkable
def test_separable_features_reach_accuracy_one_and_shuffled_labels_stay_at_chance():
    rng = np.random.default_rng(0)
    n, c = 200, 16
    y = np.arange(n) % 2
    x = rng.normal(size=(n, c)).astype(np.float32)
    x[:, 0] += np.where(y == 1, 4.0, -4.0)  # separable along one channel (margin 8 sd)
    tr, va, te = slice(0, 120), slice(120, 160), slice(160, 200)
    head, sel = train_linear_probe(x[tr], y[tr], x[va], y[va], num_classes=2, epochs=50,
                                   lr=5e-2, weight_decays=[0.0, 1e-2], batch_size=32)
    m = classification_metrics(predict_scores(head, x[te]), y[te], multilabel=False)
    assert m['accuracy'] == 100.0 and m['auroc'] == 100.0
    assert 1 <= sel.epoch <= 50 and sel.weight_decay in (0.0, 1e-2) and sel.val_score == 100.0
    # labels unrelated to the features: held-out accuracy near chance (40 test items)
    y_rand = rng.permutation(y)
    x_rand = rng.normal(size=(n, c)).astype(np.float32)
    head, _ = train_linear_probe(x_rand[tr], y_rand[tr], x_rand[va], y_rand[va], num_classes=2,
                                 epochs=50, lr=5e-2, batch_size=32)
    acc = classification_metrics(predict_scores(head, x_rand[te]), y_rand[te], False)['accuracy']
    assert 25.0 <= acc <= 75.0


def test_training_is_seeded_and_leaves_global_rng_alone():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    state = torch.random.get_rng_state()
    a, _ = train_linear_probe(x, y, num_classes=2, epochs=3, batch_size=16, seed=3)
    b, _ = train_linear_probe(x, y, num_classes=2, epochs=3, batch_size=16, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    assert torch.equal(a.fc.weight, b.fc.weight)


def test_macro_auroc_matches_sklearn_and_hand_values():
    from sklearn.metrics import roc_auc_score
    # label 0: the classic example, AUROC 0.75; label 1: a tie between a positive and a
    # negative counts one half -> (1 + 0.5 + 1 + 1) / 4 = 0.875; label 2: one class only
    # (skipped); label 3: NaN (unknown) entries left out -> perfect ranking, 1.0
    scores = np.array([[0.1, 0.2, 0.5, 0.9], [0.4, 0.6, 0.5, 0.1], [0.35, 0.6, 0.5, 0.2],
                       [0.8, 0.9, 0.5, 0.8]])
    targets = np.array([[0, 0, 1, np.nan], [0, 1, 1, 0], [1, 0, 1, 0], [1, 1, 1, 1]], float)
    mean, per_label, skipped = macro_auroc(scores, targets)
    assert skipped == 1 and np.isnan(per_label[2])
    np.testing.assert_allclose([per_label[0], per_label[1], per_label[3]], [75.0, 87.5, 100.0])
    assert mean == pytest.approx((75.0 + 87.5 + 100.0) / 3)
    assert per_label[0] == pytest.approx(100 * roc_auc_score(targets[:, 0], scores[:, 0]))
    assert per_label[1] == pytest.approx(100 * roc_auc_score(targets[:, 1], scores[:, 1]))
    # the fast rank version used for model selection gives sklearn's value, ties included
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 300), rng.integers(0, 5, 300).astype(float)
    assert rank_auroc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert macro_auroc(scores, targets, 'rank')[1][1] == pytest.approx(87.5)


def test_multilabel_metric_keys_and_mean_label_accuracy():
    scores = np.array([[0.9, 0.2], [0.4, 0.7], [0.6, 0.4], [0.1, 0.8]])
    targets = np.array([[1, 0], [0, 1], [0, 0], [0, np.nan]], float)
    # label 0: predictions 1,0,1,0 vs 1,0,0,0 -> 3/4; label 1: 0,1,0 vs 0,1,0 -> 3/3
    assert mean_label_accuracy(scores, targets) == pytest.approx(100 * (0.75 + 1.0) / 2)
    m = classification_metrics(scores, targets, True, ['Effusion', 'Edema'])
    assert set(m) == {'auroc_macro', 'auroc_skipped_labels', MEAN_LABEL_ACCURACY_KEY,
                      'auroc/Effusion', 'auroc/Edema'}
    assert MEAN_LABEL_ACCURACY_KEY == 'mean_label_accuracy_not_paper_comparable'
    assert m['auroc/Effusion'] == 100.0 and m['auroc_skipped_labels'] == 0


def test_head_standardisation_masked_bce_and_registry():
    head = MODELS.build(dict(type='LinearProbeClassifier', in_channels=3, num_classes=2,
                             multilabel=True))
    feats = torch.tensor([[1.0, 10.0, 5.0], [3.0, 30.0, 5.0]])
    head.fit_standardization(feats)
    torch.testing.assert_close(head.feat_mean, torch.tensor([2.0, 20.0, 5.0]))
    torch.testing.assert_close(head.feat_std, torch.tensor([1.0, 10.0, 1.0]))  # constant -> 1
    assert head(feats).shape == (2, 2)
    probs = head(feats, mode='predict')
    assert ((probs > 0) & (probs < 1)).all()
    targets = torch.tensor([[1.0, float('nan')], [0.0, float('nan')]])
    loss = head(feats, targets, mode='loss')['loss']
    logits = head(feats)
    expected = F.binary_cross_entropy_with_logits(logits[:, 0], targets[:, 0])
    torch.testing.assert_close(loss, expected)  # the NaN column is left out of the mean
    with pytest.raises(ValueError, match='at least 2 classes'):
        MODELS.build(dict(type='LinearProbeClassifier', in_channels=3, num_classes=1))


def test_clear_errors(tmp_path):
    syn = _synthetic(tmp_path, cls_binary_size=40, num_studies=8)
    # retrieval records have gt_label but no gt_score: a multi-label task says so
    task = parse_task(dict(name='t', dataset=dict(syn, split='cls_binary'), multilabel=True),
                      PIPE32)
    with pytest.raises(ValueError, match=r"task 't'.*no `gt_score`.*multilabel=False"):
        load_subset(task.test, task, 'test')
    # a dataset without labels
    task = parse_task(dict(name='pre', train=dict(type='InMemoryRecords', records=[
        dict(img_path='/x.png')]), test=dict(type='InMemoryRecords', records=[])), PIPE32)
    with pytest.raises(ValueError, match=r"'pre', train subset.*no `gt_label`.*no such labels"):
        load_subset(task.train[100.0], task, 'train')
    with pytest.raises(ValueError, match=r"'pre', test subset.*is empty"):
        load_subset(task.test, task, 'test')
    # a fraction that leaves a class without a training sample names task and fraction
    task = parse_task(dict(name='rsna', dataset=dict(syn, split='cls_binary'),
                           fractions=[1, 100]), PIPE32)
    data = load_subset(task.train[1.0], task, 'train')
    data.targets = np.zeros_like(data.targets)
    with pytest.raises(ValueError, match=r"task 'rsna' at 1 %.*\['Pneumonia'\].*no training"):
        check_train_labels(task, 1.0, data)
    with pytest.raises(ValueError, match='train_fraction_override'):
        parse_task(dict(name='x', train=dict(type='A'), test=dict(type='A'), fractions=[10]),
                   PIPE32)
    with pytest.raises(ValueError, match="unknown keys"):
        parse_task(dict(name='x', dataset=dict(syn), fraction=[10]), PIPE32)
    with pytest.raises(ValueError, match='no image pipeline'):
        parse_task(dict(name='x', dataset=dict(syn)), None)


# ------------------------------------------------- (b) beats chance, fast and slow variants
def test_fixed_encoder_features_beat_a_shuffled_label_control(tmp_path):
    """Cached features of a fixed encoder on the synthetic classification splits: the probe
    must beat the same probe trained on shuffled labels by a clear margin (a misaligned
    feature / label pairing anywhere in the pipeline would bring both to chance)."""
    syn = _synthetic(tmp_path, cls_multiclass_size=300, cls_multilabel_size=300,
                     num_studies=8)
    section = dict(tasks=[
        dict(name='syn_multiclass', dataset=dict(syn, split='cls_multiclass')),
        dict(name='syn_multilabel', dataset=dict(syn, split='cls_multilabel'), multilabel=True)],
        pipeline=PIPE32, epochs=40, lr=5e-3, weight_decays=[0.0, 1e-2], batch_size=64,
        feature_cache_dir=str(tmp_path / 'cache'))
    model = PooledPixelEncoder()
    metrics = run_linear_probe(model, section, show_progress=False)
    acc = metrics['syn_multiclass/linear_probe@100/accuracy']
    auroc = metrics['syn_multilabel/linear_probe@100/auroc_macro']
    assert metrics['syn_multilabel/linear_probe@100/auroc_skipped_labels'] == 0
    # the control: same cached features (nothing recomputed), training labels shuffled
    control = {}
    for name, key in (('syn_multiclass', 'accuracy'), ('syn_multilabel', 'auroc_macro')):
        task = parse_task(next(t for t in section['tasks'] if t['name'] == name), PIPE32)
        subsets = dict(test=load_subset(task.test, task, 'test'),
                       val=load_subset(task.val, task, 'val'),
                       train=load_subset(task.train[100.0], task, 'train'))
        cache = glob.glob(str(tmp_path / 'cache' / f'{name}_*.npz'))
        assert len(cache) == 1
        table, computed = build_feature_table(model, subsets, cache[0], 64, 0, 'x', False)
        assert computed == 0
        train_y = np.random.default_rng(0).permutation(subsets['train'].targets)
        head, _ = train_linear_probe(
            table.take(subsets['train'].img_paths), train_y,
            table.take(subsets['val'].img_paths), subsets['val'].targets,
            num_classes=len(subsets['test'].classes), multilabel=task.multilabel, epochs=40,
            lr=5e-3, weight_decays=[0.0, 1e-2], batch_size=64)
        control[name] = classification_metrics(
            predict_scores(head, table.take(subsets['test'].img_paths)),
            subsets['test'].targets, task.multilabel)[key]
    assert acc >= 45.0 and acc >= control['syn_multiclass'] + 10.0, (acc, control)
    assert auroc >= 60.0 and auroc >= control['syn_multilabel'] + 8.0, (auroc, control)


def _train_and_probe_demo_clip(tmp_path, iters: int):
    """Train the demo CLIP (100 % pairs) for ``iters`` steps through tools/train.py and probe
    the three demo tasks with tools/linear_probe.py, for the trained checkpoint and for the
    same config's untrained encoder. Returns (trained, untrained) metric dicts."""
    work = str(tmp_path / 'work')
    opts = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={iters}', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
            'val_dataloader.dataset.retrieval_per_class=4',
            'val_dataloader.dataset.grounding_per_class=2']
    config = osp.join(ROOT, 'configs/demo/clip_demo_p100.py')
    _tool('train').main([config, '--work-dir', work, '--cfg-options', *opts])
    trained = _tool('linear_probe').main([config, osp.join(work, f'iter_{iters}.pth'),
                                          '--work-dir', work])
    assert glob.glob(osp.join(work, '*_linear_probe_results.json'))
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    model.init_weights()
    ckpt = str(tmp_path / 'untrained.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    untrained = _tool('linear_probe').main([config, ckpt, '--work-dir', str(tmp_path / 'w0')])
    return trained, untrained


@pytest.mark.slow
def test_trained_demo_clip_encoder_beats_chance(tmp_path, monkeypatch):
    """The demo CLIP at 100 % pairs after the demo's 600 steps, probed on the three demo
    tasks, against chance (binary accuracy 50 %, 3-class 33.3 %, macro AUROC 50) and against
    the untrained encoder (random ViT features already carry intensity cues: at signal 1.0
    untrained encoders gave binary 51-57, 3-class 46-48, AUROC 55-56)."""
    monkeypatch.chdir(tmp_path)
    trained, untrained = _train_and_probe_demo_clip(tmp_path, iters=600)
    key = 'synthetic_cls_{}/linear_probe@100/{}'.format
    summary = {k: (round(trained[k], 1), round(untrained[k], 1)) for k in (
        key('binary', 'accuracy'), key('multiclass', 'accuracy'),
        key('multilabel', 'auroc_macro'))}
    print('linear probe (trained, untrained):', summary)
    assert trained[key('binary', 'accuracy')] >= 53.0, summary
    assert trained[key('multiclass', 'accuracy')] >= max(
        45.0, untrained[key('multiclass', 'accuracy')] + 8.0), summary
    assert trained[key('multilabel', 'auroc_macro')] >= max(
        58.0, untrained[key('multilabel', 'auroc_macro')] + 4.0), summary


# --------------------------------------------------------- (c) tools/test.py integration
def _demo_options(tmp_path):
    small = dict(num_studies=40, retrieval_per_class=4, grounding_per_class=2)
    opts = ['test_dataloader.num_workers=0', 'linear_probe.epochs=5',
            f'linear_probe.feature_cache_dir={tmp_path / "feature_cache"}',
            'linear_probe.tasks.0.dataset.cls_binary_size=30',
            'linear_probe.tasks.1.dataset.cls_multiclass_size=30',
            'linear_probe.tasks.2.dataset.cls_multilabel_size=40']
    for prefix in ('test_dataloader.dataset', 'test_cfg.extra_dataloaders.0.dataset'):
        opts += [f'{prefix}.{k}={v}' for k, v in small.items()]
    return opts


def test_test_tool_merges_probe_keys_into_the_results_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # data/ (synthetic cache, evidence cache) goes here
    config = osp.join(ROOT, 'configs/demo/clip_demo_p100.py')
    cfg = Config.fromfile(config)
    model = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    work = str(tmp_path / 'work')
    opts = _demo_options(tmp_path)
    metrics = _tool('test').main([config, ckpt, '--work-dir', work, '--cfg-options', *opts])
    files = glob.glob(osp.join(work, '*_test_results.json'))
    assert len(files) == 1
    with open(files[0]) as f:
        dumped = json.load(f)
    for key in ('synthetic_5x200/zero_shot/accuracy', 'synthetic_grounding/grounding/cnr',
                'synthetic_cls_binary/linear_probe@100/accuracy',
                'synthetic_cls_multiclass/linear_probe@100/accuracy',
                'synthetic_cls_multilabel/linear_probe@100/auroc_macro',
                'synthetic_cls_multilabel/linear_probe@100/'
                'mean_label_accuracy_not_paper_comparable'):
        assert key in dumped and key in metrics, key
    assert 0.0 <= dumped['synthetic_cls_binary/linear_probe@100/accuracy'] <= 100.0
    log = ''.join(open(p).read() for p in glob.glob(osp.join(work, '*', '*.log')))
    assert 'synthetic_cls_binary @100%: accuracy' in log
    assert len(glob.glob(str(tmp_path / 'feature_cache' / '*.npz'))) == 3

    # the standalone tool reuses the cached features and writes its own JSON
    probe = _tool('linear_probe').main([config, ckpt, '--work-dir', work, '--tasks',
                                        'synthetic_cls_binary', '--cfg-options', *opts])
    assert probe == {k: v for k, v in metrics.items() if k.startswith('synthetic_cls_binary/')}
    probe_files = glob.glob(osp.join(work, '*_linear_probe_results.json'))
    assert len(probe_files) == 1
    log = ''.join(open(p).read() for p in glob.glob(osp.join(work, '*', '*.log')))
    assert re.search(r'synthetic_cls_binary: \d+ image features \(\d+ computed', log)
    assert re.search(r'synthetic_cls_binary: (\d+) image features \(0 computed, \1 from', log)


def test_test_tool_probe_flags(tmp_path, monkeypatch):
    parse = _tool('test').parse_args
    args = parse(['c.py', 'k.pth', '--linear-probe-only'])
    assert args.linear_probe_only and not args.no_linear_probe
    with pytest.raises(SystemExit):
        parse(['c.py', 'k.pth', '--linear-probe-only', '--no-linear-probe'])
    with pytest.raises(SystemExit):
        parse(['c.py', 'k.pth', '--linear-probe-only', '--out', 'x.pkl'])
    # a config without the section: --linear-probe-only is an error naming the section
    ckpt = tmp_path / 'k.pth'
    ckpt.write_bytes(b'')
    with pytest.raises(ValueError, match='no `linear_probe` section'):
        _tool('test').main([osp.join(ROOT, 'configs/demo/clip_demo_p100.py'), str(ckpt),
                            '--linear-probe-only', '--cfg-options', 'linear_probe=None'])


# ------------------------------------------------------------------- (d) fine-tuning
def test_finetune_mode_trains_the_encoder_end_to_end(tmp_path):
    syn = _synthetic(tmp_path, cls_binary_size=24, num_studies=8)
    model = _tiny_clip()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    task = parse_task(dict(name='syn', dataset=dict(syn, split='cls_binary')), PIPE32)
    train = load_subset(task.train[100.0], task, 'train')
    items = [(train.dataset, i) for i in range(len(train.img_paths))]
    clf, sel, info = finetune_classifier(model, items, train.targets, num_classes=2, epochs=5,
                                         max_iters=2, batch_size=4, lr=1e-2,
                                         encoder_lr_mult=1.0)
    assert info['steps'] == 2 and sel.epoch == 1
    tuned = clf.encoder.image_encoder.state_dict()
    original = model.image_encoder.state_dict()
    changed = [k for k in tuned if not torch.equal(tuned[k], original[k])]
    assert changed, 'fine-tuning did not change the image encoder'
    for k, v in model.state_dict().items():  # the evaluated model itself is untouched
        assert torch.equal(v, before[k]), k
    # through the API: finetune keys, and no feature cache is written
    section = dict(tasks=[dict(name='syn', dataset=dict(syn, split='cls_binary'))],
                   pipeline=PIPE32, mode='linear',
                   finetune=dict(epochs=1, max_iters=2, batch_size=8))
    metrics = run_linear_probe(model, section, mode='finetune', work_dir=str(tmp_path / 'w'),
                               show_progress=False)
    assert 'syn/finetune@100/accuracy' in metrics and metrics['syn/finetune@100/steps'] == 2
    assert not osp.exists(tmp_path / 'w' / 'linear_probe_features')


# ------------------------------------------- explicit form: the real-data config's tasks
def _rsna_png_fixture(root, n_per_class=20):
    """RSNA layout with PNG images whose brightness depends on the label."""
    os.makedirs(osp.join(root, 'stage_2_train_images'), exist_ok=True)
    rows = ['patientId,x,y,width,height,Target']
    rng = np.random.default_rng(0)
    for i in range(2 * n_per_class):
        target = i % 2
        pid = f'p{i:03d}'
        rows.append(f'{pid},1,1,4,4,1' if target else f'{pid},,,,,0')
        pixels = rng.integers(0, 100, (16, 16)) + (120 if target else 0)
        Image.fromarray(pixels.astype(np.uint8)).save(
            osp.join(root, 'stage_2_train_images', pid + '.png'))
    with open(osp.join(root, 'stage_2_train_labels.csv'), 'w') as f:
        f.write('\n'.join(rows) + '\n')
    return root


def _replace_strings(obj, old, new):
    if isinstance(obj, str):
        return obj.replace(old, new)
    if isinstance(obj, dict):
        return {k: _replace_strings(v, old, new) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_replace_strings(v, old, new) for v in obj]
    return obj


def test_paper_config_rsna_task_with_split_files_and_fractions(tmp_path):
    rsna = _rsna_png_fixture(str(tmp_path / 'rsna'))
    splits = str(tmp_path / 'splits')
    _tool('build_eval_splits').main(['rsna', '--rsna-root', rsna, '--out-dir', splits,
                                     '--fractions', '10', '100'])
    section = Config.fromfile(osp.join(ROOT, 'configs/clip_vitb_p100.py')).linear_probe
    section = _replace_strings(section.to_dict(), 'data/eval_splits', splits)
    section = _replace_strings(section, 'data/rsna-pneumonia', rsna)
    task = next(t for t in section['tasks'] if t['name'] == 'rsna')
    task['fractions'] = [10, 100]
    task['train']['img_suffix'] = task['val']['img_suffix'] = task['test']['img_suffix'] = '.png'
    section.update(tasks=[task], pipeline=PIPE32, epochs=20, num_workers=0)
    model = PooledPixelEncoder()
    metrics = run_linear_probe(model, section, work_dir=str(tmp_path / 'w'), show_progress=False)
    assert metrics['rsna/linear_probe@100/num_train'] == 28
    assert metrics['rsna/linear_probe@10/num_train'] == 2  # one per class
    assert metrics['rsna/linear_probe@100/accuracy'] == 100.0  # brightness separates them
    assert set(metrics) >= {'rsna/linear_probe@10/accuracy', 'rsna/linear_probe@100/auroc',
                            'rsna/linear_probe@100/val_accuracy'}
    # the cache key changes with the weights, the pipeline and the datasets
    other = _tiny_clip()
    assert model_fingerprint(model) != model_fingerprint(other)
    assert feature_cache_key('a', None, PIPE32, [task]) != feature_cache_key('b', None, PIPE32,
                                                                              [task])
