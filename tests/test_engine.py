"""Engine fixes: weights_only checkpoint loading, CPU DDP wrapper, runner env set-up, DDP parity."""
import collections
import io
import pickle
import subprocess

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from mmengine.registry import FUNCTIONS as ROOT_FUNCTIONS
from mmengine.registry import MODEL_WRAPPERS as ROOT_MODEL_WRAPPERS
from mmengine.runner import CheckpointLoader

import lgdea.engine  # noqa: F401  (activates the checkpoint safe globals)
from lgdea.datasets.collate import vl_collate
from lgdea.engine.runner import (CPU_MODEL_WRAPPER, CPUDistributedDataParallel,
                                 register_checkpoint_safe_globals,
                                 resolve_collate_fn_scopes, set_dataloader_defaults,
                                 setup_runner_env, teardown_runner_env)
from lgdea.registry import FUNCTIONS
from utils_dist import find_free_port, run_distributed


# ----------------------------------------------------------------------------- checkpoints
def _roundtrip(obj, **load_kwargs):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True, **load_kwargs)


def test_mmengine_checkpoint_content_loads_with_weights_only():
    buffer = HistoryBuffer()
    for v in (1.0, 2.0, 4.0):
        buffer.update(v)
    ckpt = dict(
        message_hub=dict(log_scalars={'train/loss': buffer},
                         runtime_info=dict(best_score=np.float64(0.25), epoch=2,
                                           dataset_meta=dict(classes=('a', 'b'),
                                                             palette=np.arange(6).reshape(3, 2),
                                                             flags=np.array([True, False]),
                                                             names=np.array(['x', 'yy']),
                                                             extra=ConfigDict(k=dict(v=[1, 2])))),
                         resumed_keys={'train/loss': True}),
        param_schedulers=[dict(milestones=collections.Counter([1, 2]), last_step=3)],
        state_dict=collections.OrderedDict(w=torch.ones(2)))
    saved = torch.serialization.get_safe_globals()
    try:  # without lgdea's registration, torch >= 2.6 refuses the file
        torch.serialization.clear_safe_globals()
        with pytest.raises(pickle.UnpicklingError):
            _roundtrip(ckpt)
    finally:
        torch.serialization.add_safe_globals(saved)
    register_checkpoint_safe_globals()
    out = _roundtrip(ckpt)
    restored = out['message_hub']['log_scalars']['train/loss']
    assert isinstance(restored, HistoryBuffer)
    assert restored.mean() == pytest.approx(7 / 3) and restored.current() == 4.0
    info = out['message_hub']['runtime_info']
    assert isinstance(info['best_score'], np.float64) and info['best_score'] == 0.25
    np.testing.assert_array_equal(info['dataset_meta']['palette'], np.arange(6).reshape(3, 2))
    assert info['dataset_meta']['names'].tolist() == ['x', 'yy']
    assert isinstance(info['dataset_meta']['extra'], ConfigDict)
    assert info['dataset_meta']['extra'].k.v == [1, 2]
    assert out['param_schedulers'][0]['milestones'] == collections.Counter([1, 2])


class _GetattrOnNumpy:
    def __reduce__(self):
        return (getattr, (np.ndarray, 'tofile'))


class _GetattrDunder:
    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


class _RunsProgram:
    def __reduce__(self):
        return (subprocess.call, (['true'], ))


@pytest.mark.parametrize('evil', [_GetattrOnNumpy(), _GetattrDunder(), _RunsProgram()])
def test_weights_only_still_rejects_code(evil):
    with pytest.raises(pickle.UnpicklingError):
        _roundtrip(dict(meta=evil))


class _Unlisted:
    def __init__(self):
        self.value = 3


def test_local_loader_names_file_and_fix(tmp_path):
    path = tmp_path / 'odd.pth'
    torch.save(dict(meta=_Unlisted()), path)
    with pytest.raises(pickle.UnpicklingError, match='odd.pth.*add_safe_globals'):
        CheckpointLoader.load_checkpoint(str(path))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'missing.pth'))
    good = tmp_path / 'good.pth'
    torch.save(dict(meta=dict(epoch=1, hub=HistoryBuffer([1.0], [1])), state_dict={}), good)
    assert CheckpointLoader.load_checkpoint(str(good))['meta']['epoch'] == 1


