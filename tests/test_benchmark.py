"""tools/benchmark.py, tools/demo.py and lgdea.benchmark on stored fake results (no training).

Subprocesses are replaced by a fake launcher that records the commands and writes what
tools/train.py / tools/test.py would write (a checkpoint, a results JSON).
"""
import glob
import json
import os
import os.path as osp

import pytest

from lgdea.benchmark import (BenchmarkRunner, RunExecutor, RunFailedError, build_layouts,
                             iters_cfg_options, load_spec, run_state, summarize)
from lgdea.benchmark.figures import make_figures
from lgdea.benchmark.runs import load_config, run_cfg_options, check_pairing
from tool_loader import load_tool as _tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
STAMP = '20260101_120000'




benchmark_tool = _tool('benchmark')
demo_tool = _tool('demo')

SPEC = """
runs = [
    dict(name='CLIP', config='configs/demo/clip_demo_p100.py', pairing=100, group='Full pairing'),
    dict(name='CLIP', config='configs/demo/clip_demo_p5.py', pairing=5, group='Limited pairing'),
    dict(name='LGDEA', config='configs/demo/lgdea_demo_p5.py', pairing=5, group='Limited pairing'),
]
seeds = [0, 1]
tables = ['grounding', 'grounding_pairing', 'retrieval', 'classification']
grounding_classes = ['Atelectasis', 'Lung Opacity']
"""

R, G = 'synthetic_5x200', 'synthetic_grounding'
RSNA = 'synthetic_cls_binary/linear_probe@100/accuracy'
# run id -> metrics written by the fake tools/test.py (None: that run has no results)
FAKE_RESULTS = {
    'CLIP_p100_seed0': {f'{R}/retrieval/P@1': 50.0, f'{R}/retrieval/P@2': 48.0,
                        f'{R}/retrieval/P@5': 40.0, f'{R}/zero_shot/accuracy': 60.0,
                        f'{G}/grounding/cnr_Atelectasis': 0.5,
                        f'{G}/grounding/cnr_Lung Opacity': 0.4, f'{G}/grounding/cnr': 0.45,
                        RSNA: 70.0},
    'CLIP_p100_seed1': {f'{R}/retrieval/P@1': 52.0, f'{R}/retrieval/P@2': 48.0,
                        f'{R}/retrieval/P@5': 44.0, f'{R}/zero_shot/accuracy': 62.0,
                        f'{G}/grounding/cnr_Atelectasis': 0.7,
                        f'{G}/grounding/cnr_Lung Opacity': 0.4, f'{G}/grounding/cnr': 0.55,
                        RSNA: 72.0},
    'CLIP_p5_seed0': {f'{R}/retrieval/P@1': 20.0, f'{R}/retrieval/P@2': 30.0,
                      f'{R}/retrieval/P@5': 45.0, f'{R}/retrieval/P@10': 10.0,
                      f'{R}/zero_shot/accuracy': 20.0, f'{G}/grounding/cnr_Atelectasis': 0.3,
                      f'{G}/grounding/cnr_Lung Opacity': 0.5, f'{G}/grounding/cnr': None},
    'CLIP_p5_seed1': {f'{R}/retrieval/P@1': 22.0, f'{R}/retrieval/P@2': 30.0,
                      f'{R}/retrieval/P@5': 47.0, f'{R}/retrieval/P@10': 10.0,
                      f'{R}/zero_shot/accuracy': 21.0, f'{G}/grounding/cnr_Atelectasis': 0.3,
                      f'{G}/grounding/cnr_Lung Opacity': 0.7, f'{G}/grounding/cnr': 0.4},
    'LGDEA_p5_seed0': {f'{R}/retrieval/P@1': 30.0, f'{R}/retrieval/P@2': 25.0,
                       f'{R}/retrieval/P@5': 46.0, f'{R}/retrieval/P@10': 12.0,
                       f'{R}/zero_shot/accuracy': 25.0, f'{G}/grounding/cnr_Atelectasis': 0.2,
                       f'{G}/grounding/cnr_Lung Opacity': 0.8, f'{G}/grounding/cnr': 0.5},
    'LGDEA_p5_seed1': None,
}

