_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/synthetic_cxr_demo.py',
    '../_base_/models/clip_demo.py',
    '../_base_/schedules/demo_iter.py',
]
pair_ratio = 1.0
train_dataloader = dict(dataset=dict(pair_ratio=pair_ratio))
custom_hooks = [dict(type='PairingSplitHook'), {{_base_.unpaired_diagnostics}}]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=600, max_keep_ckpts=1))