# ----------------------------------------------------------------------------- config set-up
@FUNCTIONS.register_module(force=True)
def _lgdea_only_test_collate(batch):
    """A collate function registered in lgdea's FUNCTIONS only."""
    return batch


def test_collate_defaults_and_scopes():
    cfg = Config(dict(
        train_dataloader=dict(batch_size=2, num_workers=0, dataset=dict(type='X')),
        val_dataloader=dict(batch_size=2, num_workers=2, pin_memory=True,
                            collate_fn=dict(type='default_collate'), dataset=dict(type='X')),
        test_dataloader=None))
    set_dataloader_defaults(cfg)
    assert cfg.train_dataloader.collate_fn == dict(type='vl_collate')
    assert cfg.train_dataloader.persistent_workers is False  # num_workers == 0
    assert cfg.train_dataloader.pin_memory == torch.cuda.is_available()
    assert cfg.val_dataloader.persistent_workers is True and cfg.val_dataloader.pin_memory
    assert cfg.test_dataloader is None
    cfg.test_dataloader = dict(collate_fn=dict(type='_lgdea_only_test_collate'))
    resolve_collate_fn_scopes(cfg)
    # Runner.build_dataloader looks the name up in mmengine's *root* FUNCTIONS registry
    assert ROOT_FUNCTIONS.get(cfg.train_dataloader.collate_fn.type) is vl_collate
    assert cfg.test_dataloader.collate_fn.type == 'lgdea._lgdea_only_test_collate'
    assert ROOT_FUNCTIONS.get(cfg.test_dataloader.collate_fn.type) is _lgdea_only_test_collate
    assert cfg.val_dataloader.collate_fn.type == 'default_collate'

    set_dataloader_defaults(cfg, no_pin_memory=True, no_persistent_workers=True)
    assert not cfg.val_dataloader.pin_memory and not cfg.val_dataloader.persistent_workers

    bad = Config(dict(val_dataloader=dict(collate_fn=dict(type='no_such_collate'))))
    with pytest.raises(KeyError, match='val_dataloader.collate_fn.*no_such_collate'):
        resolve_collate_fn_scopes(bad)


def test_cpu_wrapper_is_reachable_from_mmengine_root_registry():
    # Runner.wrap_model calls mmengine's root MODEL_WRAPPERS.get(type)
    assert ROOT_MODEL_WRAPPERS.get(CPU_MODEL_WRAPPER) is CPUDistributedDataParallel


# ----------------------------------------------------------------------------- toy models
class ParityMLP(BaseModel):
    """6 -> 8 -> 1 regressor; the loss is a per-sample mean, so DDP's average is exact."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.fc2 = nn.Linear(8, 1)

    def forward(self, inputs, targets=None, mode='tensor'):
        pred = self.fc2(torch.tanh(self.fc1(inputs))).squeeze(-1)
        if mode == 'loss':
            return dict(loss=((pred - targets) ** 2).mean())
        return pred


def _fixed_batch(n=8):
    gen = torch.Generator().manual_seed(123)
    x = torch.randn(n, 6, generator=gen)
    return x, torch.randn(n, generator=gen) + x[:, 0]


def _initial_state():
    torch.manual_seed(7)
    return ParityMLP().state_dict()


def _sgd_step(model, inputs, targets, lr=0.5):
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9))
    log = model.train_step(dict(inputs=inputs, targets=targets), wrapper)
    state = getattr(model, 'module', model).state_dict()
    return {k: v.detach().clone() for k, v in state.items()}, log['loss']


def test_cpu_ddp_drops_device_ids_single_process():
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{find_free_port()}',
                            rank=0, world_size=1)
    try:
        model = ParityMLP()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        wrapped = CPUDistributedDataParallel(module=model, device_ids=[0], output_device=0,
                                             broadcast_buffers=False)
        assert wrapped.device_ids is None and wrapped.module is model
        x, y = _fixed_batch()
        params, loss = _sgd_step(wrapped, x, y)
        assert torch.isfinite(loss)
        assert all(not torch.equal(before[k], params[k]) for k in before)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU (no CUDA) path')
def test_setup_runner_env_keeps_a_group_it_did_not_create():
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{find_free_port()}',
                            rank=0, world_size=1)
    try:
        cfg = Config(dict(launcher='pytorch', model_wrapper_cfg=dict(
            type='MMDistributedDataParallel', broadcast_buffers=True)))
        setup_runner_env(cfg)
        assert cfg.env_cfg.dist_cfg.backend == 'gloo'
        assert cfg.model_wrapper_cfg == dict(type=CPU_MODEL_WRAPPER, broadcast_buffers=True)
        teardown_runner_env()
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()


def _ddp_half_batch_step(rank, world_size, state, inputs, targets):
    """One SGD step of CPUDistributedDataParallel on this rank's half of the global batch."""
    torch.manual_seed(1000 + rank)  # different seeds: only the broadcast/averaging may align
    model = ParityMLP()
    model.load_state_dict(state)
    ddp = CPUDistributedDataParallel(module=model, device_ids=[rank], broadcast_buffers=False)
    per_rank = inputs.shape[0] // world_size
    part = slice(rank * per_rank, (rank + 1) * per_rank)
    params, loss = _sgd_step(ddp, inputs[part], targets[part])
    return dict(params=params, loss=loss, backend=dist.get_backend(),
                world_size=dist.get_world_size())


