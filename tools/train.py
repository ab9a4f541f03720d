"""Train a model from an lgdea config (mmengine Runner), the way mmpretrain's tools/train.py does.

Examples::

    python tools/train.py configs/demo/xxx.py
    python tools/train.py CONFIG --work-dir work_dirs/run1 --cfg-options train_cfg.max_epochs=5
    python tools/train.py CONFIG --resume                # latest checkpoint of the work dir
    python tools/train.py CONFIG --resume work_dirs/run1/epoch_2.pth
    python tools/train.py CONFIG --amp                   # bf16 autocast (GPU or CPU)
    bash tools/dist_train.sh CONFIG 2                    # torchrun, --launcher pytorch

See docs/get_started.md.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

# Make `lgdea` importable when the script is run from a checkout without installation.
_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from lgdea.engine.runner import build_runner as build_strategy_runner  # noqa: E402
from lgdea.engine.runner import (check_hook_args, set_dataloader_defaults,  # noqa: E402
                                 setup_runner_env, teardown_runner_env)
from lgdea.utils import register_all_modules  # noqa: E402

def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``argv`` None = ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(description='Train a model (lgdea)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models '
                        '(default: ./work_dirs/<config file name without extension>)')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint; without a value, resume from the latest '
        'checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='mixed-precision training: bfloat16 autocast, no loss scaling '
                        '(AutocastOptimWrapper; GPU or CPU)')
    parser.add_argument('--amp-dtype', choices=['bfloat16', 'float16'], default=None,
                        help='with --amp: bfloat16 (default) or float16 (mmengine '
                        'AmpOptimWrapper with a dynamic loss scale; CUDA only)')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate checkpoints during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the actual / base batch size')
    parser.add_argument('--no-pin-memory', action='store_true',
                        help='set pin_memory=False in every dataloader')
    parser.add_argument('--no-persistent-workers', action='store_true',
                        help='set persistent_workers=False in every dataloader')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, "key=value" pairs (e.g. train_cfg.max_epochs=5); '
        'lists as key="[a,b]" or key=a,b, nested lists as key="[(a,b),(c,d)]" (quotes needed, '
        'no spaces)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


#: optim wrapper types ``--amp`` converts (a config may already name the target).
AMP_CONVERTIBLE = ('OptimWrapper', 'AmpOptimWrapper', 'AutocastOptimWrapper')


def convert_to_amp(cfg: Config, dtype: str = 'bfloat16',
                   config_name: str = 'the config') -> None:
    """``--amp``: turn ``cfg.optim_wrapper`` into a mixed-precision wrapper (in place).

    - ``'bfloat16'``: ``AutocastOptimWrapper`` (bf16 autocast, no loss scaling; GPU or CPU);
    - ``'float16'``: mmengine ``AmpOptimWrapper(dtype='float16', loss_scale='dynamic')``
      (CUDA only: float16 gradients underflow without the loss scale).

    Other keys of the wrapper (``optimizer``, ``clip_grad``, ...) are kept.
    """
    optim_wrapper = cfg.get('optim_wrapper')
    if optim_wrapper is None:
        raise ValueError(f'--amp: {config_name} has no `optim_wrapper`.')
    wrapper_type = optim_wrapper.get('type', 'OptimWrapper')
    if wrapper_type not in AMP_CONVERTIBLE:
        raise ValueError(f'--amp only converts {"/".join(AMP_CONVERTIBLE)}; {config_name} '
                         f'uses optim_wrapper.type={wrapper_type!r}. Configure its precision '
                         'in the config instead.')
    for key in ('dtype', 'loss_scale', 'device_type'):
        optim_wrapper.pop(key, None)
    if dtype == 'bfloat16':
        if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
            raise RuntimeError(f'--amp: {torch.cuda.get_device_name()} does not support '
                               'bfloat16; use --amp --amp-dtype float16.')
        optim_wrapper.type = 'AutocastOptimWrapper'
        optim_wrapper.dtype = 'bfloat16'
    elif dtype == 'float16':
        if not torch.cuda.is_available():
            raise RuntimeError('--amp --amp-dtype float16 needs a CUDA device (mmengine '
                               'AmpOptimWrapper); on the CPU use --amp (bfloat16).')
        optim_wrapper.type = 'AmpOptimWrapper'
        optim_wrapper.dtype = 'float16'
        optim_wrapper.loss_scale = 'dynamic'
    else:
        raise ValueError(f'--amp-dtype must be bfloat16 or float16, got {dtype!r}')


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge the command-line options into ``cfg`` (``--cfg-options`` after the flags)."""
    cfg.launcher = args.launcher

    # work_dir priority: CLI > config > ./work_dirs/<config stem>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    if args.amp_dtype is not None and not args.amp:
        raise ValueError('--amp-dtype only applies with --amp; add --amp or drop --amp-dtype.')
    if args.amp:
        convert_to_amp(cfg, args.amp_dtype or 'bfloat16', args.config)

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    if args.auto_scale_lr:
        if not isinstance(cfg.get('auto_scale_lr'), dict) or \
                'base_batch_size' not in cfg.auto_scale_lr:
            raise ValueError(f'--auto-scale-lr: {args.config} needs '
                             '`auto_scale_lr = dict(base_batch_size=...)` (the total batch size '
                             'the learning rate was tuned for).')
        cfg.auto_scale_lr.enable = True

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # After --cfg-options so that the defaults see the final num_workers; values set in the
    # config or on the command line still win over the defaults.
    set_dataloader_defaults(cfg, args.no_pin_memory, args.no_persistent_workers)
    return cfg


def build_runner(cfg: Config) -> Runner:
    """``RUNNERS.build(cfg)`` for a ``runner_type``, ``FlexibleRunner`` for a ``strategy`` (FSDP,
    DeepSpeed: ``configs/_base_/strategies/``), else ``Runner.from_cfg``."""
    return build_strategy_runner(cfg)


def main(argv: Optional[List[str]] = None) -> Runner:
    """Train; returns the runner after ``runner.train()``.

    Args:
        argv: command-line arguments without the program name (None = ``sys.argv[1:]``).
    """
    args = parse_args(argv)
    register_all_modules()
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    setup_runner_env(cfg, amp_requested=args.amp)
    try:
        runner = build_runner(cfg)
        check_hook_args(runner)
        runner.train()
    except BaseException:
        teardown_runner_env(barrier=False)
        raise
    teardown_runner_env()
    return runner


if __name__ == '__main__':
    main()
