_base_ = ['./clip_demo_p100.py']
# 5% of the studies keep their pairs; CLIP cannot use the unpaired images and reports.
pair_ratio = 0.05
train_dataloader = dict(dataset=dict(pair_ratio=pair_ratio))
