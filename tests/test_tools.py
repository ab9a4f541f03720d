"""tools/train.py, tools/test.py and tools/dist_train.sh on a toy regression task (CPU).

The toy model, dataset, metric and hook below are registered in lgdea's registries; the
configs import this module through ``custom_imports=dict(imports=['test_tools'])`` (pytest puts
``tests/`` on ``sys.path``; the torchrun test exports it in ``PYTHONPATH``).
"""
import copy
import importlib.util
import json
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.dist import get_dist_info, is_distributed
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModel, is_model_wrapper
from torch.utils.data import Dataset

from lgdea.registry import DATASETS, HOOKS, METRICS, MODELS
from utils_dist import find_free_port

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TESTS_DIR = osp.join(REPO, 'tests')


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(f'lgdea_tools_{name}',
                                                  osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_tool = _load_tool('train')
test_tool = _load_tool('test')


# ----------------------------------------------------------------------------- toy components
@DATASETS.register_module(force=True)
class ToyRegressionDataset(Dataset):
    """``y = x @ w + 0.1 * noise`` with fixed ``w``; items ``dict(inputs=[D], targets=[])``."""

    def __init__(self, num_samples=16, in_dim=4, seed=0):
        weights = np.linspace(-1.0, 1.0, in_dim).astype(np.float32)
        rng = np.random.default_rng(seed)
        self.x = rng.standard_normal((num_samples, in_dim)).astype(np.float32)
        self.y = (self.x @ weights + 0.1 * rng.standard_normal(num_samples)).astype(np.float32)
        # numpy content in metainfo ends up in the checkpoint (meta + message hub)
        self.metainfo = dict(classes=('y', ), weights=weights)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, idx):
        return dict(inputs=torch.from_numpy(self.x[idx]), targets=torch.tensor(self.y[idx]))


@MODELS.register_module(force=True)
class ToyRegressor(BaseModel):
    """Linear regressor; loss = mean squared error over the batch (a per-sample mean)."""

    def __init__(self, in_dim=4):
        super().__init__()
        self.fc = nn.Linear(in_dim, 1)

    def forward(self, inputs, targets=None, mode='tensor'):
        pred = self.fc(inputs).squeeze(-1)
        if mode == 'loss':
            return dict(loss=((pred - targets) ** 2).mean())
        if mode == 'predict':
            return [dict(pred=p, target=t) for p, t in zip(pred, targets)]
        return pred


@METRICS.register_module(force=True)
class ToyMSEMetric(BaseMetric):
    """Mean squared error of ``predict`` outputs (a numpy float, as real metrics give)."""

    def process(self, data_batch, data_samples):
        for sample in data_samples:
            self.results.append((float(sample['pred']), float(sample['target'])))

    def compute_metrics(self, results):
        arr = np.asarray(results, dtype=np.float64)
        return dict(mse=np.mean((arr[:, 0] - arr[:, 1]) ** 2))


#: experiment_name -> state seen by ToyRecordHook (in-process runs)
RECORDS = {}


@HOOKS.register_module(force=True)
class ToyRecordHook(Hook):
    """Record the state at ``before_train`` (after any resume) and write it per rank."""

    def before_train(self, runner):
        RECORDS[runner.experiment_name] = dict(
            epoch=runner.epoch, iter=runner.iter,
            optimizer=copy.deepcopy(runner.optim_wrapper.optimizer.state_dict()))

    def after_train(self, runner):
        rank, world_size = get_dist_info()
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        record = dict(rank=rank, world_size=world_size, epoch=runner.epoch, iter=runner.iter,
                      distributed=is_distributed(), wrapper=type(runner.model).__name__,
                      backend=(torch.distributed.get_backend() if is_distributed() else None),
                      params={k: v.tolist() for k, v in model.state_dict().items()})
        with open(osp.join(runner.work_dir, f'record_rank{rank}.json'), 'w') as f:
            json.dump(record, f)


TOY_CONFIG = """
default_scope = 'lgdea'
custom_imports = dict(imports=['test_tools'], allow_failed_imports=False)
model = dict(type='ToyRegressor', in_dim=4)
train_dataloader = dict(
    batch_size=4, num_workers=0, collate_fn=dict(type='default_collate'),
    sampler=dict(type='DefaultSampler', shuffle=True, seed=0),
    dataset=dict(type='ToyRegressionDataset', num_samples=16, seed=0))
val_dataloader = dict(
    batch_size=8, num_workers=0, collate_fn=dict(type='default_collate'),
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ToyRegressionDataset', num_samples=8, seed=1))
val_evaluator = dict(type='ToyMSEMetric')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9))
# explicit `end`: mmengine sets a missing `end` to max_epochs, which resume keeps
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[1, 2], gamma=0.5,
                       begin=0, end=3)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, save_best='mse', rule='less'),
    logger=dict(type='LoggerHook', interval=1))
custom_hooks = [dict(type='ToyRecordHook')]
env_cfg = dict(cudnn_benchmark=False,
               mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
randomness = dict(seed=0)
log_level = 'WARNING'
"""


