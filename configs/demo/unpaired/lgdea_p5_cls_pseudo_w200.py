_base_ = ['./lgdea_p5_cls_pseudo.py']
# lgdea_p5_cls_pseudo.py with a shorter paired-only warm-up: P = Y for 200 steps, pseudo-links
# for the remaining 400.
lgdea_phases = [
    dict(iters=100, terms=['rec', 'align'], propagation=False, lr=5e-4),
    dict(iters=100, terms=['rec', 'p', 'u', 'align'], propagation=False, lr=5e-4),
    dict(iters=400, terms=['rec', 'p', 'u', 'align'], propagation=True, lr=5e-4),
]