EXPECTED_RETRIEVAL = """\
### Table IV. Image-to-text retrieval on synthetic_5x200, precision@K (%)

| Group | Model | P@1 | P@2 | P@5 | P@10 |
|---|---|---|---|---|---|
| Full pairing | CLIP (100% pairs) | 51.00 ± 1.41 | 48.00 ± 0.00 | 42.00 ± 2.83 | n/a |
| Limited pairing | CLIP (5% pairs) | 21.00 ± 1.41 | 30.00 ± 0.00 | 46.00 ± 1.41 | \
10.00 ± 0.00 |
|  | LGDEA (5% pairs) [1/2 seeds] | 30.00 | 25.00 | 46.00 | 12.00 |

Mean ± sample std over seeds 0, 1; [low, high]: 95% bootstrap interval over seeds and \
evaluation cases; bold: the best value of a column, only where the 95% interval of its paired \
difference to every other row excludes 0; n/a: metric not in the results; [i/n seeds]: only \
i of the n runs of the row have finished.
"""

EXPECTED_GROUNDING = """\
### Table II. Phrase grounding on synthetic_grounding, contrast-to-noise ratio (CNR) per class

| Group | Model | Atelectasis | Lung Opacity | Mean |
|---|---|---|---|---|
| Full pairing | CLIP (100% pairs) | 0.6000 ± 0.1414 | 0.4000 ± 0.0000 | \
0.5000 ± 0.0707 |
| Limited pairing | CLIP (5% pairs) | 0.3000 ± 0.0000 | 0.6000 ± 0.1414 | 0.4000 |
|  | LGDEA (5% pairs) [1/2 seeds] | 0.2000 | 0.8000 | 0.5000 |

Mean ± sample std over seeds 0, 1; [low, high]: 95% bootstrap interval over seeds and \
evaluation cases; bold: the best value of a column, only where the 95% interval of its paired \
difference to every other row excludes 0; n/a: metric not in the results; [i/n seeds]: only \
i of the n runs of the row have finished.
"""


def _write_results(work_dir, metrics, wrapped=False, stamp=STAMP):
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, f'{stamp}_test_results.json')
    with open(path, 'w') as f:
        json.dump(dict(metrics=metrics) if wrapped else metrics, f)
    return path


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / 'spec.py'
    path.write_text(SPEC)
    return str(path)


@pytest.fixture
def fake_work_dir(tmp_path):
    """A work dir where the runs of SPEC left FAKE_RESULTS (one wrapped in 'metrics')."""
    work = str(tmp_path / 'bench')
    for i, (run_id, metrics) in enumerate(FAKE_RESULTS.items()):
        if metrics is not None:
            _write_results(osp.join(work, run_id), metrics, wrapped=i == 1)
    return work


class FakeLauncher:
    """Records the commands; 'trains' by writing the final checkpoint, 'tests' by writing a
    results JSON, or fails with a log message for the run ids in ``fail``."""

    def __init__(self, final_iter=600, fail=()):
        self.calls, self.final_iter, self.fail = [], final_iter, set(fail)
        self.envs, self.cmds = [], []

    def __call__(self, cmd, log_path, env=None):
        self.envs.append(env)
        self.cmds.append(cmd)
        work_dir = cmd[cmd.index('--work-dir') + 1]
        tool = 'train' if osp.join(ROOT, 'tools', 'train.py') in cmd else 'test'
        self.calls.append((osp.basename(work_dir), tool, '--resume' in cmd))
        if osp.basename(work_dir) in self.fail:
            with open(log_path, 'a') as f:
                f.write('Traceback (most recent call last):\nRuntimeError: boom at step 3\n')
            return 1
        if tool == 'train':
            ckpt = osp.join(work_dir, f'iter_{self.final_iter}.pth')
            open(ckpt, 'w').close()
            with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
                f.write(ckpt)
        else:
            _write_results(work_dir, {f'{R}/retrieval/P@1': 42.0})
        return 0


