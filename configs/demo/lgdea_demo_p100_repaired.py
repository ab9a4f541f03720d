_base_ = ['./lgdea_demo_p5_repaired.py']
# The repaired LGDEA at 100% pairing: every batch is fully paired, so P = Y in every phase
# (EvidencePropagation(at_full_pairing='hard')) and the unpaired terms see only paired items.
pair_ratio = 1.0
train_dataloader = dict(dataset=dict(pair_ratio=pair_ratio))
