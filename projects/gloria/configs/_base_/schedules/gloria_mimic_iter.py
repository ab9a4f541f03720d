# GLoRIA's official optimiser (docs/baselines.md 1.6): Adam, lr 5e-5, betas (0.5, 0.999),
# weight decay 1e-6, gradient-norm clipping 0.25. Iteration-based with the same number of
# optimizer steps at every pairing ratio (a 5% run sees its pairs more often, it is not
# undertrained). The top-level configs set the iteration-based checkpoint hook (a base may
# not redefine default_hooks of default_runtime). Departure: constant LR (the official
# ReduceLROnPlateau on the validation loss with early stopping does not fit a fixed step
# budget).
max_iters = 60000  # ~12 passes over ~240k frontal MIMIC-CXR training images at batch 48
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=5e-5, betas=(0.5, 0.999), weight_decay=1e-6),
    clip_grad=dict(max_norm=0.25))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=max_iters)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
log_processor = dict(by_epoch=False)
