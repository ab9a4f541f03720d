_base_ = ['./lgdea_p5_cosine.py']
# ORACLE (upper bound, not a method): lgdea_p5_cosine.py with class-level oracle targets.
model = dict(propagation=dict(type='OracleClassPropagation'))