@pytest.fixture(scope='module')
def toy_config(tmp_path_factory):
    path = tmp_path_factory.mktemp('cfg') / 'toy_regression.py'
    path.write_text(TOY_CONFIG)
    return str(path)


@pytest.fixture(scope='module')
def trained(toy_config, tmp_path_factory):
    """2 epochs of tools/train.py main() into a fresh work dir."""
    work_dir = str(tmp_path_factory.mktemp('train'))
    runner = train_tool.main([toy_config, '--work-dir', work_dir,
                              '--cfg-options', 'experiment_name=toy_first'])
    return runner, work_dir


def _record(name):
    """The ToyRecordHook record of the run started with ``experiment_name=name``."""
    matches = [v for k, v in RECORDS.items() if k.startswith(f'{name}_')]  # + '_<timestamp>'
    assert len(matches) == 1, (name, list(RECORDS))
    return matches[0]


def _params(runner):
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ----------------------------------------------------------------------------- train / resume
def test_train_writes_checkpoints_loadable_with_weights_only(trained):
    runner, work_dir = trained
    assert runner.epoch == 2 and runner.iter == 8  # 16 samples / batch 4 = 4 iters per epoch
    for name in ('epoch_1.pth', 'epoch_2.pth', 'last_checkpoint'):
        assert osp.exists(osp.join(work_dir, name)), name
    assert any(f.startswith('best_mse_epoch_') for f in os.listdir(work_dir))
    ckpt = torch.load(osp.join(work_dir, 'epoch_2.pth'), weights_only=True)
    assert ckpt['meta']['epoch'] == 2 and ckpt['meta']['iter'] == 8
    np.testing.assert_allclose(ckpt['meta']['dataset_meta']['weights'], np.linspace(-1, 1, 4))
    assert isinstance(ckpt['message_hub']['runtime_info']['best_score'], np.floating)


def test_resume_continues_epoch_3_like_an_uninterrupted_run(trained, toy_config, tmp_path):
    first, work_dir = trained
    ckpt = torch.load(osp.join(work_dir, 'epoch_2.pth'), weights_only=True)
    runner = train_tool.main([toy_config, '--work-dir', work_dir, '--resume', '--cfg-options',
                              'train_cfg.max_epochs=3', 'experiment_name=toy_resumed'])
    seen = _record('toy_resumed')
    assert (seen['epoch'], seen['iter']) == (2, 8)  # restored before epoch 3 started
    saved_state = ckpt['optimizer']['state']
    assert saved_state, 'SGD momentum buffers are saved'
    for idx, state in saved_state.items():
        torch.testing.assert_close(seen['optimizer']['state'][idx]['momentum_buffer'],
                                   state['momentum_buffer'])
    assert seen['optimizer']['param_groups'][0]['lr'] == pytest.approx(
        ckpt['optimizer']['param_groups'][0]['lr'])
    assert runner.epoch == 3 and runner.iter == 12
    assert osp.exists(osp.join(work_dir, 'epoch_3.pth'))

    straight = train_tool.main([toy_config, '--work-dir', str(tmp_path / 'straight'),
                                '--cfg-options', 'train_cfg.max_epochs=3',
                                'experiment_name=toy_straight'])
    resumed, uninterrupted = _params(runner), _params(straight)
    for key, value in uninterrupted.items():
        torch.testing.assert_close(resumed[key], value, rtol=1e-6, atol=1e-7)
    assert not torch.allclose(_params(first)['fc.weight'], uninterrupted['fc.weight'])


def test_resume_from_given_checkpoint(trained, toy_config, tmp_path):
    _, work_dir = trained
    runner = train_tool.main([toy_config, '--work-dir', str(tmp_path / 'from_ep1'),
                              '--resume', osp.join(work_dir, 'epoch_1.pth'),
                              '--cfg-options', 'experiment_name=toy_from_ep1'])
    seen = _record('toy_from_ep1')
    assert (seen['epoch'], seen['iter']) == (1, 4)
    assert runner.epoch == 2 and osp.exists(tmp_path / 'from_ep1' / 'epoch_2.pth')


