"""Training guards: NonFiniteGuardHook stops a diverging run with the term, iteration and study
ids; tools/test.py refuses a checkpoint with NaN / inf weights; a CheckpointHook typo fails
before training instead of at the first save.

A toy linear regressor trained with SGD at lr=1e4 and no clipping overflows within a few
iterations: its weights reach inf and then NaN (without the guard the run trains to the end).
"""
import glob
import math
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch.utils.data import Dataset

from lgdea.engine.hooks.non_finite_guard_hook import NonFiniteGuardHook, batch_study_ids
from lgdea.engine.runner import (NonFiniteCheckpointError, check_finite_state_dict,
                                 drop_disabled_default_hooks, first_non_finite_key)
from lgdea.registry import DATASETS, METRICS, MODELS
from tool_loader import load_tool

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


train_tool = load_tool('train')
test_tool = load_tool('test')


@DATASETS.register_module(force=True)
class GuardToyDataset(Dataset):
    """Items ``dict(inputs=[4], data_samples=BaseDataElement(study_id, target))``."""

    def __init__(self, num_samples=16, seed=0, nan_items=()):
        rng = np.random.default_rng(seed)
        self.x = rng.standard_normal((num_samples, 4)).astype(np.float32)
        self.y = (self.x @ np.linspace(-1, 1, 4)).astype(np.float32)
        self.x[list(nan_items)] = np.nan  # a corrupt study: its loss is NaN
        self.metainfo = dict(classes=('y', ))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, idx):
        sample = BaseDataElement(metainfo=dict(study_id=f's{idx}'))
        sample.target = torch.tensor(self.y[idx])
        return dict(inputs=torch.from_numpy(self.x[idx]), data_samples=sample)


@MODELS.register_module(force=True)
class GuardToyRegressor(BaseModel):
    """Linear regressor. ``constant_nan_term``: also return ``loss_nan = NaN`` without a
    gradient, so the total loss is NaN while the update (and the weights) stay finite.
    ``nan_grad_studies``: a batch with one of these studies gets a finite loss whose gradient
    is NaN (``where`` over ``sqrt`` of a negative number: 0 forward, 0 * inf backward)."""

    def __init__(self, constant_nan_term=False, nan_grad_studies=()):
        super().__init__()
        self.fc = nn.Linear(4, 1)
        self.constant_nan_term = constant_nan_term
        self.nan_grad_studies = set(nan_grad_studies)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs) if isinstance(inputs, (list, tuple)) else inputs
        pred = self.fc(x).squeeze(-1)
        if mode == 'loss':
            target = torch.stack([s.target for s in data_samples])
            losses = dict(loss_mse=((pred - target) ** 2).mean())
            if self.nan_grad_studies & {s.study_id for s in data_samples}:
                negative = -1 - self.fc.weight.abs().sum()
                losses['loss_mse'] = losses['loss_mse'] + torch.where(
                    torch.tensor(False), torch.sqrt(negative), torch.zeros(()))
            if self.constant_nan_term:
                losses['loss_nan'] = torch.tensor(float('nan'))
            return losses
        if mode == 'predict':
            return [dict(pred=p) for p in pred]
        return pred


@METRICS.register_module(force=True)
class MeanAbsolutePredictionMetric(BaseMetric):
    """Mean |prediction| (finite only when the evaluated weights are)."""

    def process(self, data_batch, data_samples):
        self.results.extend(abs(float(s['pred'])) for s in data_samples)

    def compute_metrics(self, results):
        return dict(mean_abs_pred=float(np.mean(results)))


def _config(tmp_path, lr=1e4, guard=True, constant_nan_term=False, max_iters=40,
            ckpt_interval=1, nan_items=(), nan_grad_studies=(), optim_wrapper=None):
    default_hooks = dict(
        logger=dict(type='LoggerHook', interval=1),
        checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=ckpt_interval),
        non_finite_guard=dict(type='NonFiniteGuardHook') if guard else None)
    cfg = Config(dict(
        default_scope='lgdea',
        work_dir=str(tmp_path / 'work'),
        model=dict(type='GuardToyRegressor', constant_nan_term=constant_nan_term,
                   nan_grad_studies=list(nan_grad_studies)),
        train_dataloader=dict(
            batch_size=4, num_workers=0, collate_fn=dict(type='pseudo_collate'),
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(type='GuardToyDataset', num_samples=4 * max_iters,  # no restart sleep
                         nan_items=list(nan_items))),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=lr), **(optim_wrapper or {})),
        default_hooks=default_hooks,
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo')),
        randomness=dict(seed=0), log_level='WARNING', experiment_name=f'guard_{tmp_path.name}'))
    path = str(tmp_path / 'guard_toy.py')
    cfg.dump(path)
    return path


