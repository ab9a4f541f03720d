_base_ = ['./lgdea_p5_cls.py']
# lgdea_p5_cls.py with propagation from the first iteration (one phase).
lgdea_phases = [dict(iters=600, terms=['rec', 'p', 'u', 'align'], propagation=True, lr=5e-4)]
