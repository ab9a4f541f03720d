# MGCA ViT-B/16 on MIMIC-CXR with 10 % of the studies paired: MGCA cannot use the unpaired
# images and reports, so it trains on the paired 10 % for the same number of steps as at 100 %.
_base_ = ['./mgca_vitb_p100.py']
pair_ratio = 0.1
train_dataloader = dict(dataset=dict(pair_ratio=pair_ratio))
