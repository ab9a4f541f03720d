"""Evaluation loops with a tiny mmengine Runner: fake model + in-memory dataset (both
registered here), the whole path dataset -> pipeline -> vl_collate -> VLDataPreprocessor ->
predict -> metrics bound to the model -> results JSON."""
import glob
import json
import os
import uuid

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.dataset import BaseDataset
from mmengine.model import BaseModel
from mmengine.runner import Runner
from PIL import Image

from lgdea.datasets.transforms import corrupt_image_stats, reset_corrupt_images
from lgdea.engine.hooks import CorruptImageReportHook
from lgdea.registry import DATASETS, MODELS

CLASSES = ('a', 'b', 'c')
LEVELS = (40, 120, 200)  # background grey level of each class
BOX = [4, 8, 8, 8]  # x, y, w, h in the 24x36 original


@DATASETS.register_module(force=True)
class LoopToyRecords(BaseDataset):
    """Records given in the config (tests only)."""

    METAINFO = dict(classes=CLASSES, prompts={c: [f'finding {c}'] for c in CLASSES})

    def __init__(self, records, **kwargs):
        self._records = [dict(r) for r in records]
        super().__init__(serialize_data=False, **kwargs)

    def load_data_list(self):
        return [dict(r) for r in self._records]


@MODELS.register_module(force=True)
class LoopFakeVLModel(BaseModel):
    """The inference interface, computed from image statistics (no learning needed):

    - image ``embed``: one-hot of the class whose grey level is nearest the image median;
    - ``patch_embed`` [16, 3]: (mean intensity of each cell of a 4x4 grid, 0, 0);
    - text ``embed``: one-hot of the class named by the last word, else (1, 0, 0).
    """

    def __init__(self):
        super().__init__(data_preprocessor=dict(type='VLDataPreprocessor'))
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, images=None, data_samples=None, reports=None, mode='tensor'):
        if mode == 'loss':
            return dict(loss=(self.scale * images.mean()) ** 2)
        if mode == 'predict':
            feats = self.extract_image(images)
            for i, ds in enumerate(data_samples):
                ds.image_feats = {k: v[i].cpu() if torch.is_tensor(v) else v
                                  for k, v in feats.items()}
            return data_samples
        return self.extract_image(images)

    def extract_image(self, images):
        levels = (torch.tensor(LEVELS, dtype=torch.float32) - 127.5) / 127.5
        med = images.flatten(1).median(dim=1).values
        cls = (med[:, None] - levels[None].to(images.device)).abs().argmin(dim=1)
        cells = F.adaptive_avg_pool2d(images, (4, 4)).flatten(1)  # [B, 16]
        patch = torch.stack([cells, torch.zeros_like(cells), torch.zeros_like(cells)], dim=-1)
        return dict(embed=F.one_hot(cls, 3).float(), patch_embed=patch, grid=(4, 4))

    def extract_text(self, texts, kind='report', evidence=None):
        out = []
        for t in texts:
            last = t.split()[-1]
            out.append(F.one_hot(torch.tensor(CLASSES.index(last)), 3).float()
                       if last in CLASSES else torch.tensor([1.0, 0.0, 0.0]))
        return dict(embed=torch.stack(out).to(self.scale.device))

    def similarity(self, img_feats, txt_feats):
        return img_feats['embed'] @ txt_feats['embed'].t()

    def grounding_map(self, img_feats, txt_feats):
        h, w = img_feats['grid']
        return torch.einsum('bpd,bd->bp', img_feats['patch_embed'], txt_feats['embed']).view(
            -1, h, w)


def _records(root, n=6, whole_box_last=False):
    recs = []
    for i in range(n):
        k = i % 3
        img = np.full((24, 36), LEVELS[k], np.uint8)
        x, y, w, h = BOX
        img[y:y + h, x:x + w] = 255
        path = os.path.join(root, f'img{i}.png')
        Image.fromarray(img).save(path)
        box = [[0, 0, 36, 24]] if (whole_box_last and i == n - 1) else [BOX]
        recs.append(dict(img_path=path, study_id=f's{i}', subject_id=f'p{i}',
                         report=f'report of class {CLASSES[k]}', gt_label=k, phrase='box',
                         boxes=np.array(box, np.float32),
                         category='whole' if (whole_box_last and i == n - 1) else CLASSES[k],
                         ori_shape=(24, 36)))
    return recs


PIPELINE = [dict(type='LoadCXRImage'), dict(type='PadToSquareCXR', size=32),
            dict(type='PackVLInputs')]


def _loader(records, batch_size=4, pipeline=PIPELINE):
    return dict(batch_size=batch_size, num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='vl_collate'),
                dataset=dict(type='LoopToyRecords', records=records, pipeline=pipeline))


CLS_METRICS = [dict(type='ZeroShotAccuracy'), dict(type='RetrievalPrecisionAtK', topk=(1, 2))]
GRD_METRICS = [dict(type='GroundingCNR')]


def _runner(tmp_path, **kw):
    return Runner(model=dict(type='LoopFakeVLModel'), work_dir=str(tmp_path / 'work'),
                  default_scope='lgdea', log_level='WARNING',
                  default_hooks=dict(checkpoint=None),
                  experiment_name=f'vl_loops_{uuid.uuid4().hex[:8]}', **kw)


