_base_ = ['./lgdea_p5_cls_pseudo_b96.py']
# lgdea_p5_cls_pseudo_b96.py with the image-view term L_view in every phase: each unpaired image
# of the batch is contrasted with a strongly augmented view of itself (BatchStrongAugment,
# temperature 0.1, own MLP head), so every unpaired image trains the image encoder whether or
# not it receives a pseudo-link (LGDEA(view_loss=...), docs/lgdea_departures.md). One more
# encoder pass over the 32 unpaired images per step.
model = dict(view_loss=dict(type='ContrastiveLoss', loss_weight=1.0))
lgdea_phases = [
    dict(iters=120, terms=['rec', 'align', 'v'], propagation=False, lr=5e-4),
    dict(iters=180, terms=['rec', 'p', 'u', 'align', 'v'], propagation=False, lr=5e-4),
    dict(iters=300, terms=['rec', 'p', 'u', 'align', 'v'], propagation=True, lr=5e-4),
]
