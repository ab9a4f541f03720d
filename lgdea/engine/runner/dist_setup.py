"""Runner environment set-up shared by ``tools/train.py`` and ``tools/test.py``.

mmengine 0.10.7 assumes a CUDA device for every distributed launcher: its ``_init_dist_pytorch``
(and ``_init_dist_slurm`` / ``_init_dist_mpi``) call ``torch.cuda.set_device(local_rank)`` and
``Runner.wrap_model`` / ``DDPStrategy`` pass ``device_ids=[LOCAL_RANK]`` to
DistributedDataParallel; both fail on a CPU-only machine. :func:`setup_runner_env` therefore,
for a distributed run on CPU (or with ``env_cfg.dist_cfg.backend='gloo'``):

1. switches ``env_cfg.dist_cfg.backend`` to ``'gloo'`` (no CUDA device);
2. initialises the default process group itself from the launcher's environment variables.
   ``Runner.setup_env`` only calls ``init_dist`` when ``is_distributed()`` is False
   (``if self.distributed and not is_distributed()``), so mmengine then uses this group;
3. selects :class:`CPUDistributedDataParallel` as the model wrapper (``model_wrapper_cfg`` of
   ``Runner``, ``strategy.model_wrapper`` of ``FlexibleRunner`` + ``DDPStrategy``), or
   ``FSDPStrategy`` already has :class:`~lgdea.engine.runner.strategies.VLFullyShardedDataParallel`.

With CUDA and a non-gloo backend it leaves initialisation to mmengine. In every case it also
scopes collate functions registered only in lgdea's FUNCTIONS (``dict(type='my_collate')``
becomes ``'lgdea.my_collate'``): ``Runner.build_dataloader`` looks the name up in mmengine's
*root* FUNCTIONS registry, which does not see lgdea's child registry without the scope.

:func:`teardown_runner_env` destroys the process group created during the run (by this module
or by mmengine after :func:`setup_runner_env`); it is also registered with ``atexit``.
"""
import atexit
import copy
import datetime
import logging
import os
import subprocess

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from mmengine.registry import FUNCTIONS as ROOT_FUNCTIONS

from lgdea.registry import FUNCTIONS

from .strategies import prepare_strategy_cfg

__all__ = ['setup_runner_env', 'teardown_runner_env', 'resolve_collate_fn_scopes',
           'drop_disabled_default_hooks', 'set_dataloader_defaults', 'CPU_MODEL_WRAPPER',
           'DEFAULT_COLLATE_FN']

#: Collate function given to every dataloader that does not set one
#: (``lgdea.datasets.collate.vl_collate``, docs/architecture.md section 3).
DEFAULT_COLLATE_FN = dict(type='vl_collate')

#: Type of :class:`lgdea.engine.runner.CPUDistributedDataParallel` for ``model_wrapper_cfg``.
#: mmengine's ``wrap_model`` resolves the type with its *root* MODEL_WRAPPERS registry, which
#: only searches its direct children (lgdea's registry is a grandchild, below mmpretrain's), so
#: neither the bare nor the ``lgdea.``-scoped name is found there; the full import path is
#: (``Registry.get`` falls back to importing it) whatever the default scope.
CPU_MODEL_WRAPPER = 'lgdea.engine.runner.cpu_ddp.CPUDistributedDataParallel'

#: Wrapper types that are plain DistributedDataParallel and may be replaced on CPU.
_REPLACEABLE_WRAPPERS = (None, 'MMDistributedDataParallel', 'mmengine.MMDistributedDataParallel',
                         'CPUDistributedDataParallel', CPU_MODEL_WRAPPER)
_LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
_DATALOADER_FIELDS = ('train_dataloader', 'val_dataloader', 'test_dataloader')

# owns_group: the default process group was created after setup_runner_env (by it or mmengine).
_state = dict(owns_group=False, atexit_registered=False)


