"""Protocol cards (lgdea.benchmark.protocol) and ``tools/benchmark.py --compare`` on fake run
dirs (no training): the card's values come from the demo configs and the files a run left."""
import hashlib
import json
import os
import os.path as osp
import shutil
import subprocess
from importlib import metadata

import pytest

from lgdea.benchmark import RunExecutor
from lgdea.benchmark import protocol
from lgdea.benchmark.protocol import code_version, environment_facts
from lgdea.datasets.synthetic.prompts import SYNTHETIC_CLASS_PROMPTS
from lgdea.datasets.synthetic_cxr import SPLIT_CLASSES
from tool_loader import load_tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
benchmark_tool = load_tool('benchmark')
demo_tool = load_tool('demo')

SPEC = """
runs = [
    dict(name='CLIP', config='configs/demo/clip_demo_p100.py', pairing=100),
    dict(name='CLIP', config='configs/demo/clip_demo_p5.py', pairing=5),
]
seeds = [0, 1]
tables = ['retrieval']
"""
R = 'synthetic_5x200'
P1 = f'{R}/retrieval/P@1'
SPLIT = dict(pair_ratio=0.05, pair_seed=0, counts=dict(paired=400), paired_studies=['s1'])
ENV = dict(cpu='Test CPU 3000', cpu_count=2, gpus=[], torch='2.9.0', python='3.11.0',
           world_size=1, threads={})
CODE = dict(commit='0123456789abcdef0123456789abcdef01234567', dirty=True)


def _write(path, data):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(data, f)


@pytest.fixture
def bench(tmp_path):
    """A spec and a work dir with results for every run; CLIP_p5_seed0 also has what a real
    run leaves: pairing_split.json, a checkpoint, and benchmark_run.json with wall times,
    hardware and code version."""
    spec = tmp_path / 'spec.py'
    spec.write_text(SPEC)
    work = str(tmp_path / 'bench')
    for i, run_id in enumerate(['CLIP_p100_seed0', 'CLIP_p100_seed1', 'CLIP_p5_seed0',
                                'CLIP_p5_seed1']):
        _write(osp.join(work, run_id, '20260101_120000_test_results.json'), {P1: 40.0 + i})
    run_dir = osp.join(work, 'CLIP_p5_seed0')
    _write(osp.join(run_dir, 'pairing_split.json'), SPLIT)
    open(osp.join(run_dir, 'iter_600.pth'), 'w').close()
    _write(osp.join(run_dir, 'benchmark_run.json'), dict(
        train_seconds=150.0, test_seconds=20.5, train_finished=True,
        environment=dict(training=ENV, evaluation=ENV), code=dict(training=CODE,
                                                                 evaluation=CODE)))
    return str(spec), work


def test_card_in_results_json_from_the_configs_and_run_files(bench):
    spec, work = bench
    benchmark_tool.main([spec, '--collect', '--work-dir', work])
    with open(osp.join(work, 'results.json')) as f:
        protocol = json.load(f)['protocol']
    card = protocol['cards']['CLIP_p5_seed0']
    classes = SPLIT_CLASSES['retrieval']
    prompts = card['zero_shot_prompts'][R]
    assert prompts['by_class'] == {c: list(SYNTHETIC_CLASS_PROMPTS[c]) for c in classes}
    assert prompts['classes'] == len(classes) and 'SyntheticCXRDataset' in prompts['source']
    assert card['zero_shot_aggregation'] == {R: 'mean_embedding'}  # the metric's default
    assert card['zero_shot_zscore'] == {R: False}
    assert card['image_resolution'] == {'pretraining': '64x64', R: '64x64',
                                        'synthetic_grounding': '64x64', 'linear_probe': '64x64'}
    assert card['test_geometry'][R] == ['ResizeCXR(scale=(64, 64))']
    assert 'no `sections` option' in card['report_section']['pretraining']['unknown']
    assert card['pairing_ratio'] == dict(pair_ratio=0.05, pair_seed=0)
    split_sha = hashlib.sha256(json.dumps({k: v for k, v in SPLIT.items() if k != 'counts'},
                                          sort_keys=True).encode()).hexdigest()
    assert card['pairing_split'] == dict(sha256=split_sha, pair_ratio=0.05, pair_seed=0,
                                         paired_studies=1)
    assert card['eval_splits'][R]['split'] == 'retrieval'
    assert len(card['eval_splits'][R]['generator_config_sha']) == 12
    assert card['seed'] == 0 and card['checkpoint'] == 'iter_600.pth'
    assert card['model_selection'] == dict(model_selection='last', early_stopping=False)
    assert card['code_commit'] == CODE and card['hardware'] == ENV
    assert card['wall_time'] == dict(train_s=150.0, test_s=20.5)
    # a run dir with results only: what cannot be determined says why
    bare = protocol['cards']['CLIP_p100_seed1']
    assert bare['pairing_ratio'] == dict(pair_ratio=1.0, pair_seed=0) and bare['seed'] == 1
    assert 'no pairing_split.json' in bare['pairing_split']['unknown']
    assert 'no checkpoint' in bare['checkpoint']['unknown']
    for key in ('code_commit', 'hardware'):
        assert 'benchmark_run.json records no' in bare[key]['unknown']
    # fields shared by all four runs vs. fields that differ per run
    assert protocol['common']['test_geometry'] == card['test_geometry']
    assert set(protocol['per_run']) == {'pairing_ratio', 'pairing_split', 'seed', 'checkpoint',
                                        'code_commit', 'wall_time', 'hardware'}
    assert protocol['per_run']['seed'] == {'CLIP_p100_seed0': 0, 'CLIP_p100_seed1': 1,
                                           'CLIP_p5_seed0': 0, 'CLIP_p5_seed1': 1}


