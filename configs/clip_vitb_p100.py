# CLIP / ConVIRT global contrastive baseline, ViT-B/16 + clinical BERT, MIMIC-CXR, fully paired.
#   python tools/train.py configs/clip_vitb_p100.py
_base_ = [
    '_base_/default_runtime.py',
    '_base_/datasets/mimic_cxr.py',
    '_base_/models/clip_vitb.py',
    '_base_/schedules/paper_iter.py',
]
pair_ratio = 1.0
train_dataloader = dict(dataset=dict(pair_ratio=pair_ratio, include_unpaired=False))
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000,
                                     max_keep_ckpts=3))