def set_dataloader_defaults(cfg: Config, no_pin_memory: bool = False,
                            no_persistent_workers: bool = False) -> None:
    """Fill mmpretrain's dataloader defaults into ``{train,val,test}_dataloader`` of ``cfg``.

    Defaults (values in the config win): ``pin_memory`` True when a CUDA device exists (mmpretrain
    always sets True; pinning has no use and warns without an accelerator),
    ``persistent_workers`` True when ``num_workers > 0`` (torch rejects it otherwise) and
    ``collate_fn=dict(type='vl_collate')`` (:data:`DEFAULT_COLLATE_FN`). Then the flags force
    ``pin_memory`` / ``persistent_workers`` off. Dataloaders that are None (or built objects)
    are left alone.

    Args:
        cfg: the config, edited in place.
        no_pin_memory: ``--no-pin-memory``.
        no_persistent_workers: ``--no-persistent-workers``.
    """
    for field in _DATALOADER_FIELDS:
        if not isinstance(cfg.get(field), dict):  # None, or an already built DataLoader
            continue
        loader = ConfigDict(pin_memory=torch.cuda.is_available(),
                            persistent_workers=cfg[field].get('num_workers', 0) > 0,
                            collate_fn=copy.deepcopy(DEFAULT_COLLATE_FN))
        loader.update(cfg[field])
        if no_pin_memory:
            loader['pin_memory'] = False
        if no_persistent_workers or not loader.get('num_workers', 0):
            loader['persistent_workers'] = False
        cfg[field] = loader


def resolve_collate_fn_scopes(cfg: Config) -> None:
    """Add the ``lgdea.`` scope to collate functions registered only in lgdea's FUNCTIONS.

    Args:
        cfg: the full config; ``{train,val,test}_dataloader.collate_fn`` are edited in place.

    Raises:
        KeyError: a ``collate_fn`` type is registered neither in lgdea's nor in mmengine's
            FUNCTIONS registry (the message names the dataloader field).
    """
    for field in _DATALOADER_FIELDS:
        loader = cfg.get(field)
        if not isinstance(loader, dict):
            continue
        collate = loader.get('collate_fn')
        if not isinstance(collate, dict):
            continue
        collate_type = collate.get('type')
        if not isinstance(collate_type, str) or '.' in collate_type:
            continue
        if ROOT_FUNCTIONS.get(collate_type) is not None:
            continue
        if FUNCTIONS.get(collate_type) is not None:
            collate['type'] = f'{FUNCTIONS.scope}.{collate_type}'
            continue
        raise KeyError(
            f'{field}.collate_fn: "{collate_type}" is not in the lgdea::function or '
            'mmengine::function registry. Use a registered collate function such as '
            '"vl_collate" (lgdea.datasets.collate) or "default_collate", or import the module '
            'that registers it through `custom_imports` in the config.')


def _timeout_kwargs(dist_cfg: dict) -> dict:
    """``init_process_group`` keyword arguments of ``dist_cfg`` (``timeout`` in seconds)."""
    kwargs = {k: v for k, v in dist_cfg.items() if k not in ('backend', 'port', 'init_backend')}
    timeout = kwargs.get('timeout')
    if timeout is not None and not isinstance(timeout, datetime.timedelta):
        try:
            kwargs['timeout'] = datetime.timedelta(seconds=timeout)
        except TypeError as exc:
            raise TypeError(
                'env_cfg.dist_cfg.timeout must be a number of seconds, e.g. '
                f"dist_cfg=dict(backend='gloo', timeout=1800); got {timeout!r}") from exc
    return kwargs


def _require_env(launcher: str, *names: str) -> None:
    missing = [n for n in names if n not in os.environ]
    if missing:
        hint = {
            'pytorch': 'start the job with `torchrun --nproc_per_node N tools/train.py CONFIG '
                       '--launcher pytorch` (or tools/dist_train.sh)',
            'slurm': 'start the job with `srun` (or tools/slurm_train.sh)',
            'mpi': 'start the job with `mpirun` and export MASTER_ADDR',
        }[launcher]
        raise RuntimeError(f'--launcher {launcher}: environment variable(s) {missing} are not '
                           f'set; {hint}.')