def _weights(path):
    return torch.load(path, weights_only=True)['state_dict']


def test_diverging_run_stops_with_iteration_and_study_ids(tmp_path):
    with pytest.raises(RuntimeError) as err:
        train_tool.main([_config(tmp_path)])
    msg = str(err.value)
    assert 'training diverged at iteration' in msg and 'Batch study ids: s' in msg
    assert 'non-finite loss=inf, loss_mse=inf' in msg  # the offending terms are named
    iteration = int(msg.split('iteration ')[1].split(' ')[0])
    assert 1 < iteration < 40
    # no checkpoint of the diverged step (or later) was written; all kept ones are finite
    ckpts = sorted(glob.glob(str(tmp_path / 'work' / 'iter_*.pth')))
    assert len(ckpts) == iteration - 1
    for path in ckpts:
        assert first_non_finite_key(_weights(path)) is None, path


def test_without_the_guard_the_same_run_trains_to_the_end_with_nan_weights(tmp_path):
    """The failure the guard exists for: no error, NaN weights in the last checkpoint."""
    runner = train_tool.main([_config(tmp_path, guard=False, max_iters=20, ckpt_interval=20)])
    assert runner.iter == 20
    assert first_non_finite_key(_weights(str(tmp_path / 'work' / 'iter_20.pth'))) is not None


def test_non_finite_loss_term_is_named_even_when_weights_stay_finite(tmp_path):
    with pytest.raises(RuntimeError, match=r'iteration 1 .*non-finite .*loss_nan=nan') as err:
        train_tool.main([_config(tmp_path, lr=1e-2, constant_nan_term=True)])
    assert 'Batch study ids: s0, s1, s2, s3' in str(err.value)
    assert 'parameters' not in str(err.value)


def test_nan_gradient_with_a_finite_loss_is_caught_on_the_parameters(tmp_path):
    """Iteration 3's batch (s8..s11) has a finite loss and a NaN gradient: only the parameter
    check sees it, at that iteration and before its checkpoint (the loss turns NaN one step
    later, after a checkpoint of NaN weights)."""
    with pytest.raises(RuntimeError, match=r'iteration 3 .*non-finite parameters after the '
                                           r'update: fc\.weight\. Batch') as err:
        train_tool.main([_config(tmp_path, lr=1e-2, nan_grad_studies=['s9'])])
    assert 'Batch study ids: s8, s9, s10, s11' in str(err.value)
    assert 'loss' not in str(err.value).split('diverged at')[1].split('. Batch')[0]
    ckpts = sorted(glob.glob(str(tmp_path / 'work' / 'iter_*.pth')))
    assert [osp.basename(c) for c in ckpts] == ['iter_1.pth', 'iter_2.pth']
    for path in ckpts:
        assert first_non_finite_key(_weights(path)) is None, path


def test_guard_disabled_by_none_and_unsupported_action_rejected():
    cfg = Config(dict(default_hooks=dict(checkpoint=None, non_finite_guard=None,
                                         throughput=dict(type='ThroughputHook'))))
    drop_disabled_default_hooks(cfg)
    # mmengine's own hooks keep None (mmengine removes them); the project's are dropped
    assert cfg.default_hooks == dict(checkpoint=None, throughput=dict(type='ThroughputHook'))
    with pytest.raises(ValueError, match="only 'raise'.*SkipNonFiniteOptimWrapper"):
        NonFiniteGuardHook(action='skip')


def test_default_runtime_carries_the_guard_for_configs_that_replace_custom_hooks():
    for name in ('lgdea_vitb_p5.py', 'demo/lgdea_demo_p5.py', 'clip_vitb_p5.py'):
        cfg = Config.fromfile(osp.join(REPO, 'configs', name))
        assert cfg.default_hooks.non_finite_guard == dict(type='NonFiniteGuardHook'), name


def test_batch_study_ids_reads_images_then_reports_without_repeats():
    def sample(sid):
        return BaseDataElement(metainfo=dict(study_id=sid))
    batch = dict(data_samples=[sample('a'), sample('b')],
                 reports=[sample('b'), sample('c'), BaseDataElement()])
    assert batch_study_ids(batch) == ['a', 'b', 'c']
    assert batch_study_ids([1, 2]) == []


def _trained_with_test_section(tmp_path):
    """A 2-iteration run at a sane lr whose config can also be tested (iter_2.pth)."""
    config = _config(tmp_path, lr=1e-2, max_iters=2)
    cfg = Config.fromfile(config)
    cfg.test_dataloader = cfg.train_dataloader
    cfg.test_evaluator = dict(type='MeanAbsolutePredictionMetric')
    cfg.test_cfg = dict()
    cfg.dump(config)
    train_tool.main([config])
    return config


