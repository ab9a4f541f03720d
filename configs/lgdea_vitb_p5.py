# LGDEA, ViT-B/16 + clinical BERT, MIMIC-CXR at 5% pairing (paper Tables II-V).
#   python tools/extract_evidence.py configs/lgdea_vitb_p5.py    # once (LLM: local endpoint)
#   bash tools/dist_train.sh configs/lgdea_vitb_p5.py 2
_base_ = [
    '_base_/default_runtime.py',
    '_base_/datasets/mimic_cxr.py',
    '_base_/models/lgdea_vitb.py',
    '_base_/schedules/lgdea_phased.py',
]
pair_ratio = 0.05
train_dataloader = dict(
    batch_size=64,  # per GPU; the phase hook sets global batch / world size per phase
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='PropagationSampler'),
    dataset=dict(pair_ratio=pair_ratio, include_unpaired=True,
                 evidence={{_base_.evidence}}, report_pipeline={{_base_.report_pipeline}}))
custom_hooks = [
    dict(type='PairingSplitHook'),
    dict(type='LGDEAPhaseHook', by_epoch=True, phases='lgdea_phases'),
    dict(type='CorruptImageReportHook'),
]
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))