def test_tables_from_stored_results_exact_markdown(spec_file, fake_work_dir, capsys):
    out = benchmark_tool.main([spec_file, '--collect', '--work-dir', fake_work_dir])
    # each table file: the table, then the protocol card of its runs (tested in
    # tests/test_benchmark_protocol.py)
    with open(osp.join(fake_work_dir, 'tables', 'retrieval.md')) as f:
        assert f.read().startswith(EXPECTED_RETRIEVAL + '\n**Protocol** of the 5 run(s) above')
    with open(osp.join(fake_work_dir, 'tables', 'grounding.md')) as f:
        assert f.read().startswith(EXPECTED_GROUNDING + '\n**Protocol** of the 5 run(s) above')
    assert EXPECTED_RETRIEVAL in out['markdown'] and EXPECTED_RETRIEVAL in capsys.readouterr().out

    # Table III: only the settings below 100% pairing
    with open(osp.join(fake_work_dir, 'tables', 'grounding_pairing.md')) as f:
        pairing_md = f.read()
    assert pairing_md.startswith('### Table III.') and 'CLIP (100% pairs)' not in pairing_md
    # no bold: LGDEA has one seed, so no interval can separate CLIP from it
    assert '| Limited pairing | CLIP (5% pairs) | 0.3000 ± 0.0000 |' in pairing_md
    # Table V: missing linear-probe keys render as n/a, present ones aggregate
    with open(osp.join(fake_work_dir, 'tables', 'classification.md')) as f:
        cls_md = f.read()
    assert ('| Full pairing | CLIP (100% pairs) | 61.00 ± 1.41 | n/a | 71.00 ± 1.41 | n/a |'
            in cls_md)

    # CSV: full precision, mean / std / n / bootstrap interval per column (no per-case
    # values in these results: empty interval)
    with open(osp.join(fake_work_dir, 'tables', 'retrieval.csv')) as f:
        lines = f.read().splitlines()
    assert lines[0] == ','.join(['group,row_id,Model,seeds'] + [
        f'P@{k} mean,P@{k} std,P@{k} n,P@{k} ci_low,P@{k} ci_high' for k in (1, 2, 5, 10)])
    assert lines[1] == ('Full pairing,CLIP_p100,CLIP (100% pairs),2,51.0,1.41421356,2,,,48.0,0.0,'
                        '2,,,42.0,2.82842712,2,,,,,0,,')
    assert lines[3].startswith('Limited pairing,LGDEA_p5,LGDEA (5% pairs),1,30.0,,1,')

    # results.json: every run per seed; benchmark_results.md: the tables and the run list
    with open(osp.join(fake_work_dir, 'results.json')) as f:
        summary = json.load(f)
    runs = {r['run_id']: r for r in summary['runs']}
    assert len(runs) == 6 and runs['LGDEA_p5_seed1']['status'] == 'missing'
    assert runs['CLIP_p100_seed1']['metrics'][RSNA] == 72.0  # unwrapped {'metrics': ...}
    assert runs['CLIP_p5_seed0']['early_stopping'] is False
    assert runs['CLIP_p5_seed0']['model_selection'] == 'last'
    assert summary['tables']['retrieval']['rows'][0]['values']['P@1']['n'] == 2
    with open(osp.join(fake_work_dir, 'benchmark_results.md')) as f:
        results_md = f.read()
    assert EXPECTED_GROUNDING in results_md and '| LGDEA_p5_seed1 |' in results_md


def test_resume_launches_only_what_is_missing(tmp_path):
    spec_path = tmp_path / 'spec.py'
    spec_path.write_text(
        "runs = [dict(name='done', config='configs/demo/clip_demo_p100.py', pairing=100),\n"
        "        dict(name='trained', config='configs/demo/clip_demo_p100.py', pairing=100),\n"
        "        dict(name='stopped', config='configs/demo/clip_demo_p100.py', pairing=100),\n"
        "        dict(name='new', config='configs/demo/clip_demo_p5.py', pairing=5)]\n"
        "seeds = [0]\ntables = ['retrieval']\n")
    work = str(tmp_path / 'bench')
    _write_results(osp.join(work, 'done_p100_seed0'), {f'{R}/retrieval/P@1': 1.0})
    for run_id, step in (('trained_p100_seed0', 600), ('stopped_p100_seed0', 200)):
        os.makedirs(osp.join(work, run_id))
        open(osp.join(work, run_id, f'iter_{step}.pth'), 'w').close()
    launcher = FakeLauncher()
    executor = RunExecutor(launcher=launcher, log=lambda msg: None)
    out = benchmark_tool.main([str(spec_path), '--work-dir', work], executor=executor)

    assert launcher.calls == [
        ('trained_p100_seed0', 'test', False),  # final checkpoint, no results: evaluate only
        ('stopped_p100_seed0', 'train', True),  # interrupted: resume, then evaluate
        ('stopped_p100_seed0', 'test', False),
        ('new_p5_seed0', 'train', False),
        ('new_p5_seed0', 'test', False),
    ]
    info = json.load(open(osp.join(work, 'new_p5_seed0', 'benchmark_run.json')))
    assert info['train_finished'] and info['cfg_options'][0] == 'randomness.seed=0'
    assert 'train_seconds' in info and 'test_seconds' in info
    rows = {r.run.run_id: r for r in out['records']}
    assert all(r.status == 'finished' for r in rows.values())
    assert rows['done_p100_seed0'].metrics == {f'{R}/retrieval/P@1': 1.0}

    # a second invocation finds everything finished and launches nothing
    launcher.calls.clear()
    benchmark_tool.main([str(spec_path), '--work-dir', work], executor=executor)
    assert launcher.calls == []


