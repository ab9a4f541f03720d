"""Run a benchmark spec: sequentially, as one process per run, or as printed job commands;
then collect the finished runs into tables.

Outputs under the spec's ``work_dir``:

- ``<run_id>/``: one work dir per run (checkpoints, logs, ``*_test_results.json``,
  ``benchmark_run.json``);
- ``tables/<table>.md`` and ``tables/<table>.csv`` for every table of the spec;
- ``benchmark_results.md``: every table, each followed by the protocol card of its runs
  (:mod:`.protocol`), plus the list of runs (status, wall time, early stopping);
- ``results.json``: every run per seed (metrics, wall time, early stopping, checkpoint), the
  aggregated tables (each with its card) and ``protocol``: the card of every finished run and
  the fields they share / differ in.
"""
import datetime
import fnmatch
import json
import os
import os.path as osp
import shlex
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

from .comparisons import compute_comparisons, format_comparisons
from .figures import make_figures
from .progress import latest_relayed, read_from
from .protocol import (PROTOCOL_FIELDS, cards_of, code_version, format_card_markdown,
                       format_value, table_card, table_run_ids)
from .results import RunRecord, collect_run
from .runs import (RunExecutor, RunFailedError, latest_results_file, prepare_run,
                   thread_env)
from .spec import ROOT, BenchmarkSpec, RunSpec
from .tables import (Table, build_layouts, build_table, format_csv, format_markdown,
                     table_to_json)

__all__ = ['BenchmarkRunner', 'BenchmarkFailedError', 'format_run_list']


class BenchmarkFailedError(RuntimeError):
    """Some runs failed (with ``keep_going``, or in parallel dispatch); the message lists them."""

    def __init__(self, failures: Sequence[str]):
        self.failures = list(failures)
        super().__init__(f'{len(self.failures)} run(s) failed:\n\n' + '\n\n'.join(self.failures))


