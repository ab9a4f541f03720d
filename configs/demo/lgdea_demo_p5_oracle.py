_base_ = ['./lgdea_demo_p5_repaired.py']
# ORACLE, not a method: the repaired LGDEA at 5% whose propagated targets are replaced by
# class-level links read from the dataset's finding labels (OracleClassPropagation), i.e. what
# a perfect propagation could give the unpaired images and reports. The benchmark's upper
# bound of propagation (docs/benchmark.md, "Unpaired data"); everything else, including the
# phase table, is the repaired config's.
model = dict(propagation=dict(type='OracleClassPropagation'))
