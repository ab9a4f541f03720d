"""Short end-to-end train + test on the synthetic benchmark through the real tools."""
import glob
import json
import os.path as osp

from tool_loader import load_tool as _tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _small(prefix):
    size = dict(num_studies=40, retrieval_per_class=4, grounding_per_class=2)
    return [f'{prefix}.{k}={v}' for k, v in size.items()]


def _options(iters):
    return (['train_cfg.max_iters=%d' % iters, 'train_cfg.val_interval=%d' % iters,
             'default_hooks.checkpoint.interval=%d' % iters, 'param_scheduler=[]',
             'train_dataloader.batch_size=8', 'train_dataloader.num_workers=0',
             'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
             'test_dataloader.num_workers=0',
             # the linear probe has its own end-to-end test (test_linear_probe.py)
             'linear_probe=None']
            + _small('train_dataloader.dataset.dataset') + _small('val_dataloader.dataset')
            + _small('test_dataloader.dataset')
            + _small('test_cfg.extra_dataloaders.0.dataset')
            + _small('val_cfg.extra_dataloaders.0.dataset.dataset')
            + ['val_cfg.extra_dataloaders.0.num_workers=0'])


def _train_and_test(config, tmp_path, monkeypatch, extra=()):
    monkeypatch.chdir(tmp_path)  # data/ (synthetic cache, evidence cache) goes here
    work = str(tmp_path / 'work')
    opts = _options(4) + list(extra)
    _tool('train').main([osp.join(ROOT, config), '--work-dir', work, '--cfg-options', *opts,
                         'default_hooks.logger.interval=2'])
    ckpt = osp.join(work, 'iter_4.pth')
    assert osp.isfile(ckpt) and osp.isfile(osp.join(work, 'pairing_split.json'))
    # pretraining validation: the training objective on held-out pairs, for every method
    logs = glob.glob(osp.join(work, '*', '*.log'))
    assert any('synthetic_pretrain_val/loss/loss:' in open(p).read() for p in logs), logs
    # iteration-based log lines against max_iters (not epoch-style [1][2/<batches per pass>])
    assert any('Iter(train) [2/4]' in open(p).read() for p in logs), logs
    assert not any('Epoch(train)' in open(p).read() for p in logs), logs
    # ThroughputHook comes with default_runtime's default_hooks in every demo run
    with open(osp.join(work, 'throughput.json')) as f:
        throughput = json.load(f)['ranks'][0]
    assert throughput['flops_per_sample'] > 0 and throughput['samples_per_s'] > 0, throughput
    metrics = _tool('test').main([osp.join(ROOT, config), ckpt, '--work-dir', work,
                                  '--cfg-options', *opts])
    files = glob.glob(osp.join(work, '*_test_results.json'))
    assert files
    with open(files[-1]) as f:
        dumped = json.load(f)
    # per-case values for the benchmark's bootstrap, one per evaluated image
    with open(files[-1].replace('_test_results.json', '_test_cases.json')) as f:
        cases = json.load(f)
    acc = cases['synthetic_5x200/zero_shot/accuracy']
    assert len(acc) == 20 and sum(acc) / len(acc) == metrics['synthetic_5x200/zero_shot/accuracy']
    return metrics, dumped


def test_clip_demo_trains_and_evaluates_all_metrics(tmp_path, monkeypatch):
    metrics, dumped = _train_and_test('configs/demo/clip_demo_p100.py', tmp_path, monkeypatch)
    for key in ('synthetic_5x200/zero_shot/accuracy', 'synthetic_5x200/retrieval/P@1',
                'synthetic_5x200/retrieval/P@10', 'synthetic_grounding/grounding/cnr'):
        assert key in metrics, sorted(metrics)
    assert 0.0 <= metrics['synthetic_5x200/zero_shot/accuracy'] <= 100.0
    assert 'synthetic_5x200/retrieval/P@1' in json.dumps(dumped)


def test_lgdea_demo_trains_through_all_phases(tmp_path, monkeypatch):
    phases = ['lgdea_phases.0.iters=1', 'lgdea_phases.1.iters=1', 'lgdea_phases.2.iters=2', 'train_dataloader.dataset.pair_ratio=0.25',
              'default_hooks.logger.interval=1']
    metrics, _ = _train_and_test('configs/demo/lgdea_demo_p5.py', tmp_path, monkeypatch,
                                 phases)
    assert 'synthetic_grounding/grounding/cnr' in metrics
    assert 'synthetic_5x200/retrieval/P@5' in metrics
    log = ''.join(open(p).read() for p in glob.glob(str(tmp_path / 'work' / '*' / '*.log')))
    assert 'LGDEA phase 3/3' in log and 'loss_u' in log and 'hidden_pair_acc' in log
    assert 'samples_per_s' in log and 'flops_per_sample' in log and 'mfu' not in log
