# LGDEA at 5% pairing, repaired (lgdea_demo_p5_repaired.py) and with a hard-pair warm-up
# instead of the paper's phase table: the alignment term alone with P = Y (paired rows only)
# until the lesion-query image embedding is discriminative, then every term with propagation.
# docs/design_lessons.md; measured in docs/lgdea_departures.md.
_base_ = ['./lgdea_demo_p5_repaired.py']
lgdea_phases = [
    dict(iters=300, terms=['align'], propagation=False, lr=5e-4),
    dict(iters=300, terms=['rec', 'p', 'u', 'align'], propagation=True, lr=5e-4),
]