def test_test_tool_loads_checkpoint_and_writes_outputs(trained, toy_config, tmp_path):
    _, work_dir = trained
    ckpt_path = osp.join(work_dir, 'epoch_2.pth')
    metrics_file = str(tmp_path / 'out' / 'metrics.json')
    metrics = test_tool.main([toy_config, ckpt_path, '--work-dir', str(tmp_path / 'test'),
                              '--out', metrics_file, '--out-item', 'metrics',
                              '--cfg-options', 'experiment_name=toy_test'])
    # expected: the checkpoint's regressor on the test set, computed here
    model = ToyRegressor()
    model.load_state_dict(torch.load(ckpt_path, weights_only=True)['state_dict'])
    data = ToyRegressionDataset(num_samples=8, seed=1)
    with torch.no_grad():
        pred = model(torch.from_numpy(data.x)).numpy()
    expected = float(np.mean((pred - data.y) ** 2))
    assert metrics['mse'] == pytest.approx(expected, rel=1e-5)
    with open(metrics_file) as f:
        assert json.load(f)['mse'] == pytest.approx(expected, rel=1e-5)

    preds_file = str(tmp_path / 'preds.pkl')
    test_tool.main([toy_config, ckpt_path, '--work-dir', str(tmp_path / 'test'),
                    '--out', preds_file, '--cfg-options', 'experiment_name=toy_test_pred'])
    with open(preds_file, 'rb') as f:
        dumped = pickle.load(f)
    assert len(dumped) == 8
    np.testing.assert_allclose([float(d['pred']) for d in dumped], pred, rtol=1e-5)


def test_test_tool_errors(toy_config, tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        test_tool.main([toy_config, str(tmp_path / 'missing.pth')])
    ckpt = tmp_path / 'x.pth'
    torch.save(dict(state_dict={}), ckpt)
    with pytest.raises(ValueError, match='.pkl'):
        test_tool.main([toy_config, str(ckpt), '--out', str(tmp_path / 'p.json')])
    with pytest.raises(SystemExit):
        test_tool.parse_args([toy_config, str(ckpt), '--out-item', 'metrics'])


# ----------------------------------------------------------------------------- options
def test_cfg_options_override_a_real_run(toy_config, tmp_path):
    runner = train_tool.main([
        toy_config, '--work-dir', str(tmp_path), '--no-validate', '--cfg-options',
        'train_cfg.max_epochs=1', 'optim_wrapper.optimizer.lr=0.3',
        'param_scheduler.milestones=[5]', 'experiment_name=toy_override'])
    assert runner.epoch == 1 and runner.iter == 4
    assert runner.optim_wrapper.optimizer.param_groups[0]['lr'] == pytest.approx(0.3)
    assert osp.exists(tmp_path / 'epoch_1.pth') and not osp.exists(tmp_path / 'epoch_2.pth')
    assert runner.cfg.val_dataloader is None and runner.cfg.val_evaluator is None


def test_merge_args_mirrors_mmpretrain(tmp_path, monkeypatch):
    cfg_file = tmp_path / 'small_cfg.py'
    cfg_file.write_text(
        "train_dataloader = dict(batch_size=2, num_workers=2, dataset=dict(type='X'))\n"
        "val_dataloader = dict(batch_size=2, dataset=dict(type='X'))\n"
        "optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))\n"
        "auto_scale_lr = dict(base_batch_size=16)\n")
    from mmengine.config import Config

    def merged(*extra):
        args = train_tool.parse_args([str(cfg_file), *extra])
        return train_tool.merge_args(Config.fromfile(str(cfg_file)), args)

    cfg = merged()
    assert cfg.work_dir == osp.join('./work_dirs', 'small_cfg') and cfg.launcher == 'none'
    assert cfg.train_dataloader.collate_fn == dict(type='vl_collate')
    assert cfg.train_dataloader.persistent_workers is True
    assert cfg.val_dataloader.persistent_workers is False  # num_workers 0
    assert 'resume' not in cfg

    cfg = merged('--resume')
    assert cfg.resume is True and cfg.load_from is None
    cfg = merged('--resume', 'some/ckpt.pth', '--no-validate', '--auto-scale-lr',
                 '--no-pin-memory', '--no-persistent-workers', '--launcher', 'pytorch')
    assert cfg.resume is True and cfg.load_from == 'some/ckpt.pth'
    assert cfg.val_dataloader is None and cfg.val_cfg is None and cfg.val_evaluator is None
    assert cfg.auto_scale_lr.enable is True and cfg.launcher == 'pytorch'
    assert not cfg.train_dataloader.pin_memory and not cfg.train_dataloader.persistent_workers
    cfg = merged('--cfg-options', 'train_dataloader.collate_fn.type=default_collate',
                 'optim_wrapper.optimizer.lr=0.01', 'work_dir=elsewhere')
    assert cfg.train_dataloader.collate_fn.type == 'default_collate'
    assert cfg.optim_wrapper.optimizer.lr == 0.01 and cfg.work_dir == 'elsewhere'

    cfg = merged('--amp')   # bf16 autocast, no loss scale, on the GPU or the CPU
    assert cfg.optim_wrapper.type == 'AutocastOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16' and 'loss_scale' not in cfg.optim_wrapper
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.1)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match='float16 needs a CUDA device'):
            merged('--amp', '--amp-dtype', 'float16')
    else:
        cfg = merged('--amp', '--amp-dtype', 'float16')
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        assert (cfg.optim_wrapper.dtype, cfg.optim_wrapper.loss_scale) == ('float16', 'dynamic')
    with pytest.raises(ValueError, match='--amp-dtype only applies with --amp'):
        merged('--amp-dtype', 'bfloat16')
    skip = Config(dict(optim_wrapper=dict(type='SkipNonFiniteOptimWrapper',
                                          optimizer=dict(type='SGD', lr=0.1))))
    with pytest.raises(ValueError, match='--amp only converts'):
        train_tool.convert_to_amp(skip)

    cfg_file.write_text("optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))\n")
    with pytest.raises(ValueError, match='base_batch_size'):
        merged('--auto-scale-lr')

    monkeypatch.delenv('LOCAL_RANK', raising=False)
    train_tool.parse_args([str(cfg_file), '--local-rank', '3'])
    assert os.environ['LOCAL_RANK'] == '3'