def test_failed_run_names_run_config_and_log_tail(spec_file, tmp_path):
    spec = load_spec(spec_file, work_dir=str(tmp_path / 'bench'), seeds=[0])
    executor = RunExecutor(launcher=FakeLauncher(fail={'CLIP_p5_seed0'}), log=lambda m: None)
    runner = BenchmarkRunner(spec, executor=executor, log=lambda m: None)
    with pytest.raises(RunFailedError) as info:
        runner.run_sequential(runner.runs)
    message = str(info.value)
    assert 'CLIP_p5_seed0' in message and 'configs/demo/clip_demo_p5.py' in message
    assert 'training failed with exit code 1' in message and 'boom at step 3' in message
    # the run before it finished; the one after it was not started
    assert run_state(runner.runs[0]) == 'finished' and run_state(runner.runs[2]) == 'new'


def test_preflight_stops_before_anything_runs(tmp_path):
    spec_path = tmp_path / 'bad.py'
    spec_path.write_text(
        "runs = [dict(name='ok', config='configs/demo/clip_demo_p100.py', pairing=100),\n"
        "        dict(name='gone', config='configs/demo/missing.py', pairing=100),\n"
        "        dict(name='wrong', config='configs/demo/clip_demo_p5.py', pairing=10)]\n")
    launcher = FakeLauncher()
    with pytest.raises(SystemExit) as info:
        benchmark_tool.main([str(spec_path), '--work-dir', str(tmp_path / 'wd')],
                            executor=RunExecutor(launcher=launcher, log=lambda m: None))
    message = str(info.value)
    assert 'nothing was started' in message and 'run gone_p100_seed0: config' in message
    assert 'run wrong_p10_seed0: the spec says pairing=10%' in message
    assert launcher.calls == []


def test_dispatch_print_and_only(spec_file, fake_work_dir, capsys):
    out = benchmark_tool.main([spec_file, '--dispatch', 'print', '--work-dir', fake_work_dir,
                               '--iters', '50'])
    assert len(out['commands']) == 1  # only LGDEA seed 1 has no results
    line = out['commands'][0]
    assert line.startswith(f'cd {ROOT} && ') and 'tools/benchmark.py' in line
    assert f'--only LGDEA_p5_seed1 --work-dir {fake_work_dir} --iters 50' in line
    assert capsys.readouterr().out.strip() == line

    spec = load_spec(spec_file, work_dir=fake_work_dir)
    runner = BenchmarkRunner(spec, log=lambda m: None)
    assert [r.run_id for r in runner.select(['CLIP_p5'])] == ['CLIP_p5_seed0', 'CLIP_p5_seed1']
    assert [r.run_id for r in runner.select(['*_seed1'])][0] == 'CLIP_p100_seed1'
    with pytest.raises(ValueError, match='matches no run'):
        runner.select(['nothing'])


def test_run_options_seed_pair_seed_and_iters_scaling(spec_file, tmp_path):
    spec = load_spec(spec_file, work_dir=str(tmp_path), iters=60, vary_pair_seed=True,
                     cfg_options=['train_dataloader.batch_size=8'])
    lgdea = [r for r in spec.expand() if r.run_id == 'LGDEA_p5_seed1'][0]
    opts = run_cfg_options(lgdea)
    assert opts[:2] == ['randomness.seed=1', 'train_dataloader.dataset.pair_seed=1']
    assert 'train_cfg.max_iters=60' in opts and 'param_scheduler=[]' in opts
    phases = [o for o in opts if o.startswith('lgdea_phases.')]  # 120/180/300 of 600 -> 12/18/30
    assert phases == ['lgdea_phases.0.iters=12', 'lgdea_phases.1.iters=18',
                      'lgdea_phases.2.iters=30']
    assert opts[-1] == 'train_dataloader.batch_size=8'  # user options last (they win)
    cfg = load_config(lgdea.config_path, opts)
    assert cfg.train_cfg.max_iters == 60 and cfg.randomness.seed == 1
    epoch_cfg = load_config(osp.join(ROOT, 'configs/lgdea_vitb_p5.py'))
    with pytest.raises(ValueError, match='iteration-based'):
        iters_cfg_options(epoch_cfg, 100)
    # a pairing that contradicts the config stops the run
    lgdea.setting.pairing = 10.0
    with pytest.raises(ValueError, match='pair_ratio=0.05'):
        check_pairing(lgdea, cfg)


