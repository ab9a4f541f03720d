"""Evaluate a checkpoint with an lgdea config (mmengine Runner), like mmpretrain's tools/test.py.

Examples::

    python tools/test.py CONFIG work_dirs/run1/epoch_10.pth
    python tools/test.py CONFIG CKPT --out results/metrics.json --out-item metrics
    python tools/test.py CONFIG CKPT --out results/preds.pkl         # raw predictions
    python tools/test.py CONFIG CKPT --no-linear-probe               # skip the linear probe
    python tools/test.py CONFIG CKPT --linear-probe-only             # only the linear probe
    bash tools/dist_test.sh CONFIG CKPT 2

A config with a ``linear_probe`` section also gets the linear-probe evaluation after the test
loop (docs/linear_probe.md): its ``<task>/linear_probe@<pct>/<metric>`` keys are logged and
merged into the same ``<work_dir>/<timestamp>_test_results.json``.

See docs/get_started.md.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

import mmengine
from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process
from mmengine.evaluator import DumpResults
from mmengine.logging import print_log
from mmengine.runner import Runner

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from lgdea.engine.runner import build_runner as build_strategy_runner  # noqa: E402
from lgdea.engine.runner import (check_checkpoint_covers_model,  # noqa: E402
                                 check_finite_model, set_dataloader_defaults,
                                 setup_runner_env, strategy_type, teardown_runner_env)
from lgdea.evaluation.linear_probe import (merge_results_json,  # noqa: E402
                                           run_linear_probe_with_runner)
from lgdea.utils import register_all_modules  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``argv`` None = ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(description='Test (evaluate) a model (lgdea)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory to save the evaluation logs '
                        '(default: ./work_dirs/<config file name without extension>)')
    parser.add_argument('--out', help='the file to write the results to (metrics: .json / '
                        '.yaml / .pkl; predictions: .pkl)')
    parser.add_argument('--out-item', choices=['metrics', 'pred'],
                        help='what --out holds: the metrics or the raw predictions '
                        '(default: pred)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, "key=value" pairs (e.g. test_dataloader.batch_size=8); '
        'lists as key="[a,b]" or key=a,b (quotes needed, no spaces)')
    parser.add_argument('--allow-partial-checkpoint', action='store_true',
                        help='evaluate a checkpoint that lacks some trainable parameters of the '
                        'model (they keep their initial values); refused by default')
    parser.add_argument('--no-pin-memory', action='store_true',
                        help='set pin_memory=False in every dataloader')
    probe = parser.add_mutually_exclusive_group()
    probe.add_argument('--no-linear-probe', action='store_true',
                       help='skip the linear probe of the config\'s `linear_probe` section')
    probe.add_argument('--linear-probe-only', action='store_true',
                       help='run only the linear probe (no test loop); its metrics go to '
                       '<work_dir>/<timestamp>_test_results.json')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if args.out is None and args.out_item is not None:
        parser.error('--out-item needs --out (the file to write to).')
    if args.linear_probe_only and args.out is not None and args.out_item != 'metrics':
        parser.error('--linear-probe-only makes no predictions; use --out-item metrics.')
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge the command-line options into ``cfg`` (``--cfg-options`` after the flags)."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if osp.isdir(osp.expanduser(args.checkpoint)):
        raise IsADirectoryError(
            f'checkpoint {args.checkpoint} is a directory (a DeepSpeed checkpoint or an FSDP '
            "one saved with state_dict_cfg='local'); tools/test.py loads one file. Convert a "
            'DeepSpeed checkpoint with the zero_to_fp32.py script DeepSpeed writes into it, or '
            "train FSDP with state_dict_cfg='full' (configs/_base_/strategies/fsdp.py).")
    if not osp.isfile(osp.expanduser(args.checkpoint)) and '://' not in args.checkpoint:
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist.')
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    for field in ('test_dataloader', 'test_cfg', 'test_evaluator'):
        if cfg.get(field) is None:
            raise ValueError(f'{args.config} has no `{field}`; tools/test.py needs '
                             'test_dataloader, test_cfg and test_evaluator.')
    set_dataloader_defaults(cfg, no_pin_memory=args.no_pin_memory)
    drop_training_strategy(cfg)
    return cfg


def drop_training_strategy(cfg: Config) -> None:
    """Evaluate an FSDP / DeepSpeed config with the standard Runner (in place).

    Those strategies shard parameters and optimizer state for training; the evaluation loops and
    metrics use the whole model, and the checkpoint (FSDP ``state_dict_cfg='full'``, or a
    DeepSpeed one converted to a single file) holds the full weights, so ``strategy`` (and a
    ``runner_type='FlexibleRunner'`` that only served it) is removed. Other strategies are kept.
    """
    kind = strategy_type(cfg)
    if kind not in ('FSDPStrategy', 'DeepSpeedStrategy'):
        return
    cfg.strategy = None
    if str(cfg.get('runner_type', '')).split('.')[-1] == 'FlexibleRunner':
        cfg.pop('runner_type')
    print_log(f'tools/test.py: strategy {kind} is for training; evaluating with the standard '
              'Runner (DDP under a launcher).', logger='current')


def build_runner(cfg: Config) -> Runner:
    """``RUNNERS.build(cfg)`` for a ``runner_type``, ``FlexibleRunner`` for a remaining
    ``strategy``, else ``Runner.from_cfg``."""
    return build_strategy_runner(cfg)


def _results_file(runner: Runner) -> str:
    """``<work_dir>/<timestamp>_test_results.json``, the file the VL test loops write."""
    return osp.join(runner.work_dir, f'{runner.timestamp}_test_results.json')


def main(argv: Optional[List[str]] = None) -> dict:
    """Evaluate; returns the metrics of ``runner.test()`` plus those of the linear probe.

    Args:
        argv: command-line arguments without the program name (None = ``sys.argv[1:]``).
    """
    args = parse_args(argv)
    register_all_modules()
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    out_item = args.out_item or 'pred'
    if args.out is not None and out_item == 'pred' and not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out {args.out}: predictions are written as a pickle; use a .pkl '
                         'file, or --out-item metrics for .json / .yaml.')
    probe_cfg = None if args.no_linear_probe else cfg.get('linear_probe')
    if args.linear_probe_only and not probe_cfg:
        raise ValueError(f'{args.config} has no `linear_probe` section; --linear-probe-only '
                         'needs one (docs/linear_probe.md).')
    setup_runner_env(cfg)
    try:
        runner = build_runner(cfg)
        # Load now (runner.test() then skips its own load) and refuse NaN / inf weights.
        runner.load_or_resume()
        missing = check_checkpoint_covers_model(runner.model, args.checkpoint,
                                                allow_partial=args.allow_partial_checkpoint)
        if missing:
            print_log(f'tools/test.py: {len(missing)} trainable parameter(s) are not in '
                      f'{args.checkpoint} and keep their initial values '
                      '(--allow-partial-checkpoint).', logger='current', level=30)
        check_finite_model(runner.model, args.checkpoint)
        if args.linear_probe_only:
            metrics = dict(run_linear_probe_with_runner(
                runner, probe_cfg, args.checkpoint, results_file=_results_file(runner)))
        else:
            if args.out is not None and out_item == 'pred':
                runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
            metrics = runner.test()
            if probe_cfg:
                results_file = getattr(runner.test_loop, 'results_file', None)
                if results_file is None:  # a loop that writes no JSON: start one
                    results_file = _results_file(runner)
                    if is_main_process():
                        merge_results_json(results_file, metrics)
                metrics = dict(metrics)
                metrics.update(run_linear_probe_with_runner(
                    runner, probe_cfg, args.checkpoint, results_file=results_file))
        if args.out is not None and out_item == 'metrics' and is_main_process():
            mmengine.mkdir_or_exist(osp.dirname(osp.abspath(args.out)))
            mmengine.dump(metrics, args.out)
    except BaseException:
        teardown_runner_env(barrier=False)
        raise
    teardown_runner_env()
    return metrics


if __name__ == '__main__':
    main()
