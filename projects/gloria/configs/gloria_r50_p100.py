# GLoRIA ResNet-50 (official architecture and losses) pretrained on MIMIC-CXR, 100% pairs.
# Data: the shared MIMIC-CXR base (same studies, sections and image pipeline for every
# method). Departure: the official model used the impression only; here the shared report
# text (findings + impression) is cut into sentences and one is sampled per step, so that all
# methods see the same paired studies. Impression only: set
# train_dataloader.dataset.dataset.sections=('impression',).
_base_ = [
    '../../../configs/_base_/default_runtime.py',
    '../../../configs/_base_/datasets/mimic_cxr.py',
    './_base_/models/gloria_r50.py',
    './_base_/schedules/gloria_mimic_iter.py',
]
custom_imports = dict(imports=['lgdea', 'projects.gloria.gloria'], allow_failed_imports=False)

pair_ratio = 1.0
# official batch size 48; baselines use the paired pool only
train_dataloader = dict(
    batch_size=48, dataset=dict(pair_ratio=pair_ratio, include_unpaired=False))

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000, max_keep_ckpts=3))
