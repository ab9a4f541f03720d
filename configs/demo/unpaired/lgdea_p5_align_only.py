_base_ = ['../lgdea_demo_p5_repaired.py']
# Ladder rung 1 (docs/benchmark.md, "Unpaired data"): the repaired LGDEA at 5% with only the
# evidence alignment and P = Y in every phase -- the neck and H_I alone against the
# CLIP-on-evidence control (unpaired items are only extra negatives).
lgdea_phases = [
    dict(iters=120, terms=['align'], propagation=False, lr=5e-4),
    dict(iters=180, terms=['align'], propagation=False, lr=5e-4),
    dict(iters=300, terms=['align'], propagation=False, lr=5e-4),
]