def test_summarize_std_and_missing_values():
    s = summarize([1.0, 3.0, None, float('nan')])
    assert (s.mean, round(s.std, 6), s.n) == (2.0, round(2 ** 0.5, 6), 2)
    assert summarize([1.0, 3.0], ddof=0).std == 1.0
    assert summarize([5.0]).std is None and summarize([]).mean is None


def test_spec_files_load_and_match_their_configs():
    layouts = build_layouts(load_spec(osp.join(ROOT, 'configs/benchmark/demo_synthetic.py'))
                            .datasets)
    assert {'grounding', 'grounding_pairing', 'retrieval', 'classification', 'sweep_K',
            'sweep_L', 'ablation_grounding', 'ablation_retrieval'} <= set(layouts)
    counts = {}
    for path in sorted(glob.glob(osp.join(ROOT, 'configs/benchmark/*.py'))):
        spec = load_spec(path)
        runner = BenchmarkRunner(spec, log=lambda m: None)  # validates the table names
        counts[osp.basename(path)] = len(runner.runs)
        for run in runner.runs[:len(spec.settings)]:
            assert osp.isfile(run.config_path), (path, run.config)
            check_pairing(run, load_config(run.config_path, run.cfg_options))
    assert counts['demo_synthetic.py'] == 42 and counts['kl_sweep_mimic.py'] == 21
    sweep = load_spec(osp.join(ROOT, 'configs/benchmark/kl_sweep_mimic.py'))
    assert sorted(s.sweep.get('K') for s in sweep.settings if 'K' in s.sweep) == [32, 64, 96, 128]


def test_figures_get_runs_and_sweeps(tmp_path, monkeypatch):
    spec_path = tmp_path / 'sweep.py'
    spec_path.write_text(
        "runs = [dict(name='K8', config='configs/demo/lgdea_demo_p5.py', pairing=5,\n"
        "             sweep=dict(K=8)),\n"
        "        dict(name='K16', config='configs/demo/lgdea_demo_p5.py', pairing=5,\n"
        "             sweep=dict(K=16, L=16))]\n"
        "seeds = [0, 1]\ntables = ['sweep_K']\n"
        "figures = dict(grounding=dict(runs=['K16'], per_class=2),\n"
        "               sensitivity=dict(metrics=[('{grounding}/grounding/cnr', 'CNR')]))\n")
    spec = load_spec(str(spec_path), work_dir=str(tmp_path / 'bench'))
    for run, cnr in zip(spec.expand(), (0.2, 0.4, 0.4, 0.8)):
        _write_results(run.work_dir, {f'{G}/grounding/cnr': cnr})
        open(osp.join(run.work_dir, 'iter_600.pth'), 'w').close()
    calls = []
    monkeypatch.setattr('lgdea.benchmark.figures.call_visualization',
                        lambda fn, *args, **kw: calls.append((fn, args, kw)))
    runner = BenchmarkRunner(spec, log=lambda m: None)
    make_figures(spec, runner.collect(), log=lambda m: None)
    (fn, (runs, out_file), kw), (fn2, (sweep, out2, label), _) = calls
    assert fn == 'grounding_figure' and kw == dict(per_class=2)
    config = osp.join(ROOT, 'configs/demo/lgdea_demo_p5.py')
    checkpoint = osp.join(spec.work_dir, 'K16_p5_seed0', 'iter_600.pth')
    assert runs == [dict(name='K16 (5% pairs)', config=config, checkpoint=checkpoint)]
    assert out_file.endswith('figures/grounding.png')
    assert fn2 == 'sensitivity_figure' and label == 'CNR'
    assert sweep['K'][0][:2] == (8.0, pytest.approx(0.3)) and sweep['L'][0][0] == 16.0
    assert sweep['K'][1][1] == pytest.approx(0.6) and out2.endswith('sensitivity_cnr.png')


