"""The paper configs on a tiny fixture in the MIMIC-CXR-JPG layout (sizes via overrides)."""
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config, ConfigDict

from conftest import tiny_bert, tiny_tokenizer, tiny_vit
from test_datasets_mimic_cxr import make_mimic_fixture

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
FINDINGS = ['There is a small left pleural effusion.', 'Mild cardiomegaly.',
            'Right lower lobe consolidation.', 'Lungs are clear. No pneumothorax.',
            'Bibasilar atelectasis.', 'Mild pulmonary edema.']


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, 'tools', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _studies(n=24):
    out = []
    for i in range(n):
        report = f' FINDINGS: {FINDINGS[i % 6]}\n \n IMPRESSION: {FINDINGS[(i + 1) % 6]}\n'
        out.append((f'1{i:07d}', f'5{i:07d}', 'train', [(f'd{i}a', 'PA'), (f'd{i}b', 'LATERAL')],
                    report, {}))
    return out


def _tiny(cfg: Config, root: str, work_dir: str) -> Config:
    cfg.model.image_encoder = ConfigDict(tiny_vit())
    cfg.model.text_encoder = ConfigDict(tiny_bert())
    cfg.merge_from_dict({
        'model.tokenizer': tiny_tokenizer(),
        'model.data_preprocessor.channels': 1,
        'model.embed_dims': 16,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.pair_ratio': 0.25,
        'train_dataloader.dataset.dataset.data_root': root,
        'train_dataloader.dataset.dataset.exclude_subjects_file': None,
        'train_dataloader.dataset.evidence.cache_dir': osp.join(work_dir, 'evidence'),
        'train_dataloader.dataset.pipeline': [dict(type='LoadCXRImage'),
                                              dict(type='ResizeCXR', scale=(36, 36)),
                                              dict(type='RandomCropCXR', size=32),
                                              dict(type='PackVLInputs')],
        'work_dir': work_dir,
    })
    for key in ('val_dataloader', 'val_evaluator', 'val_cfg', 'test_dataloader',
                'test_evaluator', 'test_cfg'):
        cfg[key] = None
    return cfg


def _tiny_lgdea(tmp_path, max_epochs: int) -> Config:
    """configs/lgdea_vitb_p5.py shrunk to the MIMIC-layout fixture under ``tmp_path``."""
    root = make_mimic_fixture(tmp_path / 'mimic', studies=_studies(), image_size=(40, 40))
    cfg = Config.fromfile(osp.join(ROOT, 'configs/lgdea_vitb_p5.py'))
    cfg = _tiny(cfg, root, str(tmp_path / 'work'))
    cfg.merge_from_dict({'model.neck.num_queries': 4, 'model.neck.num_heads': 2,
                         'model.head.num_prototypes': 8, 'train_cfg.max_epochs': max_epochs,
                         # the loader is built before the phase hook sets its batch: a batch of
                         # 64 is larger than this fixture's pools and is refused at build time
                         'train_dataloader.batch_size': 8})
    return cfg


def test_lgdea_paper_config_trains_on_mimic_layout(tmp_path):
    cfg = _tiny_lgdea(tmp_path, max_epochs=3)
    cfg.custom_hooks[1]['phases'] = [
        dict(epochs=1, batch_size=8, lr=1e-3, terms=['rec', 'align'], propagation=False),
        dict(epochs=1, batch_size=4, lr=1e-3, terms=['rec', 'p', 'u', 'align'],
             propagation=False),
        dict(epochs=1, batch_size=4, lr=1e-3, terms=['rec', 'p', 'u', 'align'],
             propagation=True)]
    path = str(tmp_path / 'cfg.py')
    cfg.dump(path)
    runner = _tool('train').main([path])
    assert runner.epoch == 3
    split = Config.fromfile(path)  # noqa: F841 (the dumped config is loadable)
    assert osp.isfile(osp.join(str(tmp_path / 'work'), 'pairing_split.json'))
    assert osp.isfile(osp.join(str(tmp_path / 'work'), 'epoch_3.pth'))
    # resume continues in the last phase
    import torch
    ckpt = torch.load(osp.join(str(tmp_path / 'work'), 'epoch_3.pth'), map_location='cpu',
                      weights_only=True)
    assert ckpt['meta']['lgdea_phase']['phase'] == 3


