"""ThroughputHook in a tiny CPU runner: logged keys, FLOPs against a hand count, no MFU on CPU."""
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from lgdea.engine.hooks import ThroughputHook
from lgdea.engine.hooks.throughput_hook import peak_flops_for

IN, OUT, BATCH = 6, 5, 4


class _Linear(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(IN, OUT)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs) if isinstance(inputs, (list, tuple)) else inputs
        out = self.fc(x)
        if mode == 'loss':
            return dict(loss=out.pow(2).mean())
        return out


class _Data(Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(IN, generator=g), data_samples=i)


def _run(tmp_path, max_iters=6, **hook_kwargs):
    hook = ThroughputHook(**hook_kwargs)
    runner = Runner(
        model=_Linear(), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=_Data(), batch_size=BATCH, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=2),
                           checkpoint=dict(type='CheckpointHook', interval=10**6)),
        custom_hooks=[hook], default_scope='mmengine', experiment_name=f'tp_{tmp_path.name}')
    runner.train()
    return runner, hook


def test_throughput_hook_logs_keys_flops_and_summary(tmp_path):
    runner, hook = _run(tmp_path)
    # Hand count: forward addmm 2*B*IN*OUT; backward only the weight grad (the input needs no
    # grad) mm 2*OUT*B*IN; bias add/sum and the loss are not matmuls. Per sample: 4*IN*OUT.
    assert hook.flops_per_sample == 4 * IN * OUT
    assert hook.interval == 2  # taken from the LoggerHook
    hub = runner.message_hub.log_scalars
    for key in ('samples_per_s', 'data_wait_share', 'peak_rss_mb', 'flops_per_sample',
                'achieved_tflops'):
        assert f'train/{key}' in hub, key
    assert 'train/mfu' not in hub and 'train/peak_cuda_mem_mb' not in hub  # CPU
    assert hub['train/samples_per_s'].current() > 0
    assert 0.0 <= hub['train/data_wait_share'].current() < 1.0
    # logged at iterations 2, 4, 6 (iteration 1 is the untimed FLOP-counting warm-up)
    assert len(hub['train/samples_per_s'].data[0]) == 3
    scalars = osp.join(runner.log_dir, 'vis_data', 'scalars.json')
    lines = [json.loads(line) for line in open(scalars)]
    train_lines = [d for d in lines if 'samples_per_s' in d]
    assert len(train_lines) == 3 and train_lines[0]['flops_per_sample'] == 4 * IN * OUT
    summary = json.load(open(osp.join(str(tmp_path), 'throughput.json')))
    assert summary['world_size'] == 1
    rank0 = summary['ranks'][0]
    assert rank0 == hook.summary
    assert rank0['timed_iters'] == 5 and rank0['samples'] == 5 * BATCH
    assert rank0['peak_mem_kind'] == 'process_max_rss' and 'mfu' not in rank0
    assert rank0['peak_flops'] is None and rank0['device'] == 'cpu'


def test_throughput_hook_without_flop_count(tmp_path):
    runner, hook = _run(tmp_path, max_iters=4, interval=1, count_flops=False)
    hub = runner.message_hub.log_scalars
    assert hook.flops_per_sample is None and 'train/flops_per_sample' not in hub
    assert len(hub['train/samples_per_s'].data[0]) == 3  # iteration 1 has no previous end
    assert hook.summary['timed_iters'] == 3


def test_peak_table_and_bad_interval():
    assert peak_flops_for('NVIDIA A100-SXM4-80GB') == 312e12
    assert peak_flops_for('NVIDIA H100 80GB HBM3') == 989e12
    assert peak_flops_for('NVIDIA H100 PCIe') == 756e12
    assert peak_flops_for('NVIDIA H200') == 989e12
    assert peak_flops_for('NVIDIA GeForce RTX 3090') is None
    with pytest.raises(ValueError, match='interval'):
        ThroughputHook(interval=0)


@pytest.mark.parametrize('name', ['lgdea_demo_p5', 'clip_demo_p5', 'clip_evidence_demo_p5',
                                  'clip_demo_p100', 'lgdea_demo_p5_warmup',
                                  'lgdea_demo_p5_repaired'])
def test_every_demo_config_has_the_throughput_hook(name):
    cfg = Config.fromfile(osp.join(osp.dirname(__file__), '..', 'configs', 'demo', f'{name}.py'))
    assert cfg.default_hooks['throughput']['type'] == 'ThroughputHook'
