# CLIP baseline at 10% pairing: trains on the paired pool only, same number of steps as p100.
_base_ = ['./clip_vitb_p100.py']
pair_ratio = 0.1
train_dataloader = dict(dataset=dict(pair_ratio=pair_ratio))
