"""The strategy pieces of ``configs/_base_/strategies/`` (FSDP, DeepSpeed ZeRO-2 / ZeRO-3).

* Every piece, added to the ``_base_`` of the LGDEA, CLIP, GLoRIA and MGCA demo configs,
  loads, and its strategy, model wrapper, wrap policy and optimizer wrapper resolve in
  mmengine's registries; the DeepSpeed pieces hold the ZeRO stage and bf16 settings that
  docs/get_started.md states, and the method's ``optim_wrapper`` converts to
  ``DeepSpeedOptimWrapper`` (``clip_grad`` -> ``gradient_clipping``).
* FSDP on gloo, 2 processes, through ``FlexibleRunner`` as ``tools/train.py`` builds it: two
  training iterations of each method log the losses of the same run under DDP (same initial
  weights, same per-rank data), and the checkpoint (one file, full weights) holds the DDP run's
  parameters. LGDEA and CLIP run by default; GLoRIA and MGCA (another ~10 s each) are marked
  slow. Measured (2026-12-07, 2 shared CPU cores): every logged loss of both iterations equal
  to float32 print precision, gradient norms within 1.5e-7 relative.
  Gradient clipping is active (``max_norm`` below the gradient norm), so the second iteration
  also checks that FSDP clips the norm of the whole model, not of each rank's shard.
  Tolerance: relative 1e-5 on the losses, 1e-5 / 1e-6 on the parameters (float32 summation
  order: reduce-scatter vs all-reduce).
* DeepSpeed needs CUDA and the ``deepspeed`` package: without them ``tools/train.py`` stops
  with a message saying so (checked), and the training step is skipped with that reason.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import FUNCTIONS as ROOT_FUNCTIONS
from mmengine.registry import MODEL_WRAPPERS as ROOT_MODEL_WRAPPERS
from mmengine.registry import OPTIM_WRAPPERS as ROOT_OPTIM_WRAPPERS
from mmengine.registry import STRATEGIES

from lgdea.engine.runner import build_runner, prepare_strategy_cfg, setup_runner_env
from lgdea.engine.runner.strategies import (FSDP_MODEL_WRAPPER, FSDP_OPTIM_WRAPPER,
                                            _adapt_deepspeed_optim_wrapper)
from lgdea.registry import FUNCTIONS
from lgdea.utils import register_all_modules

from utils_dist import run_distributed

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
STRATEGY_DIR = osp.join(ROOT, 'configs', '_base_', 'strategies')
METHOD_CONFIGS = {
    'lgdea': 'configs/demo/lgdea_demo_p5.py',
    'clip': 'configs/demo/clip_demo_p5.py',
    'gloria': 'projects/gloria/configs/gloria_demo_p5.py',
    'mgca': 'projects/mgca/configs/mgca_demo_p5.py',
}
ITERS = 2
MAX_NORM = 0.05  # below the gradient norm of every method at iteration 1: clipping is active


def _with_strategy(tmp_path, method, piece):
    cfg_file = tmp_path / f'{method}_{piece}.py'
    cfg_file.write_text(f'_base_ = [{osp.join(ROOT, METHOD_CONFIGS[method])!r}, '
                        f'{osp.join(STRATEGY_DIR, piece + ".py")!r}]\n')
    return Config.fromfile(str(cfg_file))


# ----------------------------------------------------------------------------- configs
@pytest.mark.parametrize('method', sorted(METHOD_CONFIGS))
def test_fsdp_piece_builds_for_every_method(method, tmp_path):
    cfg = _with_strategy(tmp_path, method, 'fsdp')
    method_wrapper = Config.fromfile(osp.join(ROOT, METHOD_CONFIGS[method])).optim_wrapper
    assert cfg.strategy.type == 'FSDPStrategy' and cfg.strategy.state_dict_cfg == 'full'
    cfg.launcher = 'pytorch'
    prepare_strategy_cfg(cfg)
    assert cfg.optim_wrapper.type == FSDP_OPTIM_WRAPPER
    assert cfg.optim_wrapper.optimizer == method_wrapper.optimizer
    assert cfg.optim_wrapper.get('clip_grad') == method_wrapper.get('clip_grad')
    assert ROOT_OPTIM_WRAPPERS.get(cfg.optim_wrapper.type).__name__ == 'FSDPOptimWrapper'
    assert STRATEGIES.get(cfg.strategy.type).__name__ == 'FSDPStrategy'
    assert cfg.strategy.model_wrapper.type == FSDP_MODEL_WRAPPER
    assert ROOT_MODEL_WRAPPERS.get(FSDP_MODEL_WRAPPER).__name__ == 'VLFullyShardedDataParallel'
    with ROOT_FUNCTIONS.switch_scope_and_registry(None):
        policy = ROOT_FUNCTIONS.get(cfg.strategy.model_wrapper.auto_wrap_policy.type)
    assert policy.__name__ == 'transformer_block_wrap_policy'


@pytest.mark.parametrize('stage', [2, 3])
@pytest.mark.parametrize('method', sorted(METHOD_CONFIGS))
def test_deepspeed_pieces_build_for_every_method(method, stage, tmp_path):
    cfg = _with_strategy(tmp_path, method, f'deepspeed_zero{stage}')
    strategy = cfg.strategy
    assert strategy.type == 'DeepSpeedStrategy'
    assert strategy.zero_optimization.stage == stage
    assert strategy.bf16 == dict(enabled=True) and strategy.get('fp16') is None
    assert strategy.inputs_to_half == ['images']
    if stage == 3:
        assert strategy.zero_optimization.stage3_gather_16bit_weights_on_model_save
    assert STRATEGIES.get(strategy.type).__name__ == 'DeepSpeedStrategy'

    method_wrapper = Config.fromfile(osp.join(ROOT, METHOD_CONFIGS[method])).optim_wrapper
    _adapt_deepspeed_optim_wrapper(cfg)
    assert cfg.optim_wrapper == ConfigDict(type='DeepSpeedOptimWrapper',
                                           optimizer=method_wrapper.optimizer)
    assert ROOT_OPTIM_WRAPPERS.get('DeepSpeedOptimWrapper').__name__ == 'DeepSpeedOptimWrapper'
    if method_wrapper.get('clip_grad'):
        assert strategy.gradient_clipping == method_wrapper.clip_grad.max_norm
    else:
        assert 'gradient_clipping' not in strategy
    # the converted wrapper builds around the method's optimizer (the engine itself needs CUDA)
    from mmengine.optim import build_optim_wrapper
    wrapper = build_optim_wrapper(torch.nn.Linear(2, 2), cfg.optim_wrapper.to_dict())
    assert type(wrapper).__name__ == 'DeepSpeedOptimWrapper'
    assert type(wrapper.optimizer).__name__ == method_wrapper.optimizer.type


def test_deepspeed_conversion_refuses_what_it_cannot_carry():
    cfg = Config(dict(strategy=dict(type='DeepSpeedStrategy'), optim_wrapper=dict(
        optimizer=dict(type='SGD', lr=0.1), clip_grad=dict(type='value', clip_value=1.0))))
    with pytest.raises(ValueError, match='clip_grad.*L2 norm'):
        _adapt_deepspeed_optim_wrapper(cfg)
    cfg = Config(dict(strategy=dict(type='DeepSpeedStrategy'), optim_wrapper=dict(
        optimizer=dict(type='SGD', lr=0.1), accumulative_counts=4)))
    _adapt_deepspeed_optim_wrapper(cfg)
    assert cfg.strategy.gradient_accumulation_steps == 4
    assert cfg.optim_wrapper == dict(type='DeepSpeedOptimWrapper',
                                     optimizer=dict(type='SGD', lr=0.1))


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message without CUDA')
def test_deepspeed_without_cuda_fails_with_a_clear_message(tmp_path):
    cfg = _with_strategy(tmp_path, 'clip', 'deepspeed_zero2')
    cfg.launcher = 'pytorch'
    with pytest.raises(RuntimeError, match='DeepSpeedStrategy.*needs CUDA GPUs.*FSDP'):
        setup_runner_env(cfg)


@pytest.mark.parametrize('piece', ['fsdp', 'deepspeed_zero2'])
def test_strategy_needs_a_distributed_launch(piece, tmp_path):
    cfg = _with_strategy(tmp_path, 'clip', piece)
    cfg.launcher = 'none'
    with pytest.raises(ValueError, match='needs a distributed launch.*dist_train.sh'):
        setup_runner_env(cfg)


def test_strategy_with_a_non_flexible_runner_type_is_refused(tmp_path):
    cfg = _with_strategy(tmp_path, 'clip', 'fsdp')
    cfg.launcher, cfg.runner_type = 'pytorch', 'Runner'
    with pytest.raises(ValueError, match="runner_type='Runner'.*FlexibleRunner"):
        prepare_strategy_cfg(cfg)


def test_deepspeed_training_step():
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        deepspeed = None
    if not torch.cuda.is_available() or deepspeed is None:
        pytest.skip('DeepSpeed ZeRO-2/3 training needs a CUDA GPU and the deepspeed package '
                    f'(CUDA available: {torch.cuda.is_available()}, deepspeed installed: '
                    f'{deepspeed is not None}); the configs and the optimizer-wrapper conversion '
                    'are checked above, the engine (deepspeed.initialize) and the step are not.')
    for stage in (2, 3):
        results = run_distributed(_train_rank, world_size=1, backend='nccl',
                                  args=('clip', f'deepspeed_zero{stage}', None))
        losses = results[0]['losses']['loss']
        assert len(losses) == ITERS and all(torch.isfinite(torch.tensor(losses)))


# ----------------------------------------------------------------------------- FSDP vs DDP
def _model_cfg(method):
    if method in ('lgdea', 'clip'):
        from test_ddp_parity import _cfg
        return _cfg('lgdea_prop' if method == 'lgdea' else 'clip_evidence')
    from test_ddp_parity_baselines import _case
    return _case(method)[0]


def _global_batch(method):
    if method in ('lgdea', 'clip'):
        from test_ddp_parity import _global_batch as batch
    else:
        from test_ddp_parity_baselines import _global_batch as batch
    return batch()


def _half_batch_collate(indices):
    """The batch of the rank that got sample ``indices[0]`` (DefaultSampler, no shuffle: rank
    r gets r, r + 2, ...): its half of one fixed global batch, as in the DDP parity tests."""
    import torch.distributed as dist
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    images, samples, reports = _global_batch(_half_batch_collate.method)
    per = images.shape[0] // world
    part = slice(rank * per, (rank + 1) * per)
    return dict(inputs=images[part], data_samples=samples[part], reports=reports[part])


class _Indices(torch.utils.data.Dataset):
    def __len__(self):
        return 2 * ITERS

    def __getitem__(self, idx):
        return idx


def _train_cfg(method, piece, work_dir, init_ckpt):
    from test_ddp_parity_baselines import _register
    _register()
    cfg = Config(dict(
        load_from=init_ckpt,
        default_scope='lgdea', launcher='pytorch', work_dir=work_dir,
        experiment_name=f'{method}_{piece or "ddp"}',
        model=_model_cfg(method),
        train_dataloader=dict(batch_size=1, num_workers=0, dataset=dict(type='_StrategyIndices'),
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='strategy_test_collate')),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=ITERS),
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.5),
                           clip_grad=dict(max_norm=MAX_NORM)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                           interval=ITERS)),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        model_wrapper_cfg=dict(type='MMDistributedDataParallel', find_unused_parameters=True),
        randomness=dict(seed=0), log_level='WARNING'))
    if piece is not None:
        cfg.merge_from_dict(Config.fromfile(osp.join(STRATEGY_DIR, piece + '.py')).to_dict())
    return cfg


def _train_rank(rank, world_size, method, piece, work_root, init_ckpt=None):
    """Train ``ITERS`` iterations with ``piece`` (None: DDP through the standard Runner)."""
    import tempfile
    register_all_modules()
    from lgdea.registry import DATASETS
    DATASETS.register_module(name='_StrategyIndices', module=_Indices, force=True)
    _half_batch_collate.method = method
    FUNCTIONS.register_module(name='strategy_test_collate', module=_half_batch_collate,
                              force=True)
    work_dir = osp.join(work_root or tempfile.mkdtemp(), piece or 'ddp')
    cfg = _train_cfg(method, piece, work_dir, init_ckpt)
    setup_runner_env(cfg)
    runner = build_runner(cfg)
    runner.train()
    hub = runner.message_hub
    losses = {k[len('train/'):]: [float(v) for v in hub.get_scalar(k).data[0]]
              for k in hub.log_scalars if k.startswith('train/loss')}
    grad_norm = [float(v) for v in hub.get_scalar('train/grad_norm').data[0]]
    return dict(runner=type(runner).__name__, losses=losses, grad_norm=grad_norm,
                model=type(runner.model).__name__, wrapper=type(runner.optim_wrapper).__name__,
                ckpt=osp.join(work_dir, f'iter_{ITERS}.pth'))


def _fsdp_and_ddp_rank(rank, world_size, methods, work_root, init_ckpts):
    import time
    out = {}
    for method in methods:
        root = osp.join(work_root, method)
        t0 = time.perf_counter()
        ddp = _train_rank(rank, world_size, method, None, root, init_ckpts[method])
        t1 = time.perf_counter()
        fsdp = _train_rank(rank, world_size, method, 'fsdp', root, init_ckpts[method])
        out[method] = dict(ddp=ddp, fsdp=fsdp, seconds=(t1 - t0, time.perf_counter() - t1))
    return out


def _check_fsdp_matches_ddp(methods, tmp_path):
    # both runs start from these weights (load_from): the runners draw random numbers in a
    # different order before they build the model
    from test_ddp_parity_baselines import _register
    from lgdea.registry import MODELS
    _register()
    init_ckpts = {}
    for method in methods:
        torch.manual_seed(0)
        model = MODELS.build(_model_cfg(method))
        model.init_weights()
        init_ckpts[method] = str(tmp_path / f'{method}_init.pth')
        torch.save(dict(state_dict=model.state_dict()), init_ckpts[method])
    results = run_distributed(_fsdp_and_ddp_rank, world_size=2,
                              args=(methods, str(tmp_path), init_ckpts), timeout=400)
    for method in methods:
        per_rank = [res[method] for res in results]
        for rank, res in enumerate(per_rank):
            ddp, fsdp = res['ddp'], res['fsdp']
            assert (ddp['runner'], fsdp['runner']) == ('Runner', 'FlexibleRunner')
            assert fsdp['model'] == 'VLFullyShardedDataParallel'
            assert fsdp['wrapper'] == 'FSDPOptimWrapper'
            assert set(ddp['losses']) == set(fsdp['losses']) and 'loss' in ddp['losses']
            for key, values in ddp['losses'].items():
                assert len(values) == ITERS
                assert fsdp['losses'][key] == pytest.approx(values, rel=1e-5, abs=1e-7), (
                    method, rank, key)
            # the whole-model gradient norm, the same on every rank, above max_norm: clipped
            assert fsdp['grad_norm'] == pytest.approx(ddp['grad_norm'], rel=1e-5), method
            assert ddp['grad_norm'][0] > MAX_NORM, method
        assert per_rank[0]['ddp']['grad_norm'] == pytest.approx(per_rank[1]['ddp']['grad_norm'])
        ddp_state = torch.load(per_rank[0]['ddp']['ckpt'], map_location='cpu',
                               weights_only=False)['state_dict']
        fsdp_state = torch.load(per_rank[0]['fsdp']['ckpt'], map_location='cpu',
                                weights_only=False)['state_dict']
        assert set(fsdp_state) == set(ddp_state)
        init = torch.load(init_ckpts[method], weights_only=False)['state_dict']
        assert any(not torch.allclose(init[k], v) for k, v in ddp_state.items())
        for k, v in ddp_state.items():
            torch.testing.assert_close(fsdp_state[k], v, rtol=1e-5, atol=1e-6,
                                       msg=lambda m, k=k: f'{method} {k}: {m}')
    return results


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU (gloo) path')
def test_fsdp_on_gloo_matches_ddp_lgdea_clip(tmp_path):
    _check_fsdp_matches_ddp(['lgdea', 'clip'], tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU (gloo) path')
def test_fsdp_on_gloo_matches_ddp_baselines(tmp_path):
    _check_fsdp_matches_ddp(['gloria', 'mgca'], tmp_path)


# ----------------------------------------------------------------------------- tools
def test_tools_pick_the_runner_from_the_config(tmp_path):
    from tool_loader import load_tool
    test_tool = load_tool('test')
    cfg = _with_strategy(tmp_path, 'lgdea', 'fsdp')
    test_tool.drop_training_strategy(cfg)
    assert cfg.strategy is None and 'runner_type' not in cfg  # evaluated with Runner
    cfg = _with_strategy(tmp_path, 'clip', 'deepspeed_zero3')
    test_tool.drop_training_strategy(cfg)
    assert cfg.strategy is None
    cfg = Config(dict(runner_type='FlexibleRunner', strategy=dict(type='DDPStrategy')))
    test_tool.drop_training_strategy(cfg)  # other strategies are kept
    assert cfg.strategy.type == 'DDPStrategy' and cfg.runner_type == 'FlexibleRunner'

    ckpt_dir = tmp_path / 'iter_2.pth'
    ckpt_dir.mkdir()
    args = test_tool.parse_args([str(tmp_path / 'lgdea_fsdp.py'), str(ckpt_dir)])
    with pytest.raises(IsADirectoryError, match='DeepSpeed.*zero_to_fp32'):
        test_tool.merge_args(Config.fromfile(str(tmp_path / 'lgdea_fsdp.py')), args)
