"""FSDP and DeepSpeed ZeRO training through mmengine's ``FlexibleRunner``.

A method config switches strategy by adding one ``_base_`` piece
(``configs/_base_/strategies/{fsdp,deepspeed_zero2,deepspeed_zero3}.py``), which sets only
``strategy = dict(type=...)``. The rest is derived here, so that every method config (LGDEA,
CLIP, GLoRIA, MGCA) keeps its own ``optim_wrapper`` and schedule unchanged:

* :func:`build_runner` builds ``FlexibleRunner`` when the config has a ``strategy`` (or names a
  ``runner_type``), else mmengine's ``Runner``.
* :func:`prepare_strategy_cfg` gives the strategy its matching optimizer wrapper:
  FSDP gets :class:`FSDPOptimWrapper` / :class:`FSDPAmpOptimWrapper` /
  :class:`FSDPAutocastOptimWrapper` (gradient-norm clipping
  over the whole sharded model, not over each rank's shard), DeepSpeed gets mmengine's
  ``DeepSpeedOptimWrapper`` with ``clip_grad`` / ``accumulative_counts`` moved to DeepSpeed's
  ``gradient_clipping`` / ``gradient_accumulation_steps``. It refuses what cannot run
  (DeepSpeed without CUDA or without the ``deepspeed`` package, either strategy without a
  distributed launcher) with a message naming the key and the fix.
* :class:`VLFullyShardedDataParallel` (selected for every FSDP config) shards the lgdea models,
  whose contrastive temperature is a scalar parameter that FSDP cannot shard, and runs on CPU
  processes (gloo) too, as :class:`~lgdea.engine.runner.CPUDistributedDataParallel` does for
  DDP.
* :func:`gathered_params` is for code that uses the unwrapped model outside the wrapper's
  forward (evaluation metrics, the prototype k-means hook, diagnostics): under FSDP a rank
  holds only a shard of each parameter, so the full parameters are gathered for the block.
"""
import contextlib
import importlib.util
import logging
import math
from typing import Optional, Sequence

import torch
import torch.distributed as torch_dist
import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from mmengine.model import MMFullyShardedDataParallel
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from lgdea.engine.optimizers.autocast_optim_wrapper import AutocastOptimWrapper
from lgdea.registry import MODEL_WRAPPERS, OPTIM_WRAPPERS

__all__ = ['FSDPOptimWrapper', 'FSDPAmpOptimWrapper', 'FSDPAutocastOptimWrapper', 'VLFullyShardedDataParallel',
           'transformer_block_wrap_policy', 'gathered_params', 'strategy_type',
           'prepare_strategy_cfg', 'build_runner', 'FSDP_OPTIM_WRAPPER', 'FSDP_AMP_OPTIM_WRAPPER',
           'FSDP_MODEL_WRAPPER', 'TRANSFORMER_BLOCK_WRAP_POLICY', 'DEFAULT_BLOCK_TYPES']

# Full import paths: the strategies build optimizer and model wrappers through mmengine's root
# registries, which do not see lgdea's (a grandchild, below mmpretrain's); Registry.get falls
# back to importing a dotted path (see dist_setup.CPU_MODEL_WRAPPER).
FSDP_OPTIM_WRAPPER = 'lgdea.engine.runner.strategies.FSDPOptimWrapper'
FSDP_AMP_OPTIM_WRAPPER = 'lgdea.engine.runner.strategies.FSDPAmpOptimWrapper'
FSDP_AUTOCAST_OPTIM_WRAPPER = 'lgdea.engine.runner.strategies.FSDPAutocastOptimWrapper'
FSDP_MODEL_WRAPPER = 'lgdea.engine.runner.strategies.VLFullyShardedDataParallel'
TRANSFORMER_BLOCK_WRAP_POLICY = 'lgdea.engine.runner.strategies.transformer_block_wrap_policy'

#: Transformer blocks of the encoders the methods use: mmpretrain's ViT layer, Hugging Face
#: BERT-style layers (clinical BERT, MiniLM) and timm's ViT block.
DEFAULT_BLOCK_TYPES = ('TransformerEncoderLayer', 'BertLayer', 'Block')

