"""Train a model from an lgdea config (mmengine Runner), the way mmpretrain's tools/train.py does.

Examples::

    python tools/train.py configs/demo/xxx.py
    python tools/train.py CONFIG --work-dir work_dirs/run1 --cfg-options train_cfg.max_epochs=5
    python tools/train.py CONFIG --resume                # latest checkpoint of the work dir
    python tools/train.py CONFIG --resume work_dirs/run1/epoch_2.pth
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
                        help='enable automatic-mixed-precision training (AmpOptimWrapper)')
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


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge the command-line options into ``cfg`` (``--cfg-options`` after the flags)."""
    cfg.launcher = args.launcher

    # work_dir priority: CLI > config > ./work_dirs/<config stem>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        optim_wrapper = cfg.get('optim_wrapper')
        if optim_wrapper is None:
            raise ValueError(f'--amp: {args.config} has no `optim_wrapper`.')
        wrapper_type = optim_wrapper.get('type', 'OptimWrapper')
        if wrapper_type not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ValueError(f'--amp only converts OptimWrapper; {args.config} uses '
                             f'optim_wrapper.type={wrapper_type!r}. Configure its precision '
                             'in the config instead.')
        if not torch.cuda.is_available():
            raise RuntimeError('--amp needs a CUDA device (mmengine AmpOptimWrapper); none is '
                               'available. Drop --amp to train in float32 on the CPU.')
        optim_wrapper.type = 'AmpOptimWrapper'
        optim_wrapper.setdefault('loss_scale', 'dynamic')

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
