_base_ = ['./lgdea_p5_cls_b96.py']
# LGDEA without unpaired data: the P = Y ablation (lgdea_p5_cls_b96.py) with its 32 unpaired
# images and reports removed from the batch, so every step holds the control's 64 paired
# studies and nothing else (as CLIP on evidence at 5%). Against lgdea_p5_cls_b96.py it
# measures what the unpaired items add as negatives and in L_rec / L_p / L_u; against the
# control it measures LGDEA's paired objective.
train_dataloader = dict(batch_size=64, batch_sampler=dict(n_paired=64))