_FSDP_WRAPPERS = (None, 'MMFullyShardedDataParallel', 'mmengine.MMFullyShardedDataParallel',
                  'VLFullyShardedDataParallel', FSDP_MODEL_WRAPPER)
_PLAIN_WRAPPERS = ('OptimWrapper', 'mmengine.OptimWrapper', FSDP_OPTIM_WRAPPER)
_AMP_WRAPPERS = ('AmpOptimWrapper', 'mmengine.AmpOptimWrapper', FSDP_AMP_OPTIM_WRAPPER)
_AUTOCAST_WRAPPERS = ('AutocastOptimWrapper', 'lgdea.AutocastOptimWrapper',
                      FSDP_AUTOCAST_OPTIM_WRAPPER)
_DEEPSPEED_WRAPPERS = ('DeepSpeedOptimWrapper', 'mmengine.DeepSpeedOptimWrapper')
# OptimWrapper arguments that DeepSpeedOptimWrapper does not take; clip_grad and
# accumulative_counts are translated, the rest has no DeepSpeed meaning and is refused.
_DEEPSPEED_TRANSLATED = ('clip_grad', 'accumulative_counts')


def _short(type_name) -> str:
    return str(type_name).split('.')[-1] if type_name is not None else ''


def strategy_type(cfg: Config) -> Optional[str]:
    """Class name of ``cfg.strategy.type`` (``'FSDPStrategy'``, ...), None without a strategy."""
    strategy = cfg.get('strategy')
    if strategy is None:
        return None
    if not isinstance(strategy, dict) or 'type' not in strategy:
        raise TypeError(f'`strategy` must be a dict with a `type` (e.g. '
                        f"dict(type='FSDPStrategy')), got {strategy!r}")
    kind = strategy['type']
    return kind if isinstance(kind, str) and '.' not in kind else (
        _short(kind) if isinstance(kind, str) else kind.__name__)


# ----------------------------------------------------------------------------- optim wrappers
class _ShardedClipMixin:
    """Gradient clipping over the parameters of all ranks.

    Under FSDP with ``use_orig_params=True`` each rank's parameters are its (disjoint) shards of
    the flattened parameters; mmengine's ``OptimWrapper`` calls
    ``torch.nn.utils.clip_grad_norm_`` on them, i.e. per-rank norms, so the ranks would scale
    their shards differently. Here the local ``p``-th powers are summed over the ranks (the
    maximum for ``inf``) before the common scale is applied; value clipping is element-wise
    and needs no reduction.
    """

    def _clip_grad(self) -> None:
        if self.clip_func is not torch.nn.utils.clip_grad_norm_:
            return super()._clip_grad()
        params = [p for group in self.optimizer.param_groups for p in group['params']
                  if p.requires_grad and p.grad is not None]
        kwargs = dict(self.clip_grad_kwargs)
        max_norm = float(kwargs.pop('max_norm'))
        norm_type = float(kwargs.pop('norm_type', 2.0))
        error_if_nonfinite = kwargs.pop('error_if_nonfinite', False)
        kwargs.pop('foreach', None)
        if kwargs:
            raise TypeError(f'optim_wrapper.clip_grad: unsupported keys {sorted(kwargs)} for '
                            'FSDP gradient-norm clipping (max_norm, norm_type, '
                            'error_if_nonfinite)')
        device = params[0].grad.device if params else torch.device('cpu')
        world = torch_dist.get_world_size() if torch_dist.is_available() and \
            torch_dist.is_initialized() else 1
        grads = [p.grad.detach() for p in params if p.grad.numel()]
        # a replicated parameter is on every rank: its share of the sum, counted once
        weights = [1.0 / world if getattr(p, '_replicated_under_fsdp', False) else 1.0
                   for p in params if p.grad.numel()]
        if math.isinf(norm_type):
            local = max((g.abs().max().float() for g in grads),
                        default=torch.zeros((), device=device))
            total = local.clone().reshape(1)
            if torch_dist.is_available() and torch_dist.is_initialized():
                torch_dist.all_reduce(total, op=torch_dist.ReduceOp.MAX)
            total = total[0]
        else:
            local = sum((w * torch.linalg.vector_norm(g.float(), norm_type) ** norm_type
                         for g, w in zip(grads, weights)), torch.zeros((), device=device))
            total = local.reshape(1).clone()
            if torch_dist.is_available() and torch_dist.is_initialized():
                torch_dist.all_reduce(total)
            total = total[0] ** (1.0 / norm_type)
        if error_if_nonfinite and not torch.isfinite(total):
            raise RuntimeError(f'The total norm of order {norm_type} of the gradients is '
                               'non-finite; set clip_grad.error_if_nonfinite=False to skip.')
        scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for p in params:
            p.grad.detach().mul_(scale.to(p.grad.device, p.grad.dtype))
        self.message_hub.update_scalar(f'train/{self.grad_name}', float(total))


