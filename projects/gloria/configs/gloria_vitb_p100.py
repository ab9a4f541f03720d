# GLoRIA on ViT-B/16 (LGDEA's backbone) pretrained on MIMIC-CXR, 100% pairs; data, text side,
# losses and schedule as gloria_r50_p100.py.
_base_ = [
    '../../../configs/_base_/default_runtime.py',
    '../../../configs/_base_/datasets/mimic_cxr.py',
    './_base_/models/gloria_vitb.py',
    './_base_/schedules/gloria_mimic_iter.py',
]
custom_imports = dict(imports=['lgdea', 'projects.gloria.gloria'], allow_failed_imports=False)

pair_ratio = 1.0
train_dataloader = dict(
    batch_size=48, dataset=dict(pair_ratio=pair_ratio, include_unpaired=False))

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000, max_keep_ckpts=3))
