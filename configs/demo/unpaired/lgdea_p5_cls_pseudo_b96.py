_base_ = ['./lgdea_p5_cls_pseudo.py']
# lgdea_p5_cls_pseudo.py with the control's paired batch: 64 paired studies per step (as CLIP on
# evidence at 5%, batch 64) plus 32 unpaired images and 32 unpaired reports, so the unpaired
# items are added to the paired signal instead of replacing half of it. 1.5x the images and
# reports per step of the 64-item batch (same optimizer steps).
train_dataloader = dict(batch_size=96, batch_sampler=dict(n_paired=64))
