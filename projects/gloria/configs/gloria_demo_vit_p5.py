_base_ = ['./gloria_demo_vit_p100.py']
# 5% of the studies keep their pairs; GLoRIA trains on those pairs only.
pair_ratio = 0.05
train_dataloader = dict(dataset=dict(pair_ratio=pair_ratio))