def _results_json(tmp_path):
    files = glob.glob(str(tmp_path / 'work' / '*_test_results.json'))
    assert len(files) == 1, files
    with open(files[0]) as f:
        return json.load(f)


def _cases_json(tmp_path):
    files = glob.glob(str(tmp_path / 'work' / '*_test_cases.json'))
    assert len(files) == 1, files
    with open(files[0]) as f:
        return json.load(f)


def test_vl_test_loop_binds_model_and_writes_json(tmp_path):
    recs = _records(str(tmp_path), whole_box_last=True)
    runner = _runner(tmp_path, test_dataloader=_loader(recs),
                     test_evaluator=CLS_METRICS + GRD_METRICS, test_cfg=dict(type='VLTestLoop'))
    metrics = runner.test()
    assert metrics['zero_shot/accuracy'] == 100.0
    assert metrics['retrieval/P@1'] == 100.0 and metrics['retrieval/P@2'] == 100.0
    assert metrics['retrieval/num_candidates'] == 6
    assert metrics['grounding/num_pairs'] == 6 and metrics['grounding/num_degenerate'] == 1
    assert metrics['grounding/cnr'] > 1.0 and np.isnan(metrics['grounding/cnr_whole'])
    saved = _results_json(tmp_path)
    assert saved['grounding/cnr_whole'] is None  # NaN -> null
    assert saved['zero_shot/accuracy'] == 100.0
    assert saved['grounding/cnr'] == pytest.approx(metrics['grounding/cnr'])
    assert set(saved) == set(metrics)
    # per-case values next to the results: their (nan)mean is the metric; a degenerate map
    # is a null case
    cases = _cases_json(tmp_path)
    assert cases['zero_shot/accuracy'] == [100.0] * 6
    assert cases['grounding/cnr'].count(None) == 1
    for key, values in cases.items():
        assert np.nanmean(np.array(values, dtype=float)) == pytest.approx(metrics[key]), key


def test_vl_multi_test_loop_prefixes_every_set(tmp_path):
    recs = _records(str(tmp_path))
    runner = _runner(tmp_path, test_dataloader=[_loader(recs, 4), _loader(recs, 5)],
                     test_evaluator=[CLS_METRICS, GRD_METRICS],
                     test_cfg=dict(type='VLMultiTestLoop', prefixes=['cls5', 'grd']))
    metrics = runner.test()
    assert metrics['cls5/zero_shot/accuracy'] == 100.0
    assert metrics['cls5/retrieval/P@1'] == 100.0
    assert metrics['grd/grounding/num_pairs'] == 6 and metrics['grd/grounding/cnr'] > 1.0
    assert not any(k.startswith('grd/zero_shot') for k in metrics)
    saved = _results_json(tmp_path)
    assert saved['grd/grounding/cnr'] == pytest.approx(metrics['grd/grounding/cnr'])
    cases = _cases_json(tmp_path)
    assert set(cases) == {'cls5/zero_shot/accuracy', 'cls5/retrieval/P@1', 'cls5/retrieval/P@2',
                          'cls5/retrieval/Hit@1', 'cls5/retrieval/Hit@2', 'grd/grounding/cnr'}
    for key, values in cases.items():
        assert len(values) == 6
        assert np.nanmean(np.array(values, dtype=float)) == pytest.approx(metrics[key])


def test_vl_multi_val_loop_with_extra_sets(tmp_path):
    recs = _records(str(tmp_path))
    runner = _runner(
        tmp_path, val_dataloader=_loader(recs), val_evaluator=CLS_METRICS,
        val_cfg=dict(type='VLMultiValLoop', extra_dataloaders=[_loader(recs)],
                     extra_evaluators=[GRD_METRICS], prefixes=['cls', 'grd']),
        train_dataloader=_loader(recs), train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.0)))
    metrics = runner.val()
    assert metrics['cls/zero_shot/accuracy'] == 100.0
    assert metrics['grd/grounding/cnr'] > 1.0
    assert not glob.glob(str(tmp_path / 'work' / '*_test_results.json'))
    with pytest.raises(ValueError, match='evaluators'):
        _runner(tmp_path, test_dataloader=_loader(recs), test_evaluator=CLS_METRICS,
                test_cfg=dict(type='VLMultiTestLoop', extra_dataloaders=[_loader(recs)])).test()


def test_corrupt_image_hook_reports_and_resets(tmp_path):
    recs = _records(str(tmp_path), n=4)
    bad = tmp_path / 'corrupt.png'
    bad.write_bytes(b'\x89PNG broken')
    recs[1]['img_path'] = str(bad)
    pipeline = [dict(type='LoadCXRImage', on_error='skip'), dict(type='PadToSquareCXR', size=32),
                dict(type='PackVLInputs')]
    reset_corrupt_images()
    runner = _runner(tmp_path, train_dataloader=_loader(recs, 2, pipeline),
                     train_cfg=dict(by_epoch=True, max_epochs=2),
                     optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
                     custom_hooks=[dict(type='CorruptImageReportHook', max_paths=3)])
    runner.train()
    hook = [h for h in runner.hooks if isinstance(h, CorruptImageReportHook)][0]
    assert hook.last_count == 1  # the bad index is fetched once in the last epoch
    assert hook.last_paths[0]['img_path'] == str(bad)
    assert corrupt_image_stats()[0] == 0  # reset after the report
    assert runner.message_hub.get_scalar('train/num_corrupt_images').current() == 1