@OPTIM_WRAPPERS.register_module()
class FSDPOptimWrapper(_ShardedClipMixin, OptimWrapper):
    """:class:`mmengine.optim.OptimWrapper` whose ``clip_grad`` norm covers all FSDP shards.

    Selected by :func:`prepare_strategy_cfg` for ``FSDPStrategy`` in place of
    ``OptimWrapper``; arguments as :class:`mmengine.optim.OptimWrapper`.
    """


@OPTIM_WRAPPERS.register_module()
class FSDPAmpOptimWrapper(_ShardedClipMixin, AmpOptimWrapper):
    """:class:`mmengine.optim.AmpOptimWrapper` (``use_fsdp=True``: sharded grad scaler) whose
    ``clip_grad`` norm covers all FSDP shards. Selected for ``FSDPStrategy`` in place of
    ``AmpOptimWrapper`` (e.g. by ``tools/train.py --amp --amp-dtype float16``)."""


@OPTIM_WRAPPERS.register_module()
class FSDPAutocastOptimWrapper(_ShardedClipMixin, AutocastOptimWrapper):
    """:class:`~lgdea.engine.optimizers.AutocastOptimWrapper` (bf16 autocast, no loss scaling)
    whose ``clip_grad`` norm covers all FSDP shards. Selected for ``FSDPStrategy`` in place of
    ``AutocastOptimWrapper`` (e.g. by ``tools/train.py --amp``)."""


# ----------------------------------------------------------------------------- FSDP wrapper
def _module_device_types(module: nn.Module) -> set:
    return {t.device.type for t in list(module.parameters()) + list(module.buffers())}


@MODEL_WRAPPERS.register_module()
class VLFullyShardedDataParallel(MMFullyShardedDataParallel):
    """:class:`MMFullyShardedDataParallel` for the lgdea models, on GPUs and on CPU (gloo).

    Two things keep the plain wrapper from running these models:

    * Scalar parameters (the contrastive temperature ``logit_scale`` of LGDEA, CLIP, GLoRIA,
      MGCA): FSDP refuses 0-d parameters; and parameters that the model rewrites in place
      during its forward (MGCA's prototypes, re-normalised at every forward; their module sets
      ``replicate_under_fsdp = True``): a shard cannot hold that change. Both are left out of
      sharding (``ignored_states``),
      moved to the compute device, replicated on every rank, and their gradients are averaged
      over the ranks as soon as they are accumulated, which is what FSDP does for the sharded
      ones; checkpoints keep their shape, so they load into the unwrapped model.
      They are marked ``_replicated_under_fsdp`` for :class:`FSDPOptimWrapper`'s clipping.
    * CPU: mmengine's ``FSDPStrategy`` passes ``device_id=LOCAL_RANK``, which torch reads as
      ``cuda:LOCAL_RANK``; for a CPU module on a machine without CUDA the wrapper passes
      ``device_id=torch.device('cpu')``, and ``sync_module_states=True`` (GPU-only in torch)
      is done by broadcasting rank 0's parameters and buffers before wrapping.

    Args:
        module: the model.
        **kwargs: as :class:`MMFullyShardedDataParallel` (``ignored_states`` is extended with
            the scalar parameters; ``ignored_modules`` / ``ignored_parameters`` cannot be
            combined with them).
    """

    def __init__(self, module: nn.Module, **kwargs):
        devices = _module_device_types(module)
        cpu = (not devices or devices == {'cpu'}) and not torch.cuda.is_available()
        if cpu:
            kwargs['device_id'] = torch.device('cpu')
        replicated = _replicated_params(module)
        if kwargs.get('sync_module_states') and (cpu or replicated):
            # torch syncs only GPU-held, sharded states: broadcast rank 0's CPU states here,
            # and the replicated parameters in every case
            _broadcast_from_rank0(list(module.parameters()) + list(module.buffers()) if cpu
                                  else replicated)
            if cpu:
                kwargs['sync_module_states'] = False
        if replicated:
            clash = [k for k in ('ignored_modules', 'ignored_parameters') if kwargs.get(k)]
            if clash:
                raise ValueError(
                    f'strategy.model_wrapper.{clash[0]}: the model has replicated (scalar or '
                    'replicate_under_fsdp) parameters, which VLFullyShardedDataParallel '
                    'passes as `ignored_states`; give the '
                    'ignored modules / parameters as `ignored_states` instead.')
            kwargs['ignored_states'] = list(kwargs.get('ignored_states') or []) + replicated
            device = kwargs.get('device_id')
            if device is not None:
                device = device if isinstance(device, torch.device) else torch.device(
                    'cuda', int(device))
            for p in replicated:
                if device is not None:
                    p.data = p.data.to(device)
                p._replicated_under_fsdp = True
                p.register_post_accumulate_grad_hook(_average_grad_over_ranks)
        super().__init__(module=module, **kwargs)