def _rank_env(launcher: str, dist_cfg: dict) -> tuple:
    """Read (and for slurm / mpi, export) the rank variables of ``launcher``.

    Returns:
        ``(rank, world_size, local_rank)``; afterwards ``MASTER_ADDR`` / ``MASTER_PORT`` /
        ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` are in ``os.environ`` (``env://`` init).
    """
    if launcher == 'pytorch':
        _require_env(launcher, 'RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
        rank, world_size = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
        local_rank = int(os.environ.get('LOCAL_RANK', 0))
    elif launcher == 'slurm':
        _require_env(launcher, 'SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST')
        rank, world_size = int(os.environ['SLURM_PROCID']), int(os.environ['SLURM_NTASKS'])
        ntasks_per_node = max(1, world_size // max(1, int(os.environ.get('SLURM_NNODES', 1))))
        local_rank = int(os.environ.get('SLURM_LOCALID', rank % ntasks_per_node))
        if 'MASTER_ADDR' not in os.environ:
            node_list = os.environ['SLURM_NODELIST']
            os.environ['MASTER_ADDR'] = subprocess.getoutput(
                f'scontrol show hostname {node_list} | head -n1').strip()
        if dist_cfg.get('port') is not None:
            os.environ['MASTER_PORT'] = str(dist_cfg['port'])
        os.environ.setdefault('MASTER_PORT', '29500')
    elif launcher == 'mpi':
        _require_env(launcher, 'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'MASTER_ADDR')
        rank = int(os.environ['OMPI_COMM_WORLD_RANK'])
        world_size = int(os.environ['OMPI_COMM_WORLD_SIZE'])
        local_rank = int(os.environ.get('OMPI_COMM_WORLD_LOCAL_RANK', 0))
        os.environ.setdefault('MASTER_PORT', '29500')
    else:
        raise ValueError(f'launcher must be one of {_LAUNCHERS}, got {launcher!r}')
    os.environ['RANK'] = str(rank)
    os.environ['WORLD_SIZE'] = str(world_size)
    os.environ['LOCAL_RANK'] = str(local_rank)
    return rank, world_size, local_rank


def _init_gloo_process_group(launcher: str, dist_cfg: dict) -> None:
    """Initialise the default gloo process group without mmengine's ``torch.cuda.set_device``."""
    rank, world_size, local_rank = _rank_env(launcher, dist_cfg)
    if torch.cuda.is_available():
        # gloo with CUDA tensors: keep mmengine's one-device-per-process binding.
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    torch_dist.init_process_group(
        backend='gloo', init_method='env://', rank=rank, world_size=world_size,
        **_timeout_kwargs(dist_cfg))
    print_log(f'Initialised the gloo process group: rank {rank} / {world_size} '
              f'(launcher={launcher}, MASTER_ADDR={os.environ.get("MASTER_ADDR")}, '
              f'MASTER_PORT={os.environ.get("MASTER_PORT")}).', logger='current')


def _select_cpu_model_wrapper(cfg: Config) -> None:
    """Make the runner wrap the model with :class:`CPUDistributedDataParallel`."""
    runner_type = cfg.get('runner_type')
    flexible = (cfg.get('strategy') is not None if runner_type is None else
                isinstance(runner_type, str) and runner_type.split('.')[-1] == 'FlexibleRunner')
    if flexible:
        strategy = cfg.get('strategy')
        if strategy is None:
            cfg.strategy = ConfigDict(
                type='DDPStrategy',
                model_wrapper=dict(type=CPU_MODEL_WRAPPER, broadcast_buffers=False))
            return
        kind = str(strategy.get('type', '')).split('.')[-1]
        if kind == 'FSDPStrategy':
            return  # VLFullyShardedDataParallel (prepare_strategy_cfg) handles CPU modules
        if kind != 'DDPStrategy':
            print_log(f'strategy {strategy.get("type")!r} is kept as configured; only '
                      'DDPStrategy and FSDPStrategy are adapted to CPU (gloo) training.',
                      logger='current', level=logging.WARNING)
            return
        wrapper = strategy.get('model_wrapper') or ConfigDict(broadcast_buffers=False)
        if wrapper.get('type') in _REPLACEABLE_WRAPPERS:
            wrapper['type'] = CPU_MODEL_WRAPPER
        strategy['model_wrapper'] = wrapper
        return

    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        # mmengine's default when model_wrapper_cfg is None, with the CPU-capable class.
        cfg.model_wrapper_cfg = ConfigDict(
            type=CPU_MODEL_WRAPPER, broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    elif wrapper.get('type') in _REPLACEABLE_WRAPPERS:
        wrapper['type'] = CPU_MODEL_WRAPPER
    else:
        print_log(f'model_wrapper_cfg.type={wrapper.get("type")!r} is kept as configured; on '
                  'CPU it must accept (and ignore) device_ids, see CPUDistributedDataParallel.',
                  logger='current', level=logging.WARNING)


#: hooks mmengine's Runner registers by default; only these accept ``None`` there
_MMENGINE_DEFAULT_HOOKS = ('runtime_info', 'timer', 'sampler_seed', 'logger', 'param_scheduler',
                           'checkpoint')


def drop_disabled_default_hooks(cfg: Config) -> Config:
    """Remove ``default_hooks`` entries set to None that mmengine does not know.

    mmengine removes a default hook set to None only for its own six; for the project's
    (``throughput``, ``non_finite_guard``) a None trips an assertion. After this,
    ``--cfg-options default_hooks.non_finite_guard=None`` disables the hook as users expect.

    Args:
        cfg: the merged config; edited in place.

    Returns:
        The same ``cfg``.
    """
    hooks = cfg.get('default_hooks')
    if isinstance(hooks, dict):
        for name in [k for k, v in hooks.items()
                     if v is None and k not in _MMENGINE_DEFAULT_HOOKS]:
            hooks.pop(name)
    return cfg


def setup_runner_env(cfg: Config, amp_requested: bool = False) -> Config:
    """Prepare ``cfg`` (and the process group) before the runner is built.

    Call it after ``cfg.launcher`` is set and the command-line options are merged, right
    before ``Runner.from_cfg(cfg)`` / ``RUNNERS.build(cfg)``.

    A ``strategy`` (FSDP, DeepSpeed) is checked and given its optimizer wrapper first
    (:func:`lgdea.engine.runner.strategies.prepare_strategy_cfg`).

    Args:
        cfg: the merged config; edited in place (``env_cfg.dist_cfg.backend``,
            ``model_wrapper_cfg`` or ``strategy``, ``optim_wrapper`` for a strategy,
            ``*_dataloader.collate_fn.type``, ``default_hooks`` entries set to None).
        amp_requested: ``tools/train.py --amp`` was given (refused with DeepSpeed, whose
            precision is configured in the strategy).

    Returns:
        The same ``cfg``.
    """
    resolve_collate_fn_scopes(cfg)
    drop_disabled_default_hooks(cfg)
    launcher = cfg.get('launcher') or 'none'
    if launcher not in _LAUNCHERS:
        raise ValueError(f'launcher must be one of {_LAUNCHERS}, got {launcher!r}')
    prepare_strategy_cfg(cfg, amp_requested=amp_requested)
    if launcher == 'none':
        return cfg

    if not torch_dist.is_initialized():
        _state['owns_group'] = True  # created below, or by mmengine's Runner.setup_env
    if not _state['atexit_registered']:
        atexit.register(teardown_runner_env, False)  # no barrier at exit: peers may be gone
        _state['atexit_registered'] = True

    if cfg.get('env_cfg') is None:
        cfg.env_cfg = ConfigDict()
    if cfg.env_cfg.get('dist_cfg') is None:
        cfg.env_cfg.dist_cfg = ConfigDict(backend='nccl')
    dist_cfg = cfg.env_cfg.dist_cfg
    cuda = torch.cuda.is_available()
    if cuda and dist_cfg.get('backend', 'nccl') != 'gloo':
        return cfg  # mmengine's init_dist and DDP wrapping handle CUDA + nccl
    if not cuda and dist_cfg.get('backend', 'nccl') != 'gloo':
        print_log(f'No CUDA device: using the gloo backend instead of '
                  f'{dist_cfg.get("backend", "nccl")!r}.', logger='current')
        dist_cfg['backend'] = 'gloo'
    if not torch_dist.is_initialized():
        _init_gloo_process_group(launcher, dist_cfg)
    if not cuda:
        _select_cpu_model_wrapper(cfg)
    return cfg


def teardown_runner_env(barrier: bool = True) -> None:
    """Destroy the default process group created after :func:`setup_runner_env`.

    A process group that already existed when :func:`setup_runner_env` was called (e.g. made by
    a test harness or an outer program) is left alone. Safe to call several times.

    Args:
        barrier: wait for the other ranks first (pass False when leaving on an exception: the
            peers may be blocked in another collective).
    """
    owns, _state['owns_group'] = _state['owns_group'], False
    if not owns or not torch_dist.is_available() or not torch_dist.is_initialized():
        return
    if barrier:
        try:
            torch_dist.barrier()
        except Exception:  # noqa: BLE001 - a peer already gone must not mask the real result
            pass
    torch_dist.destroy_process_group()
