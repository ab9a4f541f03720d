# Ablation "w/o L_evi-align" as the paper defines it: P = Y (contrastive loss over paired
# items only, hard positives) in every phase.
_base_ = ['../lgdea_vitb_p5.py']
lgdea_phases = [dict(ph, propagation=False) for ph in _base_.lgdea_phases]
