"""Linear-probe (or fine-tuning) evaluation of a checkpoint on the classification tasks of a
config's ``linear_probe`` section (docs/linear_probe.md).

Examples::

    python tools/linear_probe.py configs/demo/clip_demo_p100.py work_dirs/clip/iter_600.pth
    python tools/linear_probe.py configs/clip_vitb_p100.py CKPT --tasks rsna nih
    python tools/linear_probe.py CONFIG CKPT --mode finetune --work-dir work_dirs/ft

Writes ``<work_dir>/<timestamp>_linear_probe_results.json`` (keys
``<task>/linear_probe@<pct>/<metric>``, ``<task>/finetune@<pct>/<metric>`` in finetune mode)
and caches the features in ``<work_dir>/linear_probe_features/``. ``tools/test.py`` runs the
same evaluation after its test loop.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

import mmengine
from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process
from mmengine.runner import Runner

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from lgdea.engine.runner import setup_runner_env, teardown_runner_env  # noqa: E402
from lgdea.evaluation.linear_probe import run_linear_probe_with_runner  # noqa: E402
from lgdea.utils import register_all_modules  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Linear probe / fine-tuning evaluation (lgdea)')
    parser.add_argument('config', help='config file with a `linear_probe` section')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--tasks', nargs='+', default=None,
                        help='names of the tasks to run (default: all of the config)')
    parser.add_argument('--mode', choices=['linear', 'finetune'], default=None,
                        help='frozen features + linear head, or full fine-tuning '
                        '(default: the config\'s linear_probe.mode)')
    parser.add_argument('--work-dir', help='output folder (default: ./work_dirs/<config name>)')
    parser.add_argument('--out', help='also write the metrics to this file (.json / .yaml)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. linear_probe.epochs=20 '
        'linear_probe.tasks.0.fractions="[1,10,100]"')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    """Run the probe; returns the metrics dict."""
    args = parse_args(argv)
    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if not cfg.get('linear_probe'):
        raise ValueError(f'{args.config} has no `linear_probe` section; add one (see '
                         'docs/linear_probe.md, e.g. configs/_base_/datasets/'
                         'synthetic_cxr_demo.py).')
    if not osp.isfile(osp.expanduser(args.checkpoint)) and '://' not in args.checkpoint:
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist.')
    cfg.launcher = 'none'
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    cfg.resume = False
    setup_runner_env(cfg)
    try:
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else _build(cfg)
        runner.load_or_resume()
        results = osp.join(runner.work_dir, f'{runner.timestamp}_linear_probe_results.json')
        metrics = run_linear_probe_with_runner(runner, cfg.linear_probe, args.checkpoint,
                                               results_file=results, tasks=args.tasks,
                                               mode=args.mode)
        if args.out is not None and is_main_process():
            mmengine.mkdir_or_exist(osp.dirname(osp.abspath(args.out)))
            mmengine.dump(dict(metrics), args.out)
    except BaseException:
        teardown_runner_env(barrier=False)
        raise
    teardown_runner_env()
    return metrics


def _build(cfg: Config):
    from lgdea.registry import RUNNERS
    return RUNNERS.build(cfg)


if __name__ == '__main__':
    os.environ.setdefault('LOCAL_RANK', '0')
    main()
