_base_ = ['./oracle_p5_cls.py']
# ORACLE (upper bound, not a method): oracle_p5_cls.py with the oracle targets from the first
# iteration (one phase), so unpaired items are seen as often as at 100% pairing.
lgdea_phases = [dict(iters=600, terms=['rec', 'p', 'u', 'align'], propagation=True, lr=5e-4)]
