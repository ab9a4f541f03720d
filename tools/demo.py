"""Train and evaluate the demo configs on the embedded synthetic CXR benchmark.

    python tools/demo.py                # CLIP, CLIP on evidence phrases (the control) and
                                        # LGDEA, all at 5% pairing (README table)
    python tools/demo.py --configs configs/demo/clip_demo_p5.py --iters 200
    python tools/demo.py --jobs 1       # one run after the other, all cores each

Each run is ``tools/train.py`` then ``tools/test.py`` in its own process
(:class:`lgdea.benchmark.RunExecutor`); finished runs (test results present) are reused and a
trained run is only evaluated, so an interrupted demo resumes. While a run trains or is
evaluated, its iteration / total, loss and ETA are printed from its log (docs/benchmark.md,
section 1). ``--jobs`` runs (default 2) go
at once, each with ``cpus // jobs`` math threads: on a 2-core CPU that is about 20% faster than
one after the other, because the small demo models do not keep two threads busy. Run
``<config stem>_seed<seed>`` works in ``<work-dir>/<config stem>_seed<seed>``. The metrics
table is printed, with the protocol card of its runs under it (docs/benchmark.md, "Protocol
card"), and written to ``<work-dir>/demo_results.md`` / ``.json`` (each row of the JSON with
its run's card under ``protocol``). For several seeds, mean ± std and the paper's
table layouts use ``tools/benchmark.py`` (docs/benchmark.md).
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from concurrent.futures import ThreadPoolExecutor

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from lgdea.benchmark import (BenchmarkSpec, RunExecutor, RunSpec, SettingSpec,  # noqa: E402
                             build_layouts, build_table, collect_run, format_markdown_grid,
                             thread_env)
from lgdea.benchmark.protocol import cards_of, format_card_markdown, table_card  # noqa: E402
from lgdea.benchmark.runs import load_config  # noqa: E402
from lgdea.benchmark.spec import ROOT, resolve_datasets  # noqa: E402

#: ``val_interval`` beyond any demo schedule: no end-of-training validation.
_NO_VAL = 10 ** 9
#: Three methods on the same 5% pairing: CLIP on the report text, CLIP on the extracted evidence
#: phrases (the control: the same text as LGDEA, no unpaired data) and the best measured LGDEA
#: (``H_I`` global token, cross-modal pseudo-links, the control's 64 paired studies plus 32
#: unpaired images and reports per step; docs/benchmark.md, section 8). The Eq. 15-17 LGDEA is
#: ``configs/demo/lgdea_demo_p5_repaired.py``, the paper-faithful one ``lgdea_demo_p5.py``.
DEFAULT_CONFIGS = [
    'configs/demo/clip_demo_p5.py',
    'configs/demo/clip_evidence_demo_p5.py',
    'configs/demo/unpaired/lgdea_p5_cls_pseudo_b96.py',
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--configs', nargs='+', default=DEFAULT_CONFIGS)
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--iters', type=int, default=None,
                   help='override train_cfg.max_iters (phase lengths scale with it)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--cfg-options', nargs='*', default=[],
                   help='extra key=value overrides for every run')
    p.add_argument('--val', action='store_true',
                   help='also run the end-of-training validation (held-out pretraining loss and '
                   'P@K); off by default because the test that follows reports the same '
                   'retrieval metrics (saves about 25 s per run)')
    p.add_argument('--linear-probe', action='store_true',
                   help="also run the configs' linear probe after each test (docs/"
                   'linear_probe.md); off by default because the demo table does not show it '
                   '(tools/benchmark.py reports it)')
    p.add_argument('--jobs', type=int, default=2,
                   help='runs at once, each with cpus // jobs math threads (default 2)')
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error('--jobs must be at least 1')
    defaults = []
    if not args.val:
        defaults.append(f'train_cfg.val_interval={_NO_VAL}')
    if not args.linear_probe:
        defaults.append('linear_probe=None')
    args.cfg_options = defaults + list(args.cfg_options)
    return args


def demo_spec(args) -> BenchmarkSpec:
    """The demo as a one-seed benchmark spec: one setting per config, named by its stem, the
    pairing read from the config (with ``--cfg-options``)."""
    settings = []
    for config in args.configs:
        path = config if osp.isabs(config) else osp.join(ROOT, config)
        cfg = load_config(path, args.cfg_options)
        dataset = (cfg.get('train_dataloader') or {}).get('dataset') or {}
        stem = osp.splitext(osp.basename(config))[0]
        settings.append(SettingSpec(name=stem, config=config, label=stem,
                                    pairing=100 * float(dataset.get('pair_ratio', 1.0))))
    return BenchmarkSpec(settings=settings, seeds=[args.seed], tables=['overview'],
                         work_dir=args.work_dir, datasets=resolve_datasets('synthetic'),
                         iters=args.iters, cfg_options=list(args.cfg_options), title='demo')


def demo_runs(spec: BenchmarkSpec) -> list:
    """Runs of the demo spec in the demo's work-dir layout ``<work-dir>/<stem>_seed<seed>``."""
    runs = []
    for run in spec.expand():
        run_id = f'{run.name}_seed{run.seed}'
        runs.append(RunSpec(setting=run.setting, seed=run.seed,
                            work_dir=osp.join(spec.work_dir, run_id),
                            cfg_options=run.cfg_options, iters=run.iters, run_id=run_id))
    return runs


def main(argv=None, executor: RunExecutor = None):
    """Run the demo; returns the table rows (``dict(name, seconds, metrics)`` per config).

    Args:
        argv: command-line arguments (None = ``sys.argv[1:]``).
        executor: the run executor (tests pass one with a fake launcher).
    """
    args = parse_args(argv)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    start = time.time()
    spec = demo_spec(args)
    runs = demo_runs(spec)
    jobs = min(args.jobs, len(runs))
    executor = executor or RunExecutor()
    executor.env.update(thread_env(jobs))
    with ThreadPoolExecutor(jobs) as pool:  # each run is its own train / test subprocesses
        futures = [pool.submit(executor.execute, run, f'{i + 1}/{len(runs)}')
                   for i, run in enumerate(runs)]
        for future in futures:
            future.result()
    records = [collect_run(run) for run in runs]
    layout = build_layouts(spec.datasets)['overview']
    table = format_markdown_grid(build_table(layout, spec.settings, records, spec.seeds),
                                 mark_best=False)
    cards = cards_of(records)
    card_md = format_card_markdown(table_card(cards), 'demo_results.json, `protocol` of each row')
    total = time.time() - start
    print('\nSynthetic CXR benchmark (accuracy and P@K in %, chance = 20%):\n')
    print(table)
    print(f'\ntotal wall time: {total:.0f} s\n')
    print(card_md)
    with open(osp.join(spec.work_dir, 'demo_results.md'), 'w') as f:
        f.write(table + f'\n\ntotal wall time: {total:.0f} s\n\n' + card_md)
    rows = [dict(name=r.run.name, seconds=r.wall_time_s, metrics=r.metrics) for r in records]
    with open(osp.join(spec.work_dir, 'demo_results.json'), 'w') as f:
        json.dump([dict(row, protocol=cards.get(r.run.run_id))
                   for row, r in zip(rows, records)], f, indent=1)
    return rows


if __name__ == '__main__':
    main()