class BenchmarkRunner:
    """Runs and collects the runs of a :class:`BenchmarkSpec`.

    Args:
        spec: the benchmark spec.
        executor: runs one run (default :class:`RunExecutor`; tests pass one with a fake
            launcher).
        log: progress printer (``print`` flushed by default).
    """

    def __init__(self, spec: BenchmarkSpec, executor: Optional[RunExecutor] = None,
                 log: Optional[Callable[[str], None]] = None):
        self.spec = spec
        self.log = log or (lambda msg: print(msg, flush=True))
        self.executor = executor or RunExecutor(log=self.log)
        self.runs = spec.expand()
        self._relayed: Dict[int, tuple] = {}  # parallel dispatch: slot -> (log offset, line)
        self.layouts = build_layouts(spec.datasets, spec.linear_probe_pct,
                                     spec.grounding_classes, spec.columns)
        unknown = [t for t in spec.tables if t not in self.layouts]
        if unknown:
            raise ValueError(f'unknown tables {unknown}; known: {sorted(self.layouts)}')

    # selection --------------------------------------------------------------------------
    def select(self, only: Optional[Sequence[str]] = None) -> List[RunSpec]:
        """Runs whose run id, setting id (``<name>_p<pairing>``) or name matches one of the
        ``only`` patterns (shell wildcards); every run when ``only`` is empty."""
        if not only:
            return list(self.runs)
        chosen = [r for r in self.runs if any(
            fnmatch.fnmatchcase(key, pattern) for pattern in only
            for key in (r.run_id, r.setting.setting_id, r.name))]
        if not chosen:
            raise ValueError(f'--only {" ".join(only)} matches no run; runs: '
                             f'{[r.run_id for r in self.runs]}')
        return chosen

    def pending(self, runs: Sequence[RunSpec]) -> List[RunSpec]:
        """The runs without results yet."""
        return [r for r in runs if latest_results_file(r.work_dir) is None]

    def preflight(self, runs: Sequence[RunSpec]) -> None:
        """Check every setting with an unfinished run before anything starts (config exists,
        ``iters`` applies, pairing matches); raises one error listing every problem."""
        problems, seen = [], set()
        for run in self.pending(runs):
            if run.setting.setting_id in seen:
                continue
            seen.add(run.setting.setting_id)
            try:
                prepare_run(run)
            except (FileNotFoundError, ValueError) as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError('the spec has problems, nothing was started:\n  '
                             + '\n  '.join(problems))

    # running ----------------------------------------------------------------------------
    def run_sequential(self, runs: Sequence[RunSpec], keep_going: bool = False) -> None:
        """Bring every run to ``finished`` one after the other (finished runs are reused).

        Raises:
            ValueError: :meth:`preflight` found problems (nothing was started).
            RunFailedError: the first failure (default), or
            BenchmarkFailedError: every failure at the end (``keep_going``).
        """
        self.preflight(runs)
        failures = []
        start = time.time()
        for i, run in enumerate(runs):
            try:
                self.executor.execute(run, position=f'{i + 1}/{len(runs)}')
            except (RunFailedError, FileNotFoundError, ValueError) as exc:
                if not keep_going:
                    raise
                failures.append(str(exc))
                self.log(f'[benchmark] {i + 1}/{len(runs)} {run.run_id} FAILED, continuing:\n'
                         f'{exc}')
        self.log(f'[benchmark] {len(runs)} run(s) done in {time.time() - start:.1f} s')
        if failures:
            raise BenchmarkFailedError(failures)

    def job_command(self, run: RunSpec, tool_args: Sequence[str] = (),
                    python: str = sys.executable) -> List[str]:
        """The command that trains and evaluates one run on its own:
        ``python tools/benchmark.py SPEC --only RUN_ID [tool_args]``."""
        return [python, 'tools/benchmark.py', self.spec.path, '--only', run.run_id,
                *tool_args]

    def dispatch_commands(self, runs: Sequence[RunSpec], tool_args: Sequence[str] = (),
                          python: str = sys.executable) -> List[str]:
        """One shell line per unfinished run (``cd <repo> && python tools/benchmark.py SPEC
        --only RUN_ID ...``), for sbatch / xargs / a job array."""
        self.preflight(runs)
        return [f'cd {shlex.quote(ROOT)} && ' + shlex.join(self.job_command(r, tool_args, python))
                for r in self.pending(runs)]

    def run_parallel(self, runs: Sequence[RunSpec], jobs: int, tool_args: Sequence[str] = (),
                     devices: Sequence[str] = (), python: str = sys.executable,
                     poll_seconds: float = 2.0) -> None:
        """Run every unfinished run as its own ``--only`` process, ``jobs`` at a time.

        Args:
            runs: the runs.
            jobs: processes at once; each gets ``cpus // jobs`` math threads
                (:func:`~lgdea.benchmark.runs.thread_env`) unless ``OMP_NUM_THREADS`` /
                ``MKL_NUM_THREADS`` are set.
            tool_args: options forwarded to every process.
            devices: if given, process slot ``i`` sees only ``devices[i % len(devices)]``
                (``CUDA_VISIBLE_DEVICES``), e.g. one GPU per run.
            python: interpreter of the processes.
            poll_seconds: how often finished processes are checked.

        Raises:
            BenchmarkFailedError: some processes failed (after all of them ended).
        """
        self.preflight(runs)
        queue = self.pending(runs)
        log_dir = osp.join(self.spec.work_dir, 'dispatch_logs')
        os.makedirs(log_dir, exist_ok=True)
        running: Dict[int, tuple] = {}  # slot -> (run, process, log path, start)
        failures, done, total = [], 0, len(queue)
        self.log(f'[benchmark] {total} run(s) to do, {jobs} at a time (logs: {log_dir})')
        threads = thread_env(jobs)
        while queue or running:
            for slot in range(jobs):
                if slot in running or not queue:
                    continue
                run = queue.pop(0)
                env = dict(os.environ, **threads)
                if devices:
                    env['CUDA_VISIBLE_DEVICES'] = str(devices[slot % len(devices)])
                log_path = osp.join(log_dir, f'{run.run_id}.log')
                # the log is appended to: relay only what this process writes
                self._relayed[slot] = (osp.getsize(log_path) if osp.isfile(log_path) else 0,
                                       None)
                with open(log_path, 'a') as out:
                    proc = subprocess.Popen(self.job_command(run, tool_args, python), cwd=ROOT,
                                            stdout=out, stderr=subprocess.STDOUT, env=env)
                running[slot] = (run, proc, log_path, time.time())
                self.log(f'[benchmark] started {run.run_id} (slot {slot}, log: {log_path})')
            time.sleep(poll_seconds if running else 0)
            for slot, (run, proc, log_path, start) in list(running.items()):
                self._relay_progress(slot, log_path)
                if proc.poll() is None:
                    continue
                self._relayed.pop(slot, None)
                del running[slot]
                done += 1
                status = 'done' if proc.returncode == 0 else f'FAILED ({proc.returncode})'
                self.log(f'[benchmark] {done}/{total} {run.run_id} {status} in '
                         f'{time.time() - start:.1f} s')
                if proc.returncode:
                    with open(log_path, errors='replace') as f:
                        tail = ''.join(f.readlines()[-40:])
                    failures.append(f'run {run.run_id} (config {run.config}) failed; log '
                                    f'{log_path}:\n{tail}')
        if failures:
            raise BenchmarkFailedError(failures)

    def _relay_progress(self, slot: int, log_path: str) -> None:
        """Repeat the newest progress line a ``--only`` process wrote to its log since the
        last call (``self._relayed[slot]``: read offset and last line relayed)."""
        offset, last = self._relayed.get(slot, (0, None))
        text, offset = read_from(log_path, offset)
        line = latest_relayed(text)
        if line is not None and line != last:
            self.log(line)
            last = line
        self._relayed[slot] = (offset, last)

    # collecting -------------------------------------------------------------------------
    def collect(self) -> List[RunRecord]:
        """Records of every run of the spec (finished or missing)."""
        return [collect_run(r) for r in self.runs]

    def build_tables(self, records: Sequence[RunRecord]) -> List[Table]:
        """The spec's tables from the records."""
        return [build_table(self.layouts[key], self.spec.settings, records, self.spec.seeds,
                            self.spec.std_ddof) for key in self.spec.tables]

    def write_outputs(self, records: Sequence[RunRecord]) -> str:
        """Write ``tables/*.md|csv``, ``<work_dir>/benchmark_results.md`` and ``results.json``,
        every table with the protocol card of its runs (:mod:`.protocol`); returns the markdown
        of the tables and their cards (what the tool prints)."""
        spec = self.spec
        tables = self.build_tables(records)
        table_dir = osp.join(spec.work_dir, 'tables')
        os.makedirs(table_dir, exist_ok=True)
        cards = cards_of(records)
        table_cards = {t.layout.key: table_card({rid: cards[rid]
                                                 for rid in table_run_ids(t, records)})
                       for t in tables}
        sections = []
        for table in tables:
            md = format_markdown(table) + '\n' + format_card_markdown(
                table_cards[table.layout.key])
            sections.append(md)
            with open(osp.join(table_dir, f'{table.layout.key}.md'), 'w') as f:
                f.write(md)
            with open(osp.join(table_dir, f'{table.layout.key}.csv'), 'w') as f:
                f.write(format_csv(table))
        diffs = compute_comparisons(spec.comparisons, records, spec.datasets)
        compared = {s for c in spec.comparisons for s in (c['a'], c['b'])}
        comparison_card = table_card({r.run.run_id: cards[r.run.run_id] for r in records
                                      if r.run.run_id in cards
                                      and r.run.setting.setting_id in compared})
        if diffs:
            sections.append(format_comparisons(diffs) + '\n'
                            + format_card_markdown(comparison_card))
        tables_md = '\n'.join(sections)
        finished = sum(r.status == 'finished' for r in records)
        now = datetime.datetime.now().isoformat(timespec='seconds')
        collected_with = code_version()
        header = (f'# {spec.title}\n\nSpec: `{spec.path}`; work dir: `{spec.work_dir}`; '
                  f'{finished}/{len(records)} runs finished; generated {now} with code '
                  f'{format_value("code_commit", collected_with)}. Under every table: the '
                  'protocol card of its runs.\n')
        with open(osp.join(spec.work_dir, 'benchmark_results.md'), 'w') as f:
            f.write(header + '\n' + tables_md + '\n' + format_run_list(records))
        tables_json = {}
        for t in tables:
            tables_json[t.layout.key] = dict(table_to_json(t), protocol=table_cards[t.layout.key])
        protocol = dict(table_card(cards), fields=dict(PROTOCOL_FIELDS), cards=cards,
                        collected_with=collected_with)
        summary = dict(spec=spec.path, work_dir=spec.work_dir, generated=now, seeds=spec.seeds,
                       std_ddof=spec.std_ddof, datasets=spec.datasets,
                       runs=[r.to_json() for r in records],
                       tables=tables_json,
                       comparisons=[d.to_json() for d in diffs],
                       comparisons_protocol=comparison_card if diffs else None,
                       protocol=protocol)
        with open(osp.join(spec.work_dir, 'results.json'), 'w') as f:
            json.dump(summary, f, indent=1)
        self.log(f'[benchmark] {finished}/{len(records)} runs finished; tables written to '
                 f'{table_dir}, {osp.join(spec.work_dir, "benchmark_results.md")} and results.json')
        return tables_md

    def make_figures(self, records: Sequence[RunRecord]) -> List[str]:
        """Figures of ``spec.figures`` (see :mod:`lgdea.benchmark.figures`)."""
        return make_figures(self.spec, records, log=self.log)


def format_run_list(records: Sequence[RunRecord]) -> str:
    """The ``## Runs`` section of the generated ``<work_dir>/benchmark_results.md``."""
    lines = ['## Runs', '',
             '| run | config | seed | status | wall time (s) | early stopping | '
             'model selection |', '|---|---|---|---|---|---|---|']
    for r in records:
        wall = 'n/a' if r.wall_time_s is None else f'{r.wall_time_s:.1f}'
        early = {None: 'n/a', True: 'yes', False: 'no'}[r.early_stopping]
        lines.append(f'| {r.run.run_id} | `{r.run.config}` | {r.run.seed} | {r.status} | '
                     f'{wall} | {early} | {r.model_selection or "n/a"} |')
    return '\n'.join(lines) + '\n'
