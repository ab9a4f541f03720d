_base_ = ['./lgdea_p5_cls_pseudo_b96.py']
# The ablation of lgdea_p5_cls_pseudo_b96.py without propagation (P = Y in every phase): the
# same batch of 64 paired studies + 32 unpaired images + 32 unpaired reports, the unpaired items
# only as negatives and in L_rec / L_p / L_u. Separates the pseudo-links from the batch layout.
lgdea_phases = [
    dict(iters=120, terms=['rec', 'align'], propagation=False, lr=5e-4),
    dict(iters=180, terms=['rec', 'p', 'u', 'align'], propagation=False, lr=5e-4),
    dict(iters=300, terms=['rec', 'p', 'u', 'align'], propagation=False, lr=5e-4),
]