def test_test_tool_refuses_a_checkpoint_with_nan_weights(tmp_path):
    config = _trained_with_test_section(tmp_path)
    good = str(tmp_path / 'work' / 'iter_2.pth')
    ckpt = torch.load(good, weights_only=True)
    ckpt['state_dict']['fc.bias'][0] = math.inf
    bad = str(tmp_path / 'diverged.pth')
    torch.save(ckpt, bad)
    with pytest.raises(NonFiniteCheckpointError, match=r'diverged\.pth .*`fc\.bias` holds 1'):
        test_tool.main([config, bad, '--work-dir', str(tmp_path / 'test')])
    metrics = test_tool.main([config, good, '--work-dir', str(tmp_path / 'test_good')])
    assert math.isfinite(metrics['mean_abs_pred'])


def test_check_finite_state_dict_skips_integer_entries():
    check_finite_state_dict({'steps': torch.tensor([2 ** 40]), 'w': torch.ones(2)}, 'x.pth')
    with pytest.raises(NonFiniteCheckpointError, match='x.pth'):
        check_finite_state_dict({'w': torch.tensor([1.0, float('nan')])}, 'x.pth')


def test_checkpoint_hook_typo_fails_before_training(tmp_path):
    """``CheckpointHook`` forwards unknown arguments to ``save_checkpoint``: without the check,
    ``intervall`` trains the whole run and fails at the first save."""
    config = _config(tmp_path, lr=1e-2, max_iters=3, ckpt_interval=3)
    with pytest.raises(ValueError, match=r'`intervall` .*did you mean `interval`'):
        train_tool.main([config, '--cfg-options', 'default_hooks.checkpoint.intervall=1'])
    assert not glob.glob(str(tmp_path / 'work' / '*' / 'vis_data' / 'scalars.json'))


# ---------------------------------------------------------------- skip mode (optim wrapper)
_SKIP = dict(type='SkipNonFiniteOptimWrapper', max_skipped_steps=2)


def test_skip_wrapper_skips_a_nan_loss_batch_counts_it_and_trains_to_the_end(tmp_path, capsys):
    """Study s9 (iteration 3, batch s8-s11) has NaN input: its update is skipped (weights of
    iteration 3 = weights of iteration 2), the run finishes with finite weights, and the log
    names the iteration and the study ids. Without the wrapper the guard stops the run there."""
    config = _config(tmp_path, lr=1e-2, max_iters=6, nan_items=[9], optim_wrapper=_SKIP)
    runner = train_tool.main([config])
    assert runner.iter == 6
    assert runner.optim_wrapper.skipped_steps == [(3, 'loss')]
    work = tmp_path / 'work'
    w2, w3, w4 = (_weights(str(work / f'iter_{i}.pth')) for i in (2, 3, 4))
    assert all(torch.equal(w2[k], w3[k]) for k in w2)
    assert not torch.equal(w3['fc.weight'], w4['fc.weight'])  # later steps update again
    assert first_non_finite_key(_weights(str(work / 'iter_6.pth'))) is None
    log = ''.join(open(p).read() for p in glob.glob(str(work / '*' / '*.log')))
    assert ('skipped the update of iteration 3 (non-finite loss=nan, loss_mse=nan; skipped so '
            'far: 1, limit 2). Batch study ids: s8, s9, s10, s11') in log
    assert '1 training step(s) skipped for a non-finite loss or gradient, at iterations 3 (loss)' \
        in log
    with pytest.raises(RuntimeError, match='diverged at iteration 3 .*s9'):
        plain = tmp_path / 'plain_nan_loss'
        plain.mkdir()
        train_tool.main([_config(plain, lr=1e-2, max_iters=6, nan_items=[9])])


def test_skip_wrapper_skips_a_finite_loss_with_nan_gradients(tmp_path):
    """A finite loss with NaN gradients is caught after backward and not applied."""
    config = _config(tmp_path, lr=1e-2, max_iters=4, nan_grad_studies=['s5'],
                     optim_wrapper=_SKIP)
    runner = train_tool.main([config])
    assert runner.optim_wrapper.skipped_steps == [(2, 'grad')]
    work = tmp_path / 'work'
    w1, w2 = (_weights(str(work / f'iter_{i}.pth')) for i in (1, 2))
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert first_non_finite_key(_weights(str(work / 'iter_4.pth'))) is None
    # the plain wrapper applies the NaN update and the guard stops on the NaN weights
    with pytest.raises(RuntimeError, match='iteration 2 .*non-finite parameters after the update'):
        plain = tmp_path / 'plain_nan_grad'
        plain.mkdir()
        train_tool.main([_config(plain, lr=1e-2, max_iters=4, nan_grad_studies=['s5'])])


