_base_ = ['../lgdea_demo_p5_repaired.py']
# The repaired LGDEA at 5% with the demo's shared LR schedule (50-iteration warm-up, cosine to
# 1e-5, configs/_base_/schedules/demo_iter.py) instead of a constant LR per phase: the phases
# still switch terms and propagation, but set no LR.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=600, eta_min=1e-5),
]
lgdea_phases = [
    dict(iters=120, terms=['rec', 'align'], propagation=False),
    dict(iters=180, terms=['rec', 'p', 'u', 'align'], propagation=False),
    dict(iters=300, terms=['rec', 'p', 'u', 'align'], propagation=True),
]