def test_demo_is_a_wrapper_with_the_same_table(tmp_path, capsys, monkeypatch):
    for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(os, 'cpu_count', lambda: 4)
    work = str(tmp_path / 'demo')
    metrics = {f'{R}/zero_shot/accuracy': 48.93, f'{R}/retrieval/P@1': 49.5,
               f'{R}/retrieval/P@2': 50.0, f'{R}/retrieval/P@5': 50.52,
               f'{R}/retrieval/P@10': 49.9, f'{G}/grounding/cnr': 0.6412}
    _write_results(osp.join(work, 'clip_demo_p100_seed0'), metrics)
    with open(osp.join(work, 'clip_demo_p100_seed0', 'benchmark_run.json'), 'w') as f:
        json.dump(dict(train_seconds=150.0, test_seconds=19.3), f)
    launcher = FakeLauncher()
    rows = demo_tool.main(['--configs', 'configs/demo/clip_demo_p100.py',
                           'configs/demo/clip_demo_p5.py', '--work-dir', work, '--iters', '600'],
                          executor=RunExecutor(launcher=launcher, log=lambda m: None))
    assert launcher.calls == [('clip_demo_p5_seed0', 'train', False),
                              ('clip_demo_p5_seed0', 'test', False)]
    # two runs at once (default --jobs 2), two of the four CPUs' threads each; no end-of-
    # training validation and no linear probe (the demo table shows neither)
    assert launcher.envs == [dict(OMP_NUM_THREADS='2', MKL_NUM_THREADS='2')] * 2
    for cmd in launcher.cmds:
        options = cmd[cmd.index('--cfg-options') + 1:]
        assert 'linear_probe=None' in options and 'train_cfg.val_interval=1000000000' in options
    table = ('| run | zero-shot acc | P@1 | P@2 | P@5 | P@10 | grounding CNR | train samples/s '
             '| wall time (s) |\n'
             '|---|---|---|---|---|---|---|---|---|\n'
             '| clip_demo_p100 | 48.9 | 49.5 | 50.0 | 50.5 | 49.9 | 0.64 | n/a | 169.3 |\n')
    printed = capsys.readouterr().out
    assert 'Synthetic CXR benchmark (accuracy and P@K in %, chance = 20%):' in printed
    assert table in printed and '| clip_demo_p5 | n/a | 42.0 | n/a |' in printed
    with open(osp.join(work, 'demo_results.md')) as f:
        assert f.read().startswith(table)
    assert rows[0] == dict(name='clip_demo_p100', seconds=169.3, metrics=metrics)
    assert json.load(open(osp.join(work, 'demo_results.json')))[1]['name'] == 'clip_demo_p5'


def test_demo_jobs_run_at_once_and_user_threads_win(tmp_path, monkeypatch):
    """``--jobs 2`` has both runs in flight together; ``--jobs 1`` runs them in order;
    OMP_NUM_THREADS set by the user is left alone."""
    import threading
    monkeypatch.setenv('OMP_NUM_THREADS', '3')
    in_flight, peak, lock = [0], [0], threading.Lock()
    both_started = threading.Barrier(2, timeout=10)

    class SlowLauncher(FakeLauncher):
        def __call__(self, cmd, log_path, env=None):
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            if '--resume' not in cmd and osp.join(ROOT, 'tools', 'train.py') in cmd:
                both_started.wait()  # deadlocks (BrokenBarrierError) if runs were sequential
            try:
                return super().__call__(cmd, log_path, env)
            finally:
                with lock:
                    in_flight[0] -= 1

    configs = ['configs/demo/clip_demo_p100.py', 'configs/demo/clip_demo_p5.py']
    launcher = SlowLauncher()
    demo_tool.main(['--configs', *configs, '--work-dir', str(tmp_path / 'a'), '--iters', '600'],
                   executor=RunExecutor(launcher=launcher, log=lambda m: None))
    assert peak[0] == 2 and launcher.envs == [None] * 4
    peak[0] = 0
    sequential = FakeLauncher()
    demo_tool.main(['--configs', *configs, '--work-dir', str(tmp_path / 'b'), '--iters', '600',
                    '--jobs', '1'], executor=RunExecutor(launcher=sequential, log=lambda m: None))
    assert [c[:2] for c in sequential.calls] == [
        ('clip_demo_p100_seed0', 'train'), ('clip_demo_p100_seed0', 'test'),
        ('clip_demo_p5_seed0', 'train'), ('clip_demo_p5_seed0', 'test')]


def test_demo_default_compares_three_methods_at_the_same_pairing():
    """The default demo: CLIP, the evidence-text control and LGDEA, each config loading and
    all at 5% pairing (a row at another pairing would compare pairings, not methods)."""
    spec = demo_tool.demo_spec(demo_tool.parse_args([]))
    assert [s.name for s in spec.settings] == [
        'clip_demo_p5', 'clip_evidence_demo_p5', 'lgdea_p5_cls_pseudo_b96']
    assert {s.pairing for s in spec.settings} == {5.0}