def test_card_under_every_table(bench):
    spec, work = bench
    out = benchmark_tool.main([spec, '--collect', '--work-dir', work])
    with open(osp.join(work, 'tables', 'retrieval.md')) as f:
        table_md = f.read()
    table, card = table_md.split('\n**Protocol** of the 4 run(s) above', 1)
    assert table.startswith('### Table IV.') and '| CLIP (5% pairs) |' in table
    lines = card.splitlines()
    n_prompts = sum(len(SYNTHETIC_CLASS_PROMPTS[c]) for c in SPLIT_CLASSES['retrieval'])
    assert any(line.startswith(f'- zero-shot prompts: 5 classes, {n_prompts} prompts, sha256 ')
               for line in lines)
    for expected in [
            '- zero-shot prompt aggregation: mean_embedding (synthetic_5x200)',
            '- zero-shot z-scoring: False (synthetic_5x200)',
            '- image resolution: 64x64 (pretraining, synthetic_5x200, synthetic_grounding, '
            'linear_probe)',
            '- test geometry: ResizeCXR(scale=(64, 64)) (synthetic_5x200, synthetic_grounding, '
            'linear_probe)',
            '- pairing ratio, DIFFERS between the runs:',
            '  - pair_ratio=1.0, pair_seed=0: CLIP_p100_seed0, CLIP_p100_seed1',
            '  - pair_ratio=0.05, pair_seed=0: CLIP_p5_seed0, CLIP_p5_seed1',
            '- seed, DIFFERS between the runs:',
            '  - 0: CLIP_p100_seed0, CLIP_p5_seed0',
            '  - 1: CLIP_p100_seed1, CLIP_p5_seed1',
            '  - iter_600.pth: CLIP_p5_seed0',
            '  - 0123456789ab (dirty): CLIP_p5_seed0',
            '  - train_s=150.0, test_s=20.5: CLIP_p5_seed0',
            '  - Test CPU 3000 (2 CPUs); no GPU visible; torch 2.9.0; world size 1: '
            'CLIP_p5_seed0',
            '- model selection: model_selection=last, early_stopping=False']:
        assert expected in lines, expected
    with open(osp.join(work, 'benchmark_results.md')) as f:
        assert table_md in f.read()
    assert table_md in out['markdown']
    with open(osp.join(work, 'results.json')) as f:
        assert json.load(f)['tables']['retrieval']['protocol']['runs'] == [
            'CLIP_p100_seed0', 'CLIP_p5_seed0', 'CLIP_p100_seed1', 'CLIP_p5_seed1']


