# MGCA ViT-B/16, 100 % paired, with the official model selection: validate the pretraining
# loss on the held-out MIMIC `validate` split once per epoch, stop after 5 epochs without
# improvement (50 epochs at most) and keep the checkpoint with the smallest validation loss
# (docs/baselines.md 2.7; the maintainers' advice in issue #12). For another pairing ratio,
# override `pair_ratio` / `train_dataloader.dataset.pair_ratio` as in mgca_vitb_p5.py.
_base_ = ['./mgca_vitb_p100.py']

_source = _base_.train_dataloader.dataset.dataset  # the MIMIC-CXR train-split source
val_dataloader = dict(
    batch_size=72,
    num_workers=4,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='vl_collate'),
    dataset=dict(type='LimitedPairingDataset', dataset=dict(_source, split='validate'),
                 pair_ratio=1.0, include_unpaired=False,
                 pipeline=_base_.test_pipeline))
val_evaluator = [dict(type='PairedValLoss')]
val_cfg = dict(type='VLValLoop')

custom_hooks = [
    dict(type='PairingSplitHook'),
    dict(type='MGCAPrototypeFreezeHook', freeze_epochs=1),
    dict(type='EarlyStoppingHook', monitor='pretrain_val/loss', rule='less', patience=5),
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1507, max_keep_ckpts=3,
                    save_best='pretrain_val/loss', rule='less'))
model_selection = 'min_val_loss'
