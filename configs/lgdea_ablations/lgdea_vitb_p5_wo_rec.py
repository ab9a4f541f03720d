# Table VI/VII ablation "w/o L_rec": term rec removed from every phase, prototypes frozen at
# init, H_R := proj(R^g).
_base_ = ['../lgdea_vitb_p5.py']
lgdea_phases = [dict(ph, terms=[t for t in ph['terms'] if t != 'rec'])
                for ph in _base_.lgdea_phases]
model = dict(report_repr='global', head=dict(freeze=True))
