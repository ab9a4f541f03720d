# MGCA's official optimisation (docs/baselines.md 2.7) as an iteration-based schedule, so that
# every pairing ratio takes the same number of optimizer steps:
# AdamW lr 2e-5, betas (0.9, 0.999), weight decay 0.05; one cosine cycle over all steps with a
# linear warm-up over the first 40 % (from min lr 1e-8 to 2e-5), down to 1e-8.
# Official length: at most 50 epochs of the 100 % MIMIC pool (~217k pairs) at a global batch
# of 144 (2 GPUs x 72): 1507 steps per epoch, 75,350 steps.
iters_per_epoch = 1507
max_epochs = 50
max_iters = iters_per_epoch * max_epochs
warmup_iters = int(0.4 * max_iters)
base_lr = 2e-5
min_lr = 1e-8

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr, betas=(0.9, 0.999), weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=min_lr / base_lr, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters,
         T_max=max_iters - warmup_iters, eta_min=min_lr),
]
# validation once per (100 %-pool) epoch
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=iters_per_epoch)
# iteration-based log lines: Iter(train) [150/600], not epoch-style [1][150/10] (mmengine counts
# the global iteration against one pass of the loader, which at 5% pairing is 10 batches)
log_processor = dict(by_epoch=False)
