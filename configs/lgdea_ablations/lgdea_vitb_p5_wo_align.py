# Ablation "w/o L_evi-align" as the paper defines it: P = Y (contrastive loss over paired
# items only, hard positives) in every phase.
_base_ = ['../lgdea_vitb_p5.py']
model = dict(use_propagation=False, propagation=dict(steps=0))