def test_train_amp_runs_a_bf16_epoch_on_the_cpu(toy_config, tmp_path):
    """``--amp`` is bf16 autocast through AutocastOptimWrapper, also on a CPU-only machine."""
    from lgdea.engine.optimizers import AutocastOptimWrapper
    runner = train_tool.main([toy_config, '--amp', '--work-dir', str(tmp_path), '--no-validate',
                              '--cfg-options', 'train_cfg.max_epochs=1',
                              'experiment_name=toy_amp'])
    assert runner.iter == 4 and isinstance(runner.optim_wrapper, AutocastOptimWrapper)
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    with runner.optim_wrapper.optim_context(model):
        assert model(torch.randn(2, 4)).dtype == torch.bfloat16
    assert all(torch.isfinite(p).all() and p.dtype == torch.float32
               for p in model.parameters())


def test_unknown_type_names_the_registry(toy_config, tmp_path):
    with pytest.raises(KeyError, match='NoSuchRegressor is not in the lgdea::model registry'):
        train_tool.main([toy_config, '--work-dir', str(tmp_path), '--cfg-options',
                         'model.type=NoSuchRegressor', 'experiment_name=toy_bad'])


def test_runner_type_builds_through_runners_registry(toy_config, tmp_path):
    runner = train_tool.main([toy_config, '--work-dir', str(tmp_path), '--no-validate',
                              '--cfg-options', 'runner_type=FlexibleRunner',
                              'train_cfg.max_epochs=1', 'experiment_name=toy_flexible'])
    assert type(runner).__name__ == 'FlexibleRunner'
    assert runner.epoch == 1 and osp.exists(tmp_path / 'epoch_1.pth')


# ----------------------------------------------------------------------------- distributed
@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU (gloo) path')
def test_dist_train_sh_two_cpu_processes(toy_config, tmp_path):
    work_dir = tmp_path / 'ddp'
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(find_free_port()),
               OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([REPO, TESTS_DIR, os.environ.get('PYTHONPATH', '')]))
    env.pop('MASTER_PORT', None)
    proc = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), toy_config, '2',
         '--work-dir', str(work_dir), '--no-validate',
         '--cfg-options', 'train_cfg.max_epochs=1', 'env_cfg.dist_cfg.timeout=60'],
        env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = []
    for rank in range(2):
        with open(work_dir / f'record_rank{rank}.json') as f:
            records.append(json.load(f))
    for rank, record in enumerate(records):
        assert record['rank'] == rank and record['world_size'] == 2 and record['distributed']
        assert record['backend'] == 'gloo' and record['wrapper'] == 'CPUDistributedDataParallel'
        assert record['epoch'] == 1 and record['iter'] == 2  # 16 samples / (2 ranks x 4)
    assert records[0]['params'] == records[1]['params']  # DDP kept the replicas equal
    assert osp.exists(work_dir / 'epoch_1.pth')
