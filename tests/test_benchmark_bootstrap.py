"""Bootstrap intervals over seeds and evaluation cases (lgdea.benchmark.bootstrap) and the
tables' best-value rule that rests on them."""
import json
import os
import os.path as osp

import numpy as np
import pytest

from lgdea.benchmark.bootstrap import bootstrap_interval, paired_cases, stack_cases
from tool_loader import load_tool

benchmark_tool = load_tool('benchmark')


def test_constant_values_give_a_point_interval():
    assert bootstrap_interval(np.full((3, 50), 40.0)) == (40.0, 40.0)


def test_case_only_interval_matches_the_binomial_standard_error():
    """One seed, 1000 cases, half right: the 95% interval is about 50 +- 1.96 * 1.58."""
    values = np.array([[100.0, 0.0] * 500])
    low, high = bootstrap_interval(values)
    assert low == pytest.approx(50 - 1.96 * 1.581, abs=0.6)
    assert high == pytest.approx(50 + 1.96 * 1.581, abs=0.6)
    assert bootstrap_interval(values) == (low, high)  # fixed resampling seed


def test_seed_spread_widens_the_interval():
    rng = np.random.default_rng(0)
    cases = (rng.random((1, 1000)) < 0.5) * 100.0
    alone = bootstrap_interval(cases)
    # five runs whose accuracies differ by +-10 points on the same cases
    runs = np.concatenate([np.where(rng.random((1, 1000)) < 0.4 + 0.05 * k, 100.0, 0.0)
                           for k in range(5)])
    spread = bootstrap_interval(runs)
    assert spread[1] - spread[0] > 1.5 * (alone[1] - alone[0])


def test_nan_cases_are_left_out_like_the_metric_does():
    values = np.array([[1.0, np.nan, 3.0, np.nan]])
    low, high = bootstrap_interval(values)
    assert 1.0 <= low <= high <= 3.0
    assert bootstrap_interval(np.full((2, 3), np.nan)) is None
    with pytest.raises(ValueError, match=r'\[seeds, cases\]'):
        bootstrap_interval(np.ones(4))


def test_stack_and_pair_need_the_same_cases_for_every_seed():
    assert stack_cases({0: [1, None]}, [0]).tolist()[0][0] == 1.0
    assert np.isnan(stack_cases({0: [1, None]}, [0])[0, 1])
    assert stack_cases({0: [1, 2]}, [0, 1]) is None           # seed 1 has no values
    assert stack_cases({0: [1, 2], 1: [1]}, [0, 1]) is None    # different case counts
    assert paired_cases({0: [3.0, 1.0]}, {0: [1.0, 1.0]}, [0]).tolist() == [[2.0, 0.0]]
    assert paired_cases({0: [3.0, 1.0]}, {0: [1.0]}, [0]) is None


SPEC = """
runs = [
    dict(name='Strong', config='configs/demo/clip_demo_p100.py', pairing=100),
    dict(name='Weak', config='configs/demo/clip_demo_p5.py', pairing=5),
    dict(name='Close', config='configs/demo/clip_evidence_demo_p5.py', pairing=5),
]
seeds = [0, 1, 2]
tables = ['retrieval']
"""
P1 = 'synthetic_5x200/retrieval/P@1'
P2 = 'synthetic_5x200/retrieval/P@2'


def _run(work, run_id, p1_cases, p2_cases):
    os.makedirs(osp.join(work, run_id))
    stamp = '20260101_120000'
    with open(osp.join(work, run_id, f'{stamp}_test_results.json'), 'w') as f:
        json.dump({P1: float(np.mean(p1_cases)), P2: float(np.mean(p2_cases))}, f)
    with open(osp.join(work, run_id, f'{stamp}_test_cases.json'), 'w') as f:
        json.dump({P1: list(p1_cases), P2: list(p2_cases)}, f)


