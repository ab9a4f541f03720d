_base_ = ['./gloria_r50_p100.py']
# 5% of the studies keep their pairs (same number of optimizer steps as 100%).
pair_ratio = 0.05
train_dataloader = dict(dataset=dict(pair_ratio=pair_ratio))