def test_ddp_two_process_gloo_matches_single_process():
    state = _initial_state()
    x, y = _fixed_batch(8)
    results = run_distributed(_ddp_half_batch_step, world_size=2, args=(state, x, y))

    ref = ParityMLP()
    ref.load_state_dict(state)
    ref_params, _ = _sgd_step(ref, x, y)
    half = ParityMLP()
    half.load_state_dict(state)
    half_params, _ = _sgd_step(half, x[:4], y[:4])

    for res in results:
        assert res['backend'] == 'gloo' and res['world_size'] == 2
        for name, value in ref_params.items():
            torch.testing.assert_close(res['params'][name], value, rtol=1e-5, atol=1e-6)
    # the check can fail: without the all-reduce, rank 0 would end at its half-batch step
    assert any(not torch.allclose(half_params[k], ref_params[k], atol=1e-4) for k in ref_params)
    assert any(not torch.allclose(state[k], ref_params[k], atol=1e-4) for k in ref_params)


def _setup_env_on_rank(rank, world_size):
    """setup_runner_env with torchrun's variables only (no group yet), as tools/train.py does."""
    assert not dist.is_initialized()
    cfg = Config(dict(launcher='pytorch',
                      env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=30)),
                      model_wrapper_cfg=dict(find_unused_parameters=True)))
    setup_runner_env(cfg)
    total = torch.tensor([float(rank + 1)])
    dist.all_reduce(total)
    flex = Config(dict(launcher='pytorch', runner_type='FlexibleRunner', strategy=None))
    setup_runner_env(flex)  # group exists now: only the strategy is adapted
    info = dict(backend=dist.get_backend(), world_size=dist.get_world_size(),
                rank=dist.get_rank(), total=total.item(),
                cfg_backend=cfg.env_cfg.dist_cfg.backend,
                wrapper=cfg.model_wrapper_cfg.to_dict(),
                flex_strategy=flex.strategy.to_dict())
    teardown_runner_env()
    info['destroyed'] = not dist.is_initialized()
    return info


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU (no CUDA) path')
def test_setup_runner_env_initialises_gloo_and_cpu_wrapper():
    results = run_distributed(_setup_env_on_rank, world_size=2, init_process_group=False)
    for rank, info in enumerate(results):
        assert info['rank'] == rank and info['world_size'] == 2
        assert info['backend'] == 'gloo' and info['cfg_backend'] == 'gloo'
        assert info['total'] == 3.0
        assert info['wrapper'] == dict(find_unused_parameters=True, type=CPU_MODEL_WRAPPER)
        assert info['flex_strategy'] == dict(
            type='DDPStrategy', model_wrapper=dict(type=CPU_MODEL_WRAPPER,
                                                   broadcast_buffers=False))
        assert info['destroyed']


def test_setup_runner_env_missing_launcher_variables(monkeypatch):
    for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    if torch.cuda.is_available():
        pytest.skip('the CPU path is taken only without CUDA')
    cfg = Config(dict(launcher='pytorch'))
    with pytest.raises(RuntimeError, match=r"RANK.*torchrun"):
        setup_runner_env(cfg)
    assert not dist.is_initialized()
    teardown_runner_env()
