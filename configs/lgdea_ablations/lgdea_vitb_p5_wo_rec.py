# Table VI/VII ablation "w/o L_rec": w_rec = 0, prototypes frozen at init, H_R := proj(R^g).
_base_ = ['../lgdea_vitb_p5.py']
model = dict(report_repr='global', head=dict(freeze=True), loss=dict(w_rec=0.0))
custom_hooks = [
    dict(type='PairingSplitHook'),
    dict(type='LGDEAPhaseHook', by_epoch=True, phases=[
        dict(epochs=2, batch_size=128, lr=5e-5, terms=['align'], propagation=False),
        dict(epochs=5, batch_size=64, lr=1e-4, terms=['p', 'u', 'align'], propagation=False),
        dict(epochs=5, batch_size=64, lr=1e-4, terms=['p', 'u', 'align'], propagation=True)]),
]
