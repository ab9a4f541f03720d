# CLIP baseline at 5% pairing: trains on the paired pool only, same number of steps as p100.
_base_ = ['./clip_vitb_p100.py']
pair_ratio = 0.05
train_dataloader = dict(dataset=dict(pair_ratio=pair_ratio))