def test_executor_records_hardware_and_commit_per_step(tmp_path):
    spec = tmp_path / 'spec.py'
    spec.write_text("runs = [dict(name='CLIP', config='configs/demo/clip_demo_p5.py', "
                    "pairing=5)]\nseeds = [3]\ntables = ['retrieval']\n")

    def launcher(cmd, log_path, env=None):
        work_dir = cmd[cmd.index('--work-dir') + 1]
        if osp.join(ROOT, 'tools', 'train.py') in cmd:
            open(osp.join(work_dir, 'iter_600.pth'), 'w').close()
        else:
            _write(osp.join(work_dir, '20260101_120000_test_results.json'), {P1: 1.0})
        return 0

    work = str(tmp_path / 'bench')
    benchmark_tool.main([str(spec), '--work-dir', work],
                        executor=RunExecutor(launcher=launcher, log=lambda m: None))
    with open(osp.join(work, 'CLIP_p5_seed3', 'benchmark_run.json')) as f:
        info = json.load(f)
    assert set(info['environment']) == set(info['code']) == {'training', 'evaluation'}
    env = info['environment']['training']
    assert env['world_size'] == 1 and env['torch'] == metadata.version('torch')
    assert env['cpu_count'] == os.cpu_count()
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=ROOT, capture_output=True,
                          text=True)
    if head.returncode == 0:
        assert info['code']['training']['commit'] == head.stdout.strip()
        assert isinstance(info['code']['training']['dirty'], bool)
    with open(osp.join(work, 'results.json')) as f:
        card = json.load(f)['protocol']['cards']['CLIP_p5_seed3']
    assert card['hardware'] == env and card['seed'] == 3


def test_code_version_outside_a_checkout_and_hidden_gpus(tmp_path):
    assert 'is not a git checkout' in code_version(str(tmp_path))['unknown']
    assert environment_facts(2, dict(CUDA_VISIBLE_DEVICES=''))['gpus'] == []
    assert environment_facts(2, {})['world_size'] == 2


def _results_pair(bench, tmp_path):
    """A = seed 0 at the configs' resolution; B = seed 1 with the 5x200 set resized to 96."""
    spec, work = bench
    work_b = str(tmp_path / 'bench_b')
    for name in ('pairing_split.json', 'iter_600.pth', 'benchmark_run.json'):
        os.remove(osp.join(work, 'CLIP_p5_seed0', name))  # results only, like the others
    shutil.copytree(work, work_b)
    benchmark_tool.main([spec, '--collect', '--work-dir', work, '--seeds', '0'])
    benchmark_tool.main([spec, '--collect', '--work-dir', work_b, '--seeds', '1',
                         '--cfg-options', 'test_dataloader.dataset.pipeline.1.scale=(96,96)'])
    return osp.join(work, 'results.json'), osp.join(work_b, 'results.json')


def test_compare_lists_protocol_differences_then_metrics(bench, tmp_path, capsys):
    a, b = _results_pair(bench, tmp_path)
    capsys.readouterr()
    out = benchmark_tool.main(['--compare', a, b])
    diffs = out['comparison'].protocol
    assert [d[0] for d in diffs] == ['image resolution', 'test geometry', 'seed']
    assert diffs[2][1:] == ('0', '1')
    assert '96x96 (synthetic_5x200)' in diffs[0][2] and '96x96' not in diffs[0][1]
    printed = capsys.readouterr().out
    assert printed == out['markdown']
    assert '3 of 15 protocol fields differ' in printed
    assert ('| test geometry | ResizeCXR(scale=(64, 64)) (synthetic_5x200, synthetic_grounding, '
            'linear_probe) | ResizeCXR(scale=(96, 96)) (synthetic_5x200); ResizeCXR(scale=(64, '
            '64)) (synthetic_grounding, linear_probe) |') in printed
    row = '| CLIP (100% pairs) | P@1 | 40.00 (n=1) | 41.00 (n=1) | +1.00 |'
    assert row in printed
    assert printed.index('## Protocol differences') < printed.index('| seed |') \
        < printed.index('## Metrics') < printed.index(row)
    assert '| CLIP (5% pairs) | P@1 | 42.00 (n=1) | 43.00 (n=1) | +1.00 |' in printed
    assert '| CLIP (5% pairs) | P@10 | n/a | n/a | n/a |' in printed  # not in the results
    # a file with itself: no difference
    same = benchmark_tool.main(['--compare', a, a])
    assert same['comparison'].protocol == []
    assert 'None: all 15 protocol fields agree.' in same['markdown']


def test_compare_old_results_without_card(bench, tmp_path, capsys):
    a, b = _results_pair(bench, tmp_path)
    with open(a) as f:
        data = json.load(f)
    del data['protocol']
    old = str(tmp_path / 'old.json')
    _write(old, data)
    out = benchmark_tool.main(['--compare', old, b])
    assert out['comparison'].unknown_protocol == [old]
    assert f'Protocol unknown for {old}: the file has no protocol card' in out['markdown']
    assert '| CLIP (100% pairs) | P@1 | 40.00 (n=1) | 41.00 (n=1) | +1.00 |' in out['markdown']


