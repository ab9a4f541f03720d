_base_ = ['./lgdea_p5_cls.py']
# lgdea_p5_cls.py with cross-modal pseudo-links (PseudoLabelPropagation: confident unpaired
# images linked to the reports of their most likely evidence set) instead of Eq. 15-17, in the
# propagated phase of the repaired phase table.
model = dict(propagation=dict(type='PseudoLabelPropagation', tau_pl=0.05, threshold=0.5))
