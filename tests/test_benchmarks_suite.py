"""The benchmark suite cannot rot: ``benchmarks/gpu_suite.sh --dry-run`` runs every benchmark at
tiny sizes on the CPU and writes the JSON and markdown the GPU run writes (slow: ``-m slow``);
the step benchmark's ratio/target bookkeeping and its option guards are checked directly (fast).
No timing is asserted (speed targets live in benchmarks/, as ratios in one run)."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

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


@pytest.mark.slow  # ~40 s on the shared 2-core machine: three processes import lgdea, two models
def test_gpu_suite_dry_run_writes_json_and_markdown(tmp_path):
    out = tmp_path / 'suite'
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1')
    proc = subprocess.run(['bash', osp.join(ROOT, 'benchmarks', 'gpu_suite.sh'), '--dry-run',
                           '--out', str(out)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ('step.json', 'data.json', 'graph.json', 'suite.json', 'suite.md'):
        assert (out / name).is_file(), name
    suite = json.loads((out / 'suite.json').read_text())
    assert suite['mode'] == 'dry-run'
    assert {'torch', 'python'} <= set(suite['environment'])

    step = suite['step']
    assert step['benchmark'] == 'train_step' and step['amp'] is False
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


@pytest.mark.parametrize('argv, message', [
    (['--amp'], '--amp'),
    (['--device', 'tpu'], '--device'),
    (['--methods', 'gloria', '--paired-fraction', '0.5'], '--paired-fraction'),
    (['--methods', 'nope'], '--methods'),
    (['--steps', '0'], '--steps'),
])
def test_step_guards_name_the_option(argv, message):
    bench = _load('bench_baselines_step')
    with pytest.raises(SystemExit, match=message):
        bench.main(argv)