def test_compare_bad_input_names_the_file(bench, tmp_path, capsys):
    spec, work = bench
    benchmark_tool.main([spec, '--collect', '--work-dir', work])
    good = osp.join(work, 'results.json')
    missing = str(tmp_path / 'nope.json')
    with pytest.raises(SystemExit, match=f'{missing} does not exist; pass the results.json'):
        benchmark_tool.main(['--compare', good, missing])
    broken = tmp_path / 'broken.json'
    broken.write_text('{"runs": [')
    with pytest.raises(SystemExit, match=f'{broken} is not JSON'):
        benchmark_tool.main(['--compare', str(broken), good])
    per_run = osp.join(work, 'CLIP_p5_seed1', '20260101_120000_test_results.json')
    with pytest.raises(SystemExit, match='is not a benchmark results file'):
        benchmark_tool.main(['--compare', per_run, good])
    with pytest.raises(SystemExit, match=f'did you mean {good}'):
        benchmark_tool.main(['--compare', work, good])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        benchmark_tool.main(['--compare', good, good, '--seeds', '1'])
    assert '--compare takes two results files and nothing else (got --seeds)' in \
        capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark_tool.main([])
    assert 'give a benchmark spec' in capsys.readouterr().err


def test_demo_prints_the_card_under_its_table(tmp_path, capsys):
    work = str(tmp_path / 'demo')
    _write(osp.join(work, 'clip_demo_p5_seed0', '20260101_120000_test_results.json'),
           {P1: 30.0})
    demo_tool.main(['--configs', 'configs/demo/clip_demo_p5.py', '--work-dir', work],
                   executor=RunExecutor(launcher=lambda *a: 1, log=lambda m: None))
    printed = capsys.readouterr().out
    table_end = printed.index('| clip_demo_p5 |')
    card_at = printed.index('**Protocol** of the 1 run(s) above')
    assert table_end < card_at and '- pairing ratio: pair_ratio=0.05, pair_seed=0' in printed
    with open(osp.join(work, 'demo_results.md')) as f:
        assert '- seed: 0' in f.read()
    with open(osp.join(work, 'demo_results.json')) as f:
        assert json.load(f)[0]['protocol']['pairing_ratio'] == dict(pair_ratio=0.05,
                                                                     pair_seed=0)


MMENGINE_LINES = [
    '12/07 05:00:00 - mmengine - INFO - Iter(train) [ 50/600]  lr: 1.0000e-03  eta: 0:03:10  '
    'time: 0.3500  data_time: 0.0100  loss: 2.3456  loss_itc: 2.3456\n',
    '12/07 05:00:20 - mmengine - INFO - Iter(train) [100/600]  lr: 1.0000e-03  eta: 0:02:50  '
    'time: 0.3400  data_time: 0.0100  loss: 1.9876  loss_itc: 1.9876\n',
    # the epoch-style line mmengine writes for an iteration-based training by default: the
    # global iteration over one pass of the (5%-paired) dataloader; the total is max_iters
    '12/07 05:00:40 - mmengine - INFO - Epoch(train) [1][150/10]  lr: 1.0000e-03  eta: '
    '0:02:30  time: 0.3400  data_time: 0.0100  loss: 1.5000\n',
]


def test_progress_lines_while_training_and_evaluating(tmp_path):
    """The executor reports iteration / total, loss and ETA from the step's log as it runs
    (the fake launcher writes mmengine lines and waits between them)."""
    import time

    def launcher(cmd, log_path, env=None):
        work_dir = cmd[cmd.index('--work-dir') + 1]
        train = osp.join(ROOT, 'tools', 'train.py') in cmd
        lines = MMENGINE_LINES if train else [
            '12/07 05:04:00 - mmengine - INFO - Iter(test) [ 5/10]  eta: 0:00:04  time: 0.8\n']
        for line in lines:
            with open(log_path, 'a') as f:
                f.write(line)
            time.sleep(0.3)
        if train:
            open(osp.join(work_dir, 'iter_600.pth'), 'w').close()
        else:
            _write(osp.join(work_dir, '20260101_120000_test_results.json'), {P1: 1.0})
        return 0

    spec = tmp_path / 'spec.py'
    spec.write_text("runs = [dict(name='CLIP', config='configs/demo/clip_demo_p5.py', "
                    "pairing=5)]\nseeds = [0]\ntables = ['retrieval']\n")
    messages = []
    executor = RunExecutor(launcher=launcher, log=messages.append, progress_interval=0.05)
    benchmark_tool.main([str(spec), '--work-dir', str(tmp_path / 'b')], executor=executor)
    progress = [m for m in messages if 'progress:' in m]
    assert progress == [
        '[benchmark] 1/1 CLIP_p5_seed0: training progress: train iter 50/600 (8%), '
        'loss 2.3456, ETA 0:03:10',
        '[benchmark] 1/1 CLIP_p5_seed0: training progress: train iter 100/600 (17%), '
        'loss 1.9876, ETA 0:02:50',
        '[benchmark] 1/1 CLIP_p5_seed0: training progress: train iter 150/600 (25%), '
        'loss 1.5000, ETA 0:02:30',
        '[benchmark] 1/1 CLIP_p5_seed0: evaluation progress: test iter 5/10 (50%), '
        'ETA 0:00:04']
    assert messages.index(progress[0]) > messages.index(
        next(m for m in messages if ': training configs/demo/clip_demo_p5.py' in m))