def _replicated_params(module: nn.Module) -> list:
    """Scalar parameters, and those of sub-modules with ``replicate_under_fsdp = True``."""
    params = {id(p): p for p in module.parameters() if p.dim() == 0}
    for sub in module.modules():
        if getattr(sub, 'replicate_under_fsdp', False):
            params.update({id(p): p for p in sub.parameters()})
    return list(params.values())


def _broadcast_from_rank0(tensors) -> None:
    if torch_dist.is_available() and torch_dist.is_initialized() \
            and torch_dist.get_world_size() > 1:
        with torch.no_grad():
            for t in tensors:
                torch_dist.broadcast(t.data, src=0)


def _average_grad_over_ranks(param: torch.Tensor) -> None:
    if torch_dist.is_available() and torch_dist.is_initialized() \
            and torch_dist.get_world_size() > 1:
        torch_dist.all_reduce(param.grad)
        param.grad.div_(torch_dist.get_world_size())


def transformer_block_wrap_policy(module: nn.Module, recurse: bool, nonwrapped_numel: int,
                                  block_types: Sequence[str] = DEFAULT_BLOCK_TYPES) -> bool:
    """FSDP ``auto_wrap_policy``: one FSDP unit per transformer block.

    Each block's parameters are gathered only while that block runs (forward and backward), so
    the memory of the full parameters is needed one block at a time; everything else (patch
    embedding, projections, prototypes, ...) stays in the root unit.

    Args:
        module: the candidate module (FSDP calls the policy for every sub-module).
        recurse: FSDP asks whether to descend into ``module`` (always yes).
        nonwrapped_numel: parameters not yet wrapped below ``module`` (unused).
        block_types: class names of the blocks to wrap (:data:`DEFAULT_BLOCK_TYPES`).
    """
    if recurse:
        return True
    return type(module).__name__ in tuple(block_types)


def gathered_params(model: nn.Module, writeback: bool = False):
    """Context in which ``model`` (or its FSDP wrapper's ``.module``) holds full parameters.

    Under FSDP (and DeepSpeed ZeRO-3) every rank holds a shard of each parameter outside the
    wrapper's forward, so code that calls the unwrapped model (metrics, hooks) runs inside this
    context; it is a collective: every rank must enter it. For any other model (DDP, ZeRO-2,
    a single process) it does nothing.

    Args:
        model: the runner's model (``runner.model``).
        writeback: keep in-place changes made to the full parameters (e.g. initialised
            prototypes); every rank must make the same change.
    """
    from torch.distributed.fsdp import FullyShardedDataParallel
    if isinstance(model, FullyShardedDataParallel):
        return FullyShardedDataParallel.summon_full_params(model, writeback=writeback,
                                                           recurse=True)
    engine = getattr(model, '__dict__', {}).get('model')  # mmengine's MMDeepSpeedEngineWrapper
    if engine is not None and type(model).__name__ == 'MMDeepSpeedEngineWrapper' \
            and engine.zero_optimization_partition_weights():
        import deepspeed
        # ZeRO-3: gathered on every rank; with writeback, rank 0's values are kept everywhere
        return deepspeed.zero.GatheredParameters(list(engine.module.parameters()),
                                                 modifier_rank=0 if writeback else None)
    return contextlib.nullcontext()


