_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/synthetic_cxr_demo.py',
    '../_base_/models/lgdea_demo.py',
    '../_base_/schedules/demo_iter.py',
]
# LGDEA at 5% pairing: paired studies, unpaired images and unpaired reports in every batch
# (PropagationSampler), evidence from the offline rule extractor (cached).
pair_ratio = 0.05
train_dataloader = dict(
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='PropagationSampler'),
    dataset=dict(pair_ratio=pair_ratio, include_unpaired=True,
                 evidence={{_base_.evidence}}, report_pipeline={{_base_.report_pipeline}}))

# Phase table (docs/method.md), in iterations at demo scale; constant lr within a phase. The
# one place that switches terms and propagation (LGDEAPhaseHook reads `lgdea_phases`).
max_iters = 600
param_scheduler = []
lgdea_phases = [
    dict(iters=120, terms=['rec', 'align'], propagation=False, lr=5e-4),
    dict(iters=180, terms=['rec', 'p', 'u', 'align'], propagation=False, lr=5e-4),
    dict(iters=300, terms=['rec', 'p', 'u', 'align'], propagation=True, lr=5e-4),
]
custom_hooks = [
    dict(type='PairingSplitHook'),
    dict(type='LGDEAPhaseHook', by_epoch=False, phases='lgdea_phases'),
    {{_base_.unpaired_diagnostics}},
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=600, max_keep_ckpts=1))
