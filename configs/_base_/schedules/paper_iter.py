# Iteration-based schedule for the baselines on MIMIC-CXR: the same number of optimizer steps
# at every pairing ratio (a 5% run is not simply undertrained).
max_iters = 20000
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-6),
                     clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=1000, end=max_iters, eta_min=1e-6),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=2000)
# iteration-based log lines: Iter(train) [150/600], not epoch-style [1][150/10] (mmengine counts
# the global iteration against one pass of the loader, which at 5% pairing is 10 batches)
log_processor = dict(by_epoch=False)
