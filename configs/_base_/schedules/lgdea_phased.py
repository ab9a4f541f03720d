# The multi-phase schedule (paper Sec. IV-A d; docs/method.md phase table): global batch sizes,
# constant lr within a phase, AdamW with weight decay 1e-6. The phase table is the one place
# that switches terms and propagation: LGDEAPhaseHook(phases='lgdea_phases') reads it.
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-6))
param_scheduler = []
lgdea_phases = [
    dict(epochs=2, batch_size=128, lr=5e-5, terms=['rec', 'align'], propagation=False),
    dict(epochs=5, batch_size=64, lr=1e-4, terms=['rec', 'p', 'u', 'align'], propagation=False),
    dict(epochs=5, batch_size=64, lr=1e-4, terms=['rec', 'p', 'u', 'align'], propagation=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1)