def test_skip_wrapper_stops_past_its_limit(tmp_path):
    from lgdea.engine.optimizers import TooManySkippedStepsError
    config = _config(tmp_path, lr=1e-2, max_iters=8, nan_items=[1, 5, 9, 13],
                     optim_wrapper=_SKIP)
    with pytest.raises(TooManySkippedStepsError,
                       match=r'3 skipped steps, more than max_skipped_steps=2 .*1 \(loss\), '
                             r'2 \(loss\), 3 \(loss\)'):
        train_tool.main([config])
    # iterations 1-3 skipped: no checkpoint holds a non-finite weight, none after iteration 2
    ckpts = sorted(glob.glob(str(tmp_path / 'work' / 'iter_*.pth')))
    assert [osp.basename(p) for p in ckpts] == ['iter_1.pth', 'iter_2.pth']


def test_skip_wrapper_rejects_accumulation_and_bad_limits():
    from lgdea.engine.optimizers import SkipNonFiniteOptimWrapper
    optimizer = torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    with pytest.raises(ValueError, match='accumulative_counts=2'):
        SkipNonFiniteOptimWrapper(optimizer, accumulative_counts=2)
    with pytest.raises(ValueError, match='max_skipped_steps must be an integer >= 0'):
        SkipNonFiniteOptimWrapper(optimizer, max_skipped_steps=-1)


def test_skip_wrapper_resume_keeps_the_count(tmp_path):
    config = _config(tmp_path, lr=1e-2, max_iters=4, nan_items=[5], optim_wrapper=_SKIP)
    train_tool.main([config])
    runner = train_tool.main([config, '--resume', str(tmp_path / 'work' / 'iter_3.pth'),
                              '--cfg-options', 'train_cfg.max_iters=5',
                              'train_dataloader.dataset.num_samples=20'])
    assert runner.iter == 5
    assert runner.optim_wrapper.skipped_steps == [(2, 'loss')]


def test_test_tool_refuses_a_checkpoint_of_another_model(tmp_path):
    """mmengine loads it with a 'missing keys' warning only: the metrics would be those of
    the untrained model."""
    from lgdea.engine.runner import CheckpointMismatchError
    config = _trained_with_test_section(tmp_path)
    ckpt = torch.load(str(tmp_path / 'work' / 'iter_2.pth'), weights_only=True)
    ckpt['state_dict'] = {'head.fc.weight': ckpt['state_dict']['fc.weight'],
                          'fc.bias': ckpt['state_dict']['fc.bias']}
    other = str(tmp_path / 'other_model.pth')
    torch.save(ckpt, other)
    with pytest.raises(CheckpointMismatchError,
                       match=r'other_model\.pth lacks 1 of the 2 trainable parameters of '
                             r'GuardToyRegressor \(fc\.weight\)'):
        test_tool.main([config, other, '--work-dir', str(tmp_path / 'test')])
    metrics = test_tool.main([config, other, '--work-dir', str(tmp_path / 'test_partial'),
                              '--allow-partial-checkpoint'])
    assert math.isfinite(metrics['mean_abs_pred'])


def test_truncated_checkpoint_error_names_the_file_and_the_others(tmp_path):
    from lgdea.engine.runner.checkpoint import load_from_local
    good = tmp_path / 'iter_1.pth'
    torch.save({'state_dict': {'w': torch.ones(1000)}}, str(good))
    data = good.read_bytes()
    bad = tmp_path / 'iter_2.pth'
    bad.write_bytes(data[:len(data) // 2])
    with pytest.raises(RuntimeError, match=r'iter_2\.pth is unreadable: truncated or corrupt .*'
                                           r'other checkpoints in .*: iter_1\.pth'):
        load_from_local(str(bad))


def test_guard_names_a_non_finite_gradient_norm(tmp_path):
    """With clipping, mmengine logs train/grad_norm: the guard reports it even with the
    parameter check off (a finite loss whose gradient is NaN)."""
    config = _config(tmp_path, lr=1e-2, max_iters=4, nan_grad_studies=['s5'],
                     optim_wrapper=dict(clip_grad=dict(max_norm=1.0)))
    with pytest.raises(RuntimeError, match=r'iteration 2 .*non-finite grad_norm=nan'):
        train_tool.main([config, '--cfg-options',
                         'default_hooks.non_finite_guard.check_params=False'])
