# LGDEA at 10% pairing.
_base_ = ['./lgdea_vitb_p5.py']
pair_ratio = 0.10
train_dataloader = dict(dataset=dict(pair_ratio=pair_ratio))
