# Ablation "w/o L_u^evid": term u removed from every phase.
_base_ = ['../lgdea_vitb_p5.py']
lgdea_phases = [dict(ph, terms=[t for t in ph['terms'] if t != 'u']) for ph in _base_.lgdea_phases]