# ----------------------------------------------------------------------------- config
def _require_launcher(cfg: Config, kind: str) -> None:
    if (cfg.get('launcher') or 'none') == 'none':
        raise ValueError(
            f'strategy.type={kind!r} needs a distributed launch (it creates a process group); '
            'start it with `bash tools/dist_train.sh CONFIG N` (N >= 1 processes, i.e. '
            '`--launcher pytorch`), or remove the strategy `_base_` piece for a single-process '
            'run.')


def _adapt_fsdp(cfg: Config) -> None:
    strategy = cfg.strategy
    wrapper = cfg.get('optim_wrapper')
    if isinstance(wrapper, dict):
        kind = wrapper.get('type', 'OptimWrapper')
        if kind in _PLAIN_WRAPPERS:
            wrapper['type'] = FSDP_OPTIM_WRAPPER
        elif kind in _AMP_WRAPPERS:
            wrapper['type'] = FSDP_AMP_OPTIM_WRAPPER
            wrapper.setdefault('use_fsdp', True)
        elif kind in _AUTOCAST_WRAPPERS:
            wrapper['type'] = FSDP_AUTOCAST_OPTIM_WRAPPER
        elif kind in _DEEPSPEED_WRAPPERS:
            raise ValueError(f'optim_wrapper.type={kind!r} belongs to DeepSpeedStrategy, not '
                             "strategy.type='FSDPStrategy'; use OptimWrapper (or "
                             'AmpOptimWrapper) with FSDP.')
        elif wrapper.get('clip_grad'):
            raise ValueError(
                f'optim_wrapper.type={kind!r} with clip_grad under FSDPStrategy: only '
                'OptimWrapper / AmpOptimWrapper are converted to their sharded-clipping '
                'versions (FSDPOptimWrapper / FSDPAmpOptimWrapper); use one of them.')
    model_wrapper = strategy.get('model_wrapper') or ConfigDict()
    if model_wrapper.get('type') in _FSDP_WRAPPERS:
        model_wrapper['type'] = FSDP_MODEL_WRAPPER
    else:
        print_log(f'strategy.model_wrapper.type={model_wrapper.get("type")!r} is kept as '
                  'configured; it must handle scalar parameters and CPU modules, see '
                  'VLFullyShardedDataParallel.', logger='current', level=logging.WARNING)
    strategy['model_wrapper'] = model_wrapper


def _adapt_deepspeed(cfg: Config, amp_requested: bool) -> None:
    if amp_requested:
        raise ValueError("--amp does not apply to strategy.type='DeepSpeedStrategy': its "
                         'precision is strategy.bf16 / strategy.fp16 (bf16 is on in '
                         'configs/_base_/strategies/deepspeed_zero*.py); drop --amp.')
    if not torch.cuda.is_available():
        raise RuntimeError(
            "strategy.type='DeepSpeedStrategy' (configs/_base_/strategies/deepspeed_zero*.py) "
            'needs CUDA GPUs and none is available on this machine. On CPU, train with DDP '
            '(no strategy piece) or FSDP (configs/_base_/strategies/fsdp.py).')
    if importlib.util.find_spec('deepspeed') is None:
        raise RuntimeError(
            "strategy.type='DeepSpeedStrategy' needs the `deepspeed` package, which is not "
            'installed: `pip install deepspeed` (matching your torch / CUDA), or use '
            'configs/_base_/strategies/fsdp.py instead.')
    _adapt_deepspeed_optim_wrapper(cfg)


