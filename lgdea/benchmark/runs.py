"""One benchmark run: its config overrides, its state on disk, and train / test subprocesses.

A run lives in its work dir. What is there decides what is left to do (:func:`run_state`):

========================  =====================================================  ============
state                     on disk                                                next step
========================  =====================================================  ============
``finished``              ``*_test_results.json`` (written by ``tools/test.py``)  nothing
``trained``               training marked finished in ``benchmark_run.json``,     test only
                          or a checkpoint at the configured last iter / epoch
``interrupted``           earlier checkpoints only                               train with
                                                                                 ``--resume``,
                                                                                 then test
``new``                   no checkpoint                                          train, test
========================  =====================================================  ============

:class:`RunExecutor` runs ``tools/train.py`` then ``tools/test.py`` (``tools/dist_*.sh`` for
several processes per run) in their own processes, appends their output to
``<work_dir>/benchmark.log`` and records wall times, and per step the hardware and the code
commit (for the protocol card, :mod:`lgdea.benchmark.protocol`), in
``<work_dir>/benchmark_run.json``.
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .progress import PROGRESS_TAG, LogProgress
from .spec import ROOT, RunSpec, format_pairing

__all__ = ['RUN_INFO_FILE', 'RUN_LOG_FILE', 'RunFailedError', 'RunOutcome', 'RunExecutor',
           'load_config', 'iters_cfg_options', 'run_cfg_options', 'check_pairing', 'prepare_run',
           'find_checkpoints', 'select_checkpoint', 'latest_results_file', 'read_run_info',
           'write_run_info', 'run_state', 'launch_subprocess']

#: Per-run bookkeeping (wall times, whether training finished, the options used).
RUN_INFO_FILE = 'benchmark_run.json'
#: Output of the train / test subprocesses of a run (appended).
RUN_LOG_FILE = 'benchmark.log'
_CKPT_RE = re.compile(r'^(iter|epoch)_(\d+)\.pth$')
_LOG_TAIL_LINES = 40

Launcher = Callable[[List[str], str, Optional[Dict[str, str]]], int]


class RunFailedError(RuntimeError):
    """A train / test subprocess of a run exited with an error.

    The message names the run, its config, the command, and ends with the last lines of the
    run's log.
    """

    def __init__(self, run: RunSpec, step: str, cmd: Sequence[str], returncode: int,
                 log_path: str):
        self.run, self.step, self.cmd = run, step, list(cmd)
        self.returncode, self.log_path = returncode, log_path
        tail = ''
        if osp.isfile(log_path):
            with open(log_path, errors='replace') as f:
                tail = ''.join(f.readlines()[-_LOG_TAIL_LINES:])
        super().__init__(
            f'run {run.run_id} (config {run.config}): {step} failed with exit code '
            f'{returncode}\n  command: {" ".join(cmd)}\n  log: {log_path}\n'
            f'--- last lines of {log_path} ---\n{tail}')


def load_config(config_path: str, cfg_options: Sequence[str] = ()):
    """The mmengine Config of ``config_path`` with ``key=value`` overrides merged exactly as
    ``tools/train.py --cfg-options`` merges them (custom imports are not executed)."""
    from mmengine.config import Config, DictAction
    if not osp.isfile(config_path):
        raise FileNotFoundError(f'config {config_path} does not exist')
    cfg = Config.fromfile(config_path, import_custom_modules=False)
    if cfg_options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--cfg-options', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(['--cfg-options', *cfg_options]).cfg_options)
    return cfg


def iters_cfg_options(cfg, iters: int) -> List[str]:
    """Overrides that shorten (or lengthen) an iteration-based config to ``iters`` steps.

    ``train_cfg.max_iters``, the validation and checkpoint intervals become ``iters``; the
    phase lengths of an ``LGDEAPhaseHook`` are scaled proportionally (at least 1 step each,
    the last phase takes the remainder); under 100 steps the warm-up / cosine schedulers are
    dropped (``param_scheduler=[]``).
    """
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_epochs' in train_cfg or 'Epoch' in str(train_cfg.get('type', '')):
        raise ValueError(f'--iters / `iters` needs an iteration-based config; {cfg.filename} '
                         'trains by epochs (override train_cfg.max_epochs with cfg_options)')
    opts = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={iters}']
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        if hook.get('type') == 'LGDEAPhaseHook':
            phases, key = hook['phases'], f'custom_hooks.{i}.phases'
            if isinstance(phases, str):                 # a top-level phase table by name
                if phases not in cfg:
                    raise ValueError(f'--iters: the LGDEAPhaseHook of {cfg.filename} names the '
                                     f'phase table `{phases}`, which the config lacks')
                phases, key = cfg[phases], phases
            if any('iters' not in ph for ph in phases):
                raise ValueError(f'--iters: the LGDEAPhaseHook phases of {cfg.filename} are not '
                                 'given in iterations')
            if iters < len(phases):
                raise ValueError(f'--iters {iters}: fewer steps than the {len(phases)} LGDEA '
                                 'phases')
            total = sum(ph['iters'] for ph in phases)
            lengths = [max(1, round(ph['iters'] * iters / total)) for ph in phases]
            lengths[-1] = iters - sum(lengths[:-1])
            if lengths[-1] < 1:
                raise ValueError(f'--iters {iters} is too short for the LGDEA phases {lengths}')
            opts += [f'{key}.{j}.iters={n}' for j, n in enumerate(lengths)]
    if iters < 100:
        opts.append('param_scheduler=[]')
    return opts


def run_cfg_options(run: RunSpec, cfg=None) -> List[str]:
    """All ``--cfg-options`` of a run: seed (and pair seed), ``iters`` overrides, then the
    spec's and the setting's own options (which win over the ones before)."""
    opts = [f'randomness.seed={run.seed}']
    if run.vary_pair_seed:
        opts.append(f'train_dataloader.dataset.pair_seed={run.seed}')
    if run.iters is not None:
        cfg = cfg if cfg is not None else load_config(run.config_path, run.cfg_options)
        opts += iters_cfg_options(cfg, int(run.iters))
    return opts + list(run.cfg_options)


def check_pairing(run: RunSpec, cfg) -> None:
    """Stop when the spec's ``pairing`` differs from the config's pair ratio (the row labels
    would be wrong)."""
    dataset = (cfg.get('train_dataloader') or {}).get('dataset') or {}
    ratio = dataset.get('pair_ratio') if hasattr(dataset, 'get') else None
    if ratio is not None and abs(float(ratio) * 100 - run.setting.pairing) > 1e-6:
        raise ValueError(f'run {run.run_id}: the spec says pairing='
                         f'{format_pairing(run.setting.pairing)}% but {run.config} trains with '
                         f'train_dataloader.dataset.pair_ratio={ratio}; fix `pairing` or add a '
                         'cfg_options override')


def prepare_run(run: RunSpec) -> Tuple[List[str], object]:
    """``(cfg_options, config)`` of a run, checked: the config exists, ``iters`` applies to
    it and its pair ratio matches the spec's ``pairing``.

    Raises:
        FileNotFoundError, ValueError: with the run id in the message.
    """
    try:
        opts = run_cfg_options(run, load_config(run.config_path, run.cfg_options))
        cfg = load_config(run.config_path, opts)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f'run {run.run_id}: {exc}') from exc
    except ValueError as exc:
        raise ValueError(f'run {run.run_id}: {exc}') from exc
    check_pairing(run, cfg)
    return opts, cfg


def find_checkpoints(work_dir: str) -> List[Tuple[str, int, str]]:
    """``(kind, step, path)`` of the ``iter_N.pth`` / ``epoch_N.pth`` files, by step."""
    found = []
    for path in glob.glob(osp.join(work_dir, '*.pth')):
        m = _CKPT_RE.match(osp.basename(path))
        if m:
            found.append((m.group(1), int(m.group(2)), path))
    return sorted(found, key=lambda c: (c[0], c[1]))


def select_checkpoint(work_dir: str, model_selection: Optional[str] = 'last') -> Optional[str]:
    """The checkpoint to evaluate: the newest ``best_*.pth`` when the config selects a best
    model (``model_selection`` other than ``'last'``), else the one mmengine's
    ``last_checkpoint`` names, else the highest ``iter_N`` / ``epoch_N``."""
    if model_selection not in (None, 'last'):
        best = sorted(glob.glob(osp.join(work_dir, 'best_*.pth')), key=osp.getmtime)
        if best:
            return best[-1]
    marker = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(marker):
        with open(marker) as f:
            named = f.read().strip()
        for candidate in (named, osp.join(work_dir, osp.basename(named))):
            if named and osp.isfile(candidate):
                return candidate
    ckpts = find_checkpoints(work_dir)
    return ckpts[-1][2] if ckpts else None


def latest_results_file(work_dir: str) -> Optional[str]:
    """The newest ``<timestamp>_test_results.json`` of a work dir (None if there is none)."""
    files = sorted(glob.glob(osp.join(work_dir, '*_test_results.json')))
    return files[-1] if files else None


def read_run_info(work_dir: str) -> dict:
    """``benchmark_run.json`` of a run ({} when absent)."""
    path = osp.join(work_dir, RUN_INFO_FILE)
    if not osp.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def write_run_info(work_dir: str, **updates) -> dict:
    """Update ``benchmark_run.json`` of a run (written atomically)."""
    info = read_run_info(work_dir)
    info.update(updates)
    os.makedirs(work_dir, exist_ok=True)
    tmp = osp.join(work_dir, RUN_INFO_FILE + '.tmp')
    with open(tmp, 'w') as f:
        json.dump(info, f, indent=1)
    os.replace(tmp, osp.join(work_dir, RUN_INFO_FILE))
    return info


def _final_step(cfg) -> Optional[Tuple[str, int]]:
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_epochs' in train_cfg:
        return 'epoch', int(train_cfg['max_epochs'])
    if 'max_iters' in train_cfg:
        return 'iter', int(train_cfg['max_iters'])
    return None


def run_state(run: RunSpec, cfg=None) -> str:
    """``'finished'``, ``'trained'``, ``'interrupted'`` or ``'new'`` (module docstring).

    Args:
        run: the run.
        cfg: its config with all overrides (loaded when needed and not given).
    """
    if latest_results_file(run.work_dir):
        return 'finished'
    if read_run_info(run.work_dir).get('train_finished'):
        return 'trained'
    ckpts = find_checkpoints(run.work_dir)
    if not ckpts:
        return 'new'
    if cfg is None:
        cfg = load_config(run.config_path, run_cfg_options(run))
    final = _final_step(cfg)
    if final and any(kind == final[0] and step >= final[1] for kind, step, _ in ckpts):
        return 'trained'
    return 'interrupted'


def _tool(name: str) -> str:
    return osp.join(ROOT, 'tools', name)


#: Variables that set how many threads the math libraries of a subprocess use.
THREAD_ENV_VARS = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')


def thread_env(jobs: int, cpus: Optional[int] = None) -> Dict[str, str]:
    """Thread counts for ``jobs`` processes sharing this machine's CPUs: ``cpus // jobs``
    each (at least 1), so that concurrent runs do not oversubscribe the cores. Empty when
    the user set any of :data:`THREAD_ENV_VARS` (their choice wins) or for one job.

    On the 2-core reference machine two demo runs at one thread each finish together in
    127 s where one after the other at two threads take 160 s (CLIP 5%, 150 steps each).
    """
    if jobs <= 1 or any(v in os.environ for v in THREAD_ENV_VARS):
        return {}
    per_job = max(1, (cpus or os.cpu_count() or 1) // jobs)
    return {v: str(per_job) for v in THREAD_ENV_VARS}


def launch_subprocess(cmd: List[str], log_path: str, env: Optional[Dict[str, str]] = None,
                      cwd: str = ROOT) -> int:
    """Run ``cmd`` in ``cwd`` with stdout and stderr appended to ``log_path``; the exit code."""
    with open(log_path, 'a') as log:
        log.write(f'\n# {time.strftime("%Y-%m-%d %H:%M:%S")} $ {" ".join(cmd)}\n')
        log.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                              env=None if env is None else {**os.environ, **env})
    return proc.returncode


@dataclass
class RunOutcome:
    """What :meth:`RunExecutor.execute` did: ``action`` is ``'reused'`` (results were there),
    ``'evaluated'`` (test only), ``'resumed'`` or ``'trained'``; ``seconds`` this call took."""

    run: RunSpec
    action: str
    seconds: float
    results_file: str


class RunExecutor:
    """Brings a run to the ``finished`` state with the fewest subprocesses.

    Args:
        python: interpreter of the subprocesses (default: this one).
        launcher: ``launcher(cmd, log_path, env) -> exit code``; default
            :func:`launch_subprocess` in ``cwd`` (tests pass a fake).
        log: progress printer (``print`` by default, flushed).
        cwd: directory the subprocesses run in (relative paths of the configs, such as
            ``data/...``, resolve there); default: the repository root. Tools and configs are
            passed as absolute paths.
        env: extra environment variables of every subprocess (e.g. :func:`thread_env`).
        progress_interval: seconds between reads of the run's log while a step runs; each
            new iteration line mmengine logged is reported as ``<run>: training progress:
            train iter 150/600 (25%), loss 2.3100, ETA 0:02:40``
            (:class:`~lgdea.benchmark.progress.LogProgress`).
    """

    def __init__(self, python: str = sys.executable, launcher: Optional[Launcher] = None,
                 log: Optional[Callable[[str], None]] = None, cwd: str = ROOT,
                 env: Optional[Dict[str, str]] = None, progress_interval: float = 10.0):
        self.python = python
        self.progress_interval = progress_interval
        self.cwd = cwd
        self.env = dict(env or {})
        self.launcher = launcher or partial(launch_subprocess, cwd=cwd)
        self.log = log or (lambda msg: print(msg, flush=True))

    # commands ---------------------------------------------------------------------------
    def train_command(self, run: RunSpec, cfg_options: Sequence[str],
                      resume: bool = False) -> List[str]:
        """``tools/train.py`` (or ``tools/dist_train.sh``) command of a run."""
        if run.gpus > 1:
            cmd = ['bash', _tool('dist_train.sh'), run.config_path, str(run.gpus)]
        else:
            cmd = [self.python, _tool('train.py'), run.config_path]
        cmd += ['--work-dir', run.work_dir] + (['--resume'] if resume else [])
        return cmd + (['--cfg-options', *cfg_options] if cfg_options else [])

    def test_command(self, run: RunSpec, checkpoint: str,
                     cfg_options: Sequence[str]) -> List[str]:
        """``tools/test.py`` (or ``tools/dist_test.sh``) command of a run."""
        if run.gpus > 1:
            cmd = ['bash', _tool('dist_test.sh'), run.config_path, checkpoint, str(run.gpus)]
        else:
            cmd = [self.python, _tool('test.py'), run.config_path, checkpoint]
        cmd += ['--work-dir', run.work_dir]
        return cmd + (['--cfg-options', *cfg_options] if cfg_options else [])

    # execution --------------------------------------------------------------------------
    def _launch(self, run: RunSpec, step: str, cmd: List[str], prefix: str, cfg) -> float:
        log_path = osp.join(run.work_dir, RUN_LOG_FILE)
        env = dict(self.env, **({'PYTHON': self.python} if run.gpus > 1 else {}))
        self._record_protocol(run, step, env)
        start = time.time()
        final = _final_step(cfg)
        with LogProgress(log_path, lambda text: self.log(f'{prefix}: {step} {PROGRESS_TAG} '
                                                         f'{text}'),
                         self.progress_interval,
                         train_iters=final[1] if final and final[0] == 'iter' else None):
            code = self.launcher(cmd, log_path, env or None)
        if code:
            raise RunFailedError(run, step, cmd, code, log_path)
        return time.time() - start

    def _record_protocol(self, run: RunSpec, step: str, env: Dict[str, str]) -> None:
        """Note in ``benchmark_run.json`` what only this machine knows about a step: its
        hardware (:func:`~lgdea.benchmark.protocol.environment_facts`) and the code version
        (:func:`~lgdea.benchmark.protocol.code_version`), under ``environment[step]`` and
        ``code[step]``; the protocol card reads them."""
        from .protocol import code_version, environment_facts
        info = read_run_info(run.work_dir)
        environment = dict(info.get('environment') or {})
        environment[step] = environment_facts(run.gpus, {**os.environ, **env})
        code = dict(info.get('code') or {})
        code[step] = code_version()
        write_run_info(run.work_dir, environment=environment, code=code)

    def execute(self, run: RunSpec, position: str = '') -> RunOutcome:
        """Train (or resume) and evaluate ``run`` as far as its state requires.

        Args:
            run: the run.
            position: ``'i/N'`` shown in the progress lines.

        Raises:
            RunFailedError: a subprocess failed (the message ends with its log).
            FileNotFoundError, ValueError: missing config, pairing mismatch, bad ``iters``.
        """
        prefix = f'[benchmark] {position + " " if position else ""}{run.run_id}'
        start = time.time()
        results = latest_results_file(run.work_dir)
        if results:
            self.log(f'{prefix}: finished earlier, results reused ({results})')
            return RunOutcome(run, 'reused', 0.0, results)
        opts, cfg = prepare_run(run)
        os.makedirs(run.work_dir, exist_ok=True)
        info = read_run_info(run.work_dir)
        if info.get('cfg_options') not in (None, opts):
            self.log(f'{prefix}: warning: earlier steps of this run used other cfg options '
                     f'({info["cfg_options"]}); delete {run.work_dir} to redo it')
        state = run_state(run, cfg)
        log_path = osp.join(run.work_dir, RUN_LOG_FILE)
        action = 'evaluated'
        if state in ('new', 'interrupted'):
            action = 'trained' if state == 'new' else 'resumed'
            self.log(f'{prefix}: {"training" if state == "new" else "resuming training"} '
                     f'{run.config} (log: {log_path})')
            write_run_info(run.work_dir, run_id=run.run_id, config=run.config,
                           cfg_options=opts, train_finished=False)
            seconds = self._launch(run, 'training',
                                   self.train_command(run, opts, resume=state == 'interrupted'),
                                   prefix, cfg)
            info = read_run_info(run.work_dir)
            write_run_info(run.work_dir, train_finished=True,
                           train_seconds=round(info.get('train_seconds', 0.0) + seconds, 1))
        checkpoint = select_checkpoint(run.work_dir, cfg.get('model_selection', 'last'))
        if checkpoint is None:
            raise RunFailedError(run, 'training (no checkpoint written)', [], 1, log_path)
        self.log(f'{prefix}: evaluating {osp.basename(checkpoint)}')
        seconds = self._launch(run, 'evaluation', self.test_command(run, checkpoint, opts),
                               prefix, cfg)
        results = latest_results_file(run.work_dir)
        if results is None:
            raise RunFailedError(run, 'evaluation (no *_test_results.json written: test_cfg '
                                 'must be VLTestLoop / VLMultiTestLoop)', [], 1, log_path)
        write_run_info(run.work_dir, run_id=run.run_id, config=run.config, cfg_options=opts,
                       checkpoint=checkpoint, test_seconds=round(seconds, 1),
                       results_file=osp.basename(results))
        elapsed = time.time() - start
        self.log(f'{prefix}: {action} in {elapsed:.1f} s')
        return RunOutcome(run, action, elapsed, results)
