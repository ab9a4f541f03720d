# MGCA ViT-B/16 on MIMIC-CXR, 100 % of the studies paired (the official setting).
#   bash tools/dist_train.sh projects/mgca/configs/mgca_vitb_p100.py 2
_base_ = [
    '../../../configs/_base_/default_runtime.py',
    '../../../configs/_base_/datasets/mimic_cxr.py',
    './_base_/models/mgca_vitb.py',
    './_base_/schedules/mgca_mimic_iter.py',
]
custom_imports = dict(imports=['lgdea', 'projects.mgca.mgca'], allow_failed_imports=False)

# Baselines learn from the paired pool only; the same number of steps at every ratio.
pair_ratio = 1.0
# Official global batch 144 = 2 GPUs x 72 (the batch size below is per GPU; keep the global
# batch at 144 on another number of GPUs).
train_dataloader = dict(batch_size=72,
                        dataset=dict(pair_ratio=pair_ratio, include_unpaired=False))

custom_hooks = [
    dict(type='PairingSplitHook'),
    # prototypes fixed during the first epoch (one pass over the paired pool)
    dict(type='MGCAPrototypeFreezeHook', freeze_epochs=1),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1507, max_keep_ckpts=3))

# Which checkpoint is evaluated: 'last' here (fixed budget); the official early stopping on
# the validation loss is mgca_vitb_p100_earlystop.py ('min_val_loss'). The value is stored
# in the dumped config of every run.
model_selection = 'last'
