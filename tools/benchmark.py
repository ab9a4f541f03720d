"""Train and evaluate a benchmark spec (methods x pairing ratios x seeds) and write the paper's
comparison tables (markdown + CSV), mean ± std over seeds, best per column in bold.

    python tools/benchmark.py configs/benchmark/demo_synthetic.py            # run all, tables
    python tools/benchmark.py SPEC --iters 200 --seeds 0                     # shorter, one seed
    python tools/benchmark.py SPEC --dispatch print > jobs.txt               # one line per run
    python tools/benchmark.py SPEC --only LGDEA_p5_seed1                     # one run (a job)
    python tools/benchmark.py SPEC --dispatch local --jobs 4 --devices 0 1 2 3
    python tools/benchmark.py SPEC --collect                                 # tables only
    python tools/benchmark.py --compare A/results.json B/results.json        # protocol + numbers

Finished runs (results JSON present) are reused and a trained run without results is only
evaluated, so an interrupted benchmark resumes where it stopped. Outputs go to the spec's
work dir: ``tables/<table>.md|csv``, ``benchmark_results.md``, ``results.json``
(docs/benchmark.md), each table with the protocol card of its runs. ``--compare`` lists every protocol difference between
two ``results.json`` files, then their metrics side by side.
"""
import argparse
import os
import os.path as osp
import sys

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from lgdea.benchmark import (BenchmarkFailedError, BenchmarkRunner,  # noqa: E402
                             FiguresUnavailableError, RunExecutor, RunFailedError, load_spec)
from lgdea.benchmark.compare import (ResultsFileError, compare_results,  # noqa: E402
                                     format_compare, load_results)


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line (``argv`` None = ``sys.argv[1:]``)."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('spec', nargs='?',
                   help='benchmark spec, e.g. configs/benchmark/demo_synthetic.py')
    p.add_argument('--compare', nargs=2, metavar=('A.json', 'B.json'),
                   help='compare two results.json files (protocol differences, then the '
                   'metrics side by side); takes no spec and no other option')
    p.add_argument('--work-dir', help='override the spec work_dir (runs, tables, results)')
    p.add_argument('--seeds', nargs='+', type=int, help='override the spec seeds')
    p.add_argument('--iters', type=int,
                   help='override train_cfg.max_iters of every run (iteration-based configs; '
                   'LGDEA phase lengths scale with it)')
    p.add_argument('--cfg-options', nargs='+', default=[],
                   help='key=value overrides for every run (after the spec ones)')
    p.add_argument('--vary-pair-seed', action='store_true',
                   help='also draw the pairing with the run seed (default: fixed pair_seed)')
    p.add_argument('--gpus-per-run', type=int,
                   help='processes per run (> 1: tools/dist_train.sh / dist_test.sh)')
    p.add_argument('--only', nargs='+', metavar='RUN',
                   help='only these runs: run ids (<name>_p<pairing>_seed<seed>), setting ids '
                   '(<name>_p<pairing>) or names; shell wildcards allowed. With the default '
                   'dispatch no tables are written (use --collect afterwards)')
    p.add_argument('--collect', action='store_true',
                   help='train nothing: gather the finished runs into the tables')
    p.add_argument('--dispatch', choices=['sequential', 'print', 'local'], default='sequential',
                   help='sequential: every run here, one after the other (default); print: '
                   'print one command per unfinished run (for sbatch / xargs); local: run each '
                   'as its own process, --jobs at a time, then write the tables')
    p.add_argument('--jobs', type=int, default=1, help='processes at once with --dispatch local')
    p.add_argument('--devices', nargs='+', default=[],
                   help='with --dispatch local: CUDA_VISIBLE_DEVICES of each process slot')
    p.add_argument('--keep-going', action='store_true',
                   help='sequential: continue after a failed run and report failures at the end')
    p.add_argument('--python', default=sys.executable,
                   help='interpreter of the train / test processes and of printed commands')
    p.add_argument('--no-figures', action='store_true', help='skip the spec figures')
    args = p.parse_args(argv)
    if args.compare:
        defaults = vars(p.parse_args([]))
        extra = [f'--{k.replace("_", "-")}' if k != 'spec' else f'the spec {args.spec}'
                 for k, v in vars(args).items() if k != 'compare' and v != defaults[k]]
        if extra:
            p.error(f'--compare takes two results files and nothing else (got {", ".join(extra)})')
    elif not args.spec:
        p.error('give a benchmark spec (e.g. configs/benchmark/demo_synthetic.py), or '
                '--compare A.json B.json')
    return args


