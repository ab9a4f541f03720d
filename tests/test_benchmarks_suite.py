"""The benchmark suite cannot rot: ``benchmarks/gpu_suite.sh --dry-run`` runs every benchmark at
tiny sizes on the CPU and writes the JSON and markdown the GPU run writes. Fast (default suite):
the script's ``--plan`` of the GPU run is parsed by each benchmark's own command line, and the
``--plan`` of the dry run is executed in this process (no interpreter start-up per step); slow
(``-m slow``): the script itself runs the dry run in subprocesses. The step benchmark's
ratio/target bookkeeping and its option guards are checked directly. No timing is asserted
(speed targets live in benchmarks/, as ratios in one run)."""
import argparse
import importlib.util
import json
import os
import os.path as osp
import runpy
import shlex
import subprocess
import sys

import pytest
import torch

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))


def _load(name):
    path = osp.join(ROOT, 'benchmarks', f'{name}.py')
    sys.path.insert(0, osp.dirname(path))
    try:
        spec = importlib.util.spec_from_file_location(f'_bench_{name}', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(osp.dirname(path))
    return module


def _plan(*flags, out):
    """The commands ``gpu_suite.sh --plan`` prints, as argument lists (interpreter first)."""
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run(['bash', osp.join(ROOT, 'benchmarks', 'gpu_suite.sh'), '--plan',
                           *flags, '--out', str(out)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines and all(line.startswith('+ ') for line in lines), proc.stdout
    return [shlex.split(line[2:]) for line in lines]


class _Parsed(Exception):
    pass


def test_gpu_suite_plan_of_the_gpu_run_parses(tmp_path, monkeypatch):
    """Every command of the GPU run is accepted by its benchmark's command line (parsed only:
    the GPU run itself needs CUDA)."""
    commands = _plan(out=tmp_path / 'full')
    scripts = [osp.basename(c[1]) for c in commands]
    assert scripts == ['bench_lgdea_step.py', 'bench_data_loading.py',
                       'bench_evidence_graph.py', 'suite_report.py']
    assert not (tmp_path / 'full').exists()                 # --plan writes nothing
    step = commands[0]
    assert {'--amp', '--device', 'cuda', 'vitb224'} <= set(step)   # the GPU run: bf16 ...
    assert step[step.index('--attention-impl') + 1] == 'sdpa'       # ... and fused attention
    real_parse = argparse.ArgumentParser.parse_args

    def parse_only(self, args=None, namespace=None):
        raise _Parsed(real_parse(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', parse_only)
    for command in commands:
        monkeypatch.setattr(sys, 'argv', command[1:])
        with pytest.raises(_Parsed):
            runpy.run_path(osp.join(ROOT, command[1]), run_name='__main__')


def _run_planned(commands, monkeypatch):
    """Run the planned commands in this process, in order, as ``python SCRIPT ARGS`` would."""
    monkeypatch.syspath_prepend(ROOT)
    threads = torch.get_num_threads()
    try:
        for command in commands:
            assert command[0] == sys.executable
            monkeypatch.setattr(sys, 'argv', command[1:])
            with pytest.raises(SystemExit) as exit_info:
                runpy.run_path(osp.join(ROOT, command[1]), run_name='__main__')
            assert exit_info.value.code in (0, None), command
    finally:
        torch.set_num_threads(threads)


def _check_dry_run_outputs(out):
    for name in ('step.json', 'data.json', 'graph.json', 'suite.json', 'suite.md'):
        assert (out / name).is_file(), name
    suite = json.loads((out / 'suite.json').read_text())
    assert suite['mode'] == 'dry-run'
    assert {'torch', 'python'} <= set(suite['environment'])

    step = suite['step']
    assert step['benchmark'] == 'train_step' and step['amp'] is True        # bf16, as on a GPU
    assert step['attention_impl'] == 'sdpa'
    rows = {r['method']: r for r in step['rows']}
    assert set(rows) == {'lgdea', 'clip_ev'}
    for r in rows.values():
        assert r['setting'] == 'tiny64' and r['batch'] == step['batch'] == 4
        assert r['median_s'] > 0 and r['images_per_s'] > 0 and r['peak_mem_mb'] > 0
        assert r['peak_mem_kind'] == 'rss_sampled' and r['mfu'] is None  # CPU: no peak
        assert r['flops_per_step'] > 0 and r['achieved_tflops'] > 0
    lg = rows['lgdea']
    assert lg['reference'] == 'clip_ev' and lg['target'] == pytest.approx(1.10)
    assert lg['ratio'] == pytest.approx(lg['median_s'] / rows['clip_ev']['median_s'])
    assert lg['meets_target'] == (lg['ratio'] <= 1.10)
    assert [c['name'] for c in suite['checks']] == ['tiny64 lgdea / clip_ev']

    data = suite['data']
    assert data['step_time_s'] == pytest.approx(lg['median_s']) and data['batch'] == 4
    variants = {r['variant']: r for r in data['rows']}
    assert set(variants) == {'raw', 'preprocessed'}
    assert max(variants['preprocessed']['height'], variants['preprocessed']['width']) == 128
    for r in variants.values():
        assert r['images_per_s_per_worker'] > 0 and r['workers_to_keep_up'] >= 1

    graph = suite['graph']
    kinds = [(r['kind'], r['n']) for r in graph['rows']]
    assert kinds == [('in_batch', 32), ('faiss_flat', 1000), ('faiss_ivf', 1000)]
    assert 0 < graph['rows'][0]['min_ms'] <= graph['rows'][0]['per_step_ms']
    ivf = graph['rows'][2]
    assert 0 <= ivf['recall_at_k'] <= 1 and ivf['nlist'] >= 1 and ivf['refresh_extrapolated']
    for r in graph['rows']:
        assert r['per_step_ms'] > 0 and r['peak_mem_mb'] >= 0

    md = (out / 'suite.md').read_text()
    for heading in ('## Train step', '## Checks', '## Data loading', '## Evidence graph'):
        assert heading in md
    assert '| tiny64 | lgdea |' in md and '| faiss_ivf | 1000 |' in md


def test_gpu_suite_dry_run_plan_runs_in_process(tmp_path, monkeypatch):
    """The dry run's commands, run in this process: the JSON and markdown of the suite."""
    monkeypatch.chdir(ROOT)
    out = tmp_path / 'suite'
    commands = _plan('--dry-run', out=out)
    out.mkdir()
    _run_planned(commands, monkeypatch)
    _check_dry_run_outputs(out)


@pytest.mark.slow  # ~60 s on the shared 2-core machine: three processes import lgdea, two models
def test_gpu_suite_dry_run_writes_json_and_markdown(tmp_path):
    out = tmp_path / 'suite'
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1')
    proc = subprocess.run(['bash', osp.join(ROOT, 'benchmarks', 'gpu_suite.sh'), '--dry-run',
                           '--out', str(out)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _check_dry_run_outputs(out)


def test_step_ratios_references_and_targets():
    bench = _load('bench_baselines_step')
    assert bench.with_references(['lgdea']) == ['clip_ev', 'lgdea']
    assert bench.with_references(['lgdea', 'clip_ev']) == ['clip', 'clip_ev', 'lgdea']
    assert bench.with_references(['gloria', 'mgca']) == ['clip', 'gloria', 'mgca']
    rows = [dict(method=m, median_s=s) for m, s in
            (('clip', 1.0), ('clip_ev', 0.5), ('lgdea', 0.6), ('gloria', 1.5), ('mgca', 1.2))]
    bench.add_ratios(rows)
    by = {r['method']: r for r in rows}
    assert by['clip']['ratio'] is None and by['clip_ev']['target'] is None
    assert by['clip_ev']['ratio'] == pytest.approx(0.5)
    assert by['lgdea']['ratio'] == pytest.approx(1.2) and by['lgdea']['meets_target'] is False
    assert by['gloria']['meets_target'] is False and by['mgca']['meets_target'] is True
    # every method's config has a builder and every target names a known method
    assert set(bench.TARGETS) | set(bench.REFERENCES) <= set(bench.METHODS)


def test_step_speed_options_reach_every_method_config():
    bench = _load('bench_baselines_step')
    args = bench.build_parser(['lgdea'], '').parse_args(
        ['--grad-checkpointing', '--compile', 'aot_eager', '--attention-impl', 'explicit'])
    options = bench.speed_options(args)
    for name in bench.METHODS:
        cfg = bench.build_method_cfg(name, 'tiny64', options)
        image = cfg['image_encoder']
        assert image['gradient_checkpointing'] is True, name
        assert image['torch_compile'] == dict(backend='aot_eager'), name
        text = cfg['text_encoder'].get('encoder', cfg['text_encoder'])   # GLoRIA wraps it
        assert text['torch_compile'] == dict(backend='aot_eager'), name
    assert bench.build_method_cfg('lgdea', 'tiny64', options)['neck']['attention_impl'] == \
        'explicit'
    plain = bench.speed_options(bench.build_parser(['lgdea'], '').parse_args(['--compile']))
    assert plain['image'] == dict(gradient_checkpointing=False, torch_compile=True)
    assert plain['attention_impl'] == 'sdpa'


@pytest.mark.parametrize('argv, message', [
    (['--device', 'tpu'], '--device'),
    (['--methods', 'gloria', '--paired-fraction', '0.5'], '--paired-fraction'),
    (['--methods', 'nope'], '--methods'),
    (['--steps', '0'], '--steps'),
])
def test_step_guards_name_the_option(argv, message):
    bench = _load('bench_baselines_step')
    with pytest.raises(SystemExit, match=message):
        bench.main(argv)


def test_lesion_neck_benchmark_runs_every_variant(tmp_path):
    bench = _load('bench_lesion_neck')
    out = tmp_path / 'neck.json'
    assert bench.main(['--batch', '2', '--patches', '16', '--dims', '32', '--queries', '4',
                       '--repeats', '1', '--warmup', '0', '--attn', '--out', str(out)]) == 0
    rows = {r['variant']: r for r in json.loads(out.read_text())['rows']}
    assert set(rows) == {'sdpa', 'explicit', 'sdpa_with_map'}
    assert rows['explicit']['ratio_to_explicit'] == pytest.approx(1.0)
    assert all(r['median_ms'] > 0 for r in rows.values())
