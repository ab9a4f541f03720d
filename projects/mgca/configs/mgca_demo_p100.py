# MGCA on the synthetic demo benchmark, every study paired. Train: python tools/train.py
# projects/mgca/configs/mgca_demo_p100.py; test: python tools/test.py <this config> <ckpt>.
_base_ = [
    '../../../configs/_base_/default_runtime.py',
    '../../../configs/_base_/datasets/synthetic_cxr_demo.py',
    './_base_/models/mgca_demo.py',
    '../../../configs/_base_/schedules/demo_iter.py',
]
custom_imports = dict(imports=['lgdea', 'projects.mgca.mgca'], allow_failed_imports=False)

# Baselines train on the paired pool only (LimitedPairingDataset(include_unpaired=False)),
# with the same number of optimizer steps at every pairing ratio (iteration-based loop).
pair_ratio = 1.0
train_dataloader = dict(dataset=dict(pair_ratio=pair_ratio, include_unpaired=False))
# one checkpoint, iter_600.pth at the end (as the other demo configs)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=600, max_keep_ckpts=1))

# Prototypes stay at their init during the first epoch (one pass over the paired pool).
custom_hooks = [
    dict(type='PairingSplitHook'),
    dict(type='MGCAPrototypeFreezeHook', freeze_epochs=1),
    {{_base_.unpaired_diagnostics}},
]
# The synthetic benchmark has no held-out pretraining split: the last iteration is
# evaluated (no early stopping).
model_selection = 'last'