def _adapt_deepspeed_optim_wrapper(cfg: Config) -> None:
    """Replace the method's ``optim_wrapper`` with ``DeepSpeedOptimWrapper`` (in place),
    moving ``clip_grad`` / ``accumulative_counts`` into the strategy."""
    strategy = cfg.strategy
    wrapper = cfg.get('optim_wrapper')
    if not isinstance(wrapper, dict):
        raise ValueError("strategy.type='DeepSpeedStrategy' needs an `optim_wrapper` dict "
                         'with an `optimizer`.')
    kind = wrapper.get('type', 'OptimWrapper')
    if kind in _DEEPSPEED_WRAPPERS:
        return
    if kind not in _PLAIN_WRAPPERS + _AMP_WRAPPERS + _AUTOCAST_WRAPPERS:
        raise ValueError(f'optim_wrapper.type={kind!r} cannot be converted to '
                         "DeepSpeedOptimWrapper for strategy.type='DeepSpeedStrategy'; use "
                         'OptimWrapper or DeepSpeedOptimWrapper.')
    clip = wrapper.get('clip_grad')
    if clip:
        if clip.get('type', 'norm') != 'norm' or float(clip.get('norm_type', 2.0)) != 2.0:
            raise ValueError(f'optim_wrapper.clip_grad={dict(clip)!r}: DeepSpeed clips the '
                             'L2 norm only (strategy.gradient_clipping); use '
                             'clip_grad=dict(max_norm=...) or remove it.')
        strategy.setdefault('gradient_clipping', float(clip['max_norm']))
    counts = wrapper.get('accumulative_counts')
    if counts is not None:
        strategy.setdefault('gradient_accumulation_steps', int(counts))
    kept = dict(type='DeepSpeedOptimWrapper')
    for key, value in wrapper.items():
        if key in ('type', *_DEEPSPEED_TRANSLATED):
            continue
        if key in ('optimizer', 'constructor', 'paramwise_cfg'):
            kept[key] = value
        elif kind in _AMP_WRAPPERS + _AUTOCAST_WRAPPERS and key in (
                'loss_scale', 'dtype', 'use_fsdp', 'device_type'):
            continue  # precision comes from the strategy's bf16 / fp16 sections
        else:
            raise ValueError(f'optim_wrapper.{key} has no DeepSpeed counterpart '
                             "(strategy.type='DeepSpeedStrategy'); remove it.")
    cfg.optim_wrapper = ConfigDict(kept)


def prepare_strategy_cfg(cfg: Config, amp_requested: bool = False) -> Config:
    """Check ``cfg.strategy`` and give it its runner and optimizer wrapper (in place).

    Without a ``strategy`` the config is returned unchanged. With one: ``runner_type`` must be
    absent or ``FlexibleRunner``; FSDP and DeepSpeed need a distributed launcher; the
    optimizer wrapper is converted as described in the module docstring.

    Args:
        cfg: the merged config (``launcher`` set).
        amp_requested: ``tools/train.py --amp`` was given.

    Returns:
        The same ``cfg``.
    """
    kind = strategy_type(cfg)
    if kind is None:
        return cfg
    runner_type = cfg.get('runner_type')
    if runner_type is not None and _short(runner_type) != 'FlexibleRunner':
        raise ValueError(f'`strategy` ({kind}) is run by FlexibleRunner, but the config sets '
                         f'runner_type={runner_type!r}; remove runner_type or set it to '
                         "'FlexibleRunner'.")
    if kind == 'FSDPStrategy':
        _require_launcher(cfg, kind)
        _adapt_fsdp(cfg)
    elif kind == 'DeepSpeedStrategy':
        _require_launcher(cfg, kind)
        _adapt_deepspeed(cfg, amp_requested)
    return cfg


def build_runner(cfg: Config):
    """The runner of ``cfg``: ``RUNNERS.build`` for a ``runner_type``, ``FlexibleRunner`` for a
    ``strategy``, else mmengine's ``Runner``."""
    if cfg.get('runner_type') is not None:
        from lgdea.registry import RUNNERS
        return RUNNERS.build(cfg)
    if cfg.get('strategy') is not None:
        from mmengine.runner import FlexibleRunner
        return FlexibleRunner.from_cfg(cfg)
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg)