def forwarded_args(args: argparse.Namespace, work_dir: str) -> list:
    """Options a per-run job needs to see the same runs as this invocation."""
    out = ['--work-dir', work_dir]
    if args.seeds:
        out += ['--seeds', *map(str, args.seeds)]
    if args.iters is not None:
        out += ['--iters', str(args.iters)]
    if args.cfg_options:
        out += ['--cfg-options', *args.cfg_options]
    if args.vary_pair_seed:
        out.append('--vary-pair-seed')
    if args.gpus_per_run:
        out += ['--gpus-per-run', str(args.gpus_per_run)]
    return out


def write_tables(runner: BenchmarkRunner, figures: bool) -> dict:
    """Collect, write and print the tables (and figures); returns the records and markdown."""
    records = runner.collect()
    tables_md = runner.write_outputs(records)
    print('\n' + tables_md)
    if figures and runner.spec.figures:
        try:
            for path in runner.make_figures(records):
                print(f'[benchmark] figure written: {path}')
        except FiguresUnavailableError as exc:
            raise SystemExit(f'[benchmark] tables written, but no figures: {exc}')
    return dict(records=records, markdown=tables_md)


def compare(path_a: str, path_b: str) -> dict:
    """Print the protocol differences and the metrics of two results files; returns
    ``dict(comparison=..., markdown=...)``. A bad file ends the tool with its name and what to
    pass instead."""
    try:
        a, b = load_results(path_a), load_results(path_b)
    except ResultsFileError as exc:
        raise SystemExit(f'[benchmark] --compare: {exc}')
    result = compare_results(a, b, path_a, path_b)
    titles = {k: t.get('title', k) for d in (a, b) for k, t in d['tables'].items()}
    markdown = format_compare(result, titles)
    print(markdown, end='')
    return dict(comparison=result, markdown=markdown)


def main(argv=None, executor: RunExecutor = None) -> dict:
    """Run the tool; returns ``dict(records=..., markdown=...)`` when tables were written,
    ``dict(commands=...)`` for ``--dispatch print``, ``dict(comparison=..., markdown=...)``
    for ``--compare``, else ``{}``.

    Args:
        argv: command-line arguments (None = ``sys.argv[1:]``).
        executor: the run executor (tests pass one with a fake launcher).
    """
    args = parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    work_dir = osp.abspath(args.work_dir) if args.work_dir else None
    spec = load_spec(args.spec, work_dir=work_dir, seeds=args.seeds, iters=args.iters,
                     cfg_options=args.cfg_options, vary_pair_seed=args.vary_pair_seed or None,
                     gpus_per_run=args.gpus_per_run)
    runner = BenchmarkRunner(spec, executor=executor or RunExecutor(python=args.python))
    runs = runner.select(args.only)
    figures = not args.no_figures
    if args.collect:
        return write_tables(runner, figures)
    if args.dispatch == 'print':
        try:
            commands = runner.dispatch_commands(runs, forwarded_args(args, spec.work_dir),
                                                args.python)
        except (FileNotFoundError, ValueError) as exc:
            raise SystemExit(f'[benchmark] {exc}')
        print(f'# {len(commands)} unfinished of {len(runs)} run(s); then: python '
              f'tools/benchmark.py {args.spec} --collect --work-dir {spec.work_dir}',
              file=sys.stderr)
        print('\n'.join(commands))
        return dict(commands=commands)
    try:
        if args.dispatch == 'local':
            runner.run_parallel(runs, max(1, args.jobs), forwarded_args(args, spec.work_dir),
                                args.devices, args.python)
        else:
            runner.run_sequential(runs, keep_going=args.keep_going)
    except (RunFailedError, BenchmarkFailedError, FileNotFoundError, ValueError) as exc:
        if not args.only:
            write_tables(runner, figures=False)
        raise SystemExit(f'[benchmark] {exc}')
    if args.only and args.dispatch == 'sequential':
        print(f'[benchmark] tables not written for --only; gather them with: python '
              f'tools/benchmark.py {args.spec} --collect --work-dir {spec.work_dir}')
        return {}
    return write_tables(runner, figures)


if __name__ == '__main__':
    main()
