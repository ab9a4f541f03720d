_base_ = ['./lgdea_p5_cls_pseudo_b96.py']
# lgdea_p5_cls_pseudo_b96.py with the report-side evidence links
# (PseudoLabelPropagation(report_links=True)): an unpaired report whose evidence set equals a
# paired study's report is linked to that study's image in the propagated phase.
model = dict(propagation=dict(report_links=True))