def test_progress_parsing_epochs_estimates_and_relay(tmp_path):
    from lgdea.benchmark.progress import latest_progress, latest_relayed
    p = latest_progress('x\nEpoch(train) [1][400/10]  lr: 1e-3  loss: 0.5\n')
    assert (p.epoch, p.current, p.total, p.loss, p.eta) == (1, 400, 10, '0.5', None)
    assert p.describe(12.0) == 'train epoch 1, iter 400/10, loss 0.5'  # as logged
    q = latest_progress('Iter(test) [2/8]  time: 0.5\n')
    assert q.describe(10.0) == 'test iter 2/8 (25%), ETA 0:00:30 (estimated)'
    assert latest_progress('no iteration here\n') is None
    child_log = ('[benchmark] 1/1 A_p5_seed0: training progress: train iter 50/600 (8%)\n'
                 'Iter(train) [60/600]\n'
                 '[benchmark] 1/1 A_p5_seed0: training progress: train iter 100/600 (17%)\n')
    assert latest_relayed(child_log).endswith('iter 100/600 (17%)')


def test_parallel_dispatch_relays_the_progress_of_its_processes(tmp_path):
    """``--dispatch local``: the progress lines each ``--only`` process prints reach the
    dispatcher's output while the process runs (a shell script stands in for the process)."""
    from lgdea.benchmark import BenchmarkRunner, load_spec
    spec_path = tmp_path / 'spec.py'
    spec_path.write_text("runs = [dict(name='CLIP', config='configs/demo/clip_demo_p5.py', "
                         "pairing=5)]\nseeds = [0]\ntables = ['retrieval']\n")
    work = str(tmp_path / 'bench')
    fake = tmp_path / 'fake_python.sh'
    # called as: fake tools/benchmark.py SPEC --only RUN --work-dir WORK
    fake.write_text('#!/bin/sh\n'
                    'echo "[benchmark] 1/1 $4: training progress: train iter 50/600 (8%)"\n'
                    'sleep 1\nmkdir -p "$6/$4"\n'
                    'echo \'{"x": 1}\' > "$6/$4/20260101_120000_test_results.json"\n')
    fake.chmod(0o755)
    messages = []
    runner = BenchmarkRunner(load_spec(str(spec_path), work_dir=work), log=messages.append)
    runner.run_parallel(runner.runs, 1, ['--work-dir', work], python=str(fake),
                        poll_seconds=0.2)
    relayed = '[benchmark] 1/1 CLIP_p5_seed0: training progress: train iter 50/600 (8%)'
    assert relayed in messages
    assert messages.index(relayed) < next(i for i, m in enumerate(messages)
                                          if 'CLIP_p5_seed0 done' in m)


def test_pairing_split_hash_is_of_the_split_not_of_its_counts():
    """Split files written by two code versions (the second records more counts) of the same
    draw get one hash; another set of paired studies gets another."""
    older = dict(SPLIT, counts=dict(paired=400))
    newer = dict(SPLIT, counts=dict(paired=400, duplicate_rows=0, conflicting_reports=0))
    other = dict(SPLIT, paired_studies=['s2'])
    same = protocol.pairing_split_identity(older)
    assert same == protocol.pairing_split_identity(newer)
    assert same['sha256'] != protocol.pairing_split_identity(other)['sha256']
    assert same['sha256'] != protocol.pairing_split_identity(dict(SPLIT, pair_seed=1))['sha256']
