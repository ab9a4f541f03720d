# MGCA on the synthetic demo benchmark with 5% of the studies paired; MGCA cannot use the
# unpaired images and reports, so it trains on the paired 5% for the same number of steps.
_base_ = ['./mgca_demo_p100.py']
pair_ratio = 0.05
train_dataloader = dict(dataset=dict(pair_ratio=pair_ratio))