def test_table_bolds_only_a_separated_best_and_prints_intervals(tmp_path):
    """P@1: Strong is right on 60% of the cases, Weak / Close on 30% -> separated, bold.
    P@2: Strong 51%, Close 50% (different cases) -> the best mean is not bold."""
    spec = tmp_path / 'spec.py'
    spec.write_text(SPEC)
    work = str(tmp_path / 'bench')
    n = 400
    for seed in range(3):
        strong = [100.0] * int(0.6 * n) + [0.0] * int(0.4 * n)
        weak = [100.0] * int(0.3 * n) + [0.0] * int(0.7 * n)
        p2_strong = [100.0] * (n // 2 + 4) + [0.0] * (n // 2 - 4)
        p2_close = ([0.0] * (n // 2 + 4) + [100.0] * (n // 2 - 4))
        _run(work, f'Strong_p100_seed{seed}', strong, p2_strong)
        _run(work, f'Weak_p5_seed{seed}', weak, weak)
        _run(work, f'Close_p5_seed{seed}', weak, p2_close)
    out = benchmark_tool.main([str(spec), '--collect', '--work-dir', work])
    md = out['markdown']
    strong_line = next(line for line in md.splitlines() if line.startswith('| Strong'))
    cells = [c.strip() for c in strong_line.strip('|').split('|')]
    assert cells[1].startswith('**60.00 ± 0.00 [') and cells[1].endswith(']**')
    assert cells[2].startswith('51.00 ± 0.00 [') and '**' not in cells[2]
    low, high = (float(x) for x in cells[1].strip('*').split('[')[1].rstrip(']').split(', '))
    assert 54 < low < 60 < high < 66
    with open(osp.join(work, 'results.json')) as f:
        values = json.load(f)['tables']['retrieval']['rows'][0]['values']
    assert values['P@1']['ci95'] == pytest.approx([low, high], abs=0.01)


def test_extra_seeds_run_and_aggregate_for_their_setting_only(tmp_path):
    from lgdea.benchmark import load_spec
    spec_path = tmp_path / 'spec.py'
    spec_path.write_text(SPEC.replace(
        "dict(name='Weak', config='configs/demo/clip_demo_p5.py', pairing=5),",
        "dict(name='Weak', config='configs/demo/clip_demo_p5.py', pairing=5, "
        "extra_seeds=[3, 4]),"))
    spec = load_spec(str(spec_path), work_dir=str(tmp_path / 'bench'))
    ids = [r.run_id for r in spec.expand()]
    assert len(ids) == 3 * 3 + 2 and ids[-2:] == ['Weak_p5_seed3', 'Weak_p5_seed4']
    work = str(tmp_path / 'bench')
    for run_id in ids:
        right = 100 + (5 if run_id.startswith('Weak_p5_seed4') else 0)
        _run(work, run_id, [100.0] * right + [0.0] * (200 - right), [0.0] * 200)
    md = benchmark_tool.main([str(spec_path), '--collect', '--work-dir', work])['markdown']
    weak = next(line for line in md.splitlines() if line.startswith('| Weak'))
    assert weak.startswith('| Weak (5% pairs) (5 seeds) | 50.50 ± 1.12 [')  # 4 x 50, 1 x 52.5
    assert '[5/5 seeds]' not in weak and 'also over their extra seeds' in md


def test_throughput_of_the_training_enters_the_results_and_the_overview(tmp_path):
    spec = tmp_path / 'spec.py'
    spec.write_text(SPEC.replace("tables = ['retrieval']", "tables = ['overview']"))
    work = str(tmp_path / 'bench')
    for run_id in ('Strong_p100_seed0', 'Weak_p5_seed0', 'Close_p5_seed0'):
        _run(work, run_id, [100.0, 0.0], [0.0, 0.0])
    with open(osp.join(work, 'Strong_p100_seed0', 'throughput.json'), 'w') as f:
        json.dump(dict(world_size=2, ranks=[
            dict(samples_per_s=100.0, data_wait_share=0.1, peak_rss_mb=900.0,
                 flops_per_sample=2e9, achieved_tflops=0.2),
            dict(samples_per_s=110.0, data_wait_share=0.3, peak_rss_mb=1000.0,
                 flops_per_sample=2e9, achieved_tflops=0.22)]), f)
    out = benchmark_tool.main([str(spec), '--collect', '--work-dir', work, '--seeds', '0'])
    with open(osp.join(work, 'results.json')) as f:
        runs = {r['run_id']: r for r in json.load(f)['runs']}
    m = runs['Strong_p100_seed0']['metrics']
    assert m['throughput/samples_per_s'] == 210.0 and m['throughput/peak_mem_mb'] == 1000.0
    assert m['throughput/data_wait_share'] == pytest.approx(0.2)
    assert m['throughput/achieved_tflops'] == pytest.approx(0.42)
    assert 'throughput/mfu' not in m  # no known peak: no MFU
    assert 'throughput/samples_per_s' not in runs['Weak_p5_seed0']['metrics']
    assert '| train samples/s |' in out['markdown'] and '| 210.0 |' in out['markdown']
