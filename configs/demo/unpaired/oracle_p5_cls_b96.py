_base_ = ['./lgdea_p5_cls_pseudo_b96.py']
# ORACLE (upper bound, not a method): lgdea_p5_cls_pseudo_b96.py (same batch of 64 paired + 32
# unpaired images + 32 unpaired reports, same phase table) with class-level oracle targets
# instead of the pseudo-links. `model.propagation.label_noise=eps` degrades it to a known
# target precision (about 1 - eps): how precise must a propagation be to pay?
model = dict(propagation=dict(_delete_=True, type='OracleClassPropagation', row_weight='mass'))
