_base_ = ['./gloria_vitb_p100.py']
# 5% of the studies keep their pairs.
pair_ratio = 0.05
train_dataloader = dict(dataset=dict(pair_ratio=pair_ratio))
