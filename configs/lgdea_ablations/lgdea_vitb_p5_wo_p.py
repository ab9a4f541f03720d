# Ablation "w/o L_p^evid".
_base_ = ['../lgdea_vitb_p5.py']
model = dict(loss=dict(w_p=0.0))
custom_hooks = [
    dict(type='PairingSplitHook'),
    dict(type='LGDEAPhaseHook', by_epoch=True, phases=[
        dict(epochs=2, batch_size=128, lr=5e-5, terms=['rec', 'align'], propagation=False),
        dict(epochs=5, batch_size=64, lr=1e-4, terms=['rec', 'u', 'align'], propagation=False),
        dict(epochs=5, batch_size=64, lr=1e-4, terms=['rec', 'u', 'align'], propagation=True)]),
]
