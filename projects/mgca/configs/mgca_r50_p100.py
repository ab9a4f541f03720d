# MGCA ResNet-50 on MIMIC-CXR, 100 % of the studies paired.
_base_ = [
    '../../../configs/_base_/default_runtime.py',
    '../../../configs/_base_/datasets/mimic_cxr.py',
    './_base_/models/mgca_r50.py',
    './_base_/schedules/mgca_mimic_iter.py',
]
custom_imports = dict(imports=['lgdea', 'projects.mgca.mgca'], allow_failed_imports=False)

pair_ratio = 1.0
train_dataloader = dict(batch_size=72,
                        dataset=dict(pair_ratio=pair_ratio, include_unpaired=False))
custom_hooks = [
    dict(type='PairingSplitHook'),
    dict(type='MGCAPrototypeFreezeHook', freeze_epochs=1),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1507, max_keep_ckpts=3))
model_selection = 'last'