def test_paper_configs_stop_without_starting_weights():
    from lgdea.registry import MODELS
    for name in ('configs/lgdea_vitb_p5.py', 'configs/clip_vitb_p100.py'):
        cfg = Config.fromfile(osp.join(ROOT, name))
        with pytest.raises(FileNotFoundError, match='checkpoint|Text encoder path'):
            MODELS.build(cfg.model)


def test_every_demo_method_builds_the_identical_encoders():
    """CLIP, CLIP on evidence, LGDEA and MGCA demo runs inherit one encoder definition."""
    from mmengine import Config

    from lgdea.registry import MODELS
    root = osp.join(osp.dirname(__file__), '..')
    paths = ['configs/demo/clip_demo_p5.py', 'configs/demo/clip_evidence_demo_p5.py',
             'configs/demo/lgdea_demo_p5.py', 'projects/mgca/configs/mgca_demo_p5.py']
    cfgs = [Config.fromfile(osp.join(root, p)) for p in paths]
    images = [c.model.image_encoder.to_dict() for c in cfgs]
    assert all(img == images[0] for img in images), paths
    texts = [{k: v for k, v in c.model.text_encoder.items() if k != 'attn_implementation'}
             for c in cfgs]                       # MGCA needs eager attention for word weights
    assert all(t == texts[0] for t in texts)
    states = []
    for cfg in cfgs:
        torch.manual_seed(0)
        states.append(MODELS.build(cfg.model.image_encoder).state_dict())
    for state in states[1:]:
        assert state.keys() == states[0].keys()
        assert all(torch.equal(state[k], states[0][k]) for k in state)
    for p in ('configs/lgdea_vitb_p5.py', 'configs/clip_vitb_p5.py'):
        cfg = Config.fromfile(osp.join(root, p))
        assert cfg.model.image_encoder.backbone.arch == 'b'
        assert cfg.model.image_encoder.checkpoint == cfg.vit_checkpoint
        assert cfg.model.text_encoder.name_or_path == cfg.text_model_path


def test_a_phase_batch_larger_than_the_pools_fails_before_training(tmp_path):
    """Without the check, phase 1 trains (epoch_1.pth written) and the run fails only when
    phase 2 rebuilds its loader."""
    cfg = _tiny_lgdea(tmp_path, max_epochs=2)
    cfg.custom_hooks[1]['phases'] = [
        dict(epochs=1, batch_size=8, lr=1e-3, terms=['rec', 'align'], propagation=False),
        dict(epochs=1, batch_size=64, lr=1e-3, terms=['rec', 'p', 'u', 'align'],
             propagation=True)]
    path = str(tmp_path / 'cfg.py')
    cfg.dump(path)
    with pytest.raises(ValueError, match=r'phase 2 of 2 \(batch_size=64\) cannot run: '
                                         r'PropagationSampler: .*the largest batch_size is'):
        _tool('train').main([path])
    assert not osp.isfile(osp.join(str(tmp_path / 'work'), 'epoch_1.pth'))


def test_demo_benchmark_runs_share_one_image_encoder():
    """Every run of the default demo benchmark (CLIP, GLoRIA, MGCA, LGDEA, ...) trains the
    same image backbone, the shared demo ViT of configs/_base_/models/encoders_demo.py; the
    one exception is the extra GLoRIA-R18 row, labelled as on another image encoder."""
    spec = Config.fromfile(osp.join(ROOT, 'configs/benchmark/demo_synthetic.py'))
    shared = Config.fromfile(osp.join(ROOT, 'configs/_base_/models/encoders_demo.py'))
    want = shared.demo_image_encoder.backbone.to_dict()
    names = set()
    for run in spec.runs:
        cfg = Config.fromfile(osp.join(ROOT, run['config']))
        backbone = cfg.model.image_encoder.backbone.to_dict()  # CXR- or GLoRIAImageEncoder
        if run['name'] == 'GLoRIA-R18':
            assert backbone != want and 'other image encoder' in run['label']
            continue
        assert backbone == want, run['config']
        names.add(run['name'])
    assert {'CLIP', 'GLoRIA', 'MGCA', 'LGDEA'} <= names
