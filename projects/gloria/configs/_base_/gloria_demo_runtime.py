# What the GLoRIA demo configs share whatever their image encoder: the synthetic demo data,
# schedule and hooks of every demo method, paired pool only, 100% pairing, and the shared
# evaluation protocol plus GLoRIA's official zero-shot protocol.
_base_ = [
    '../../../../configs/_base_/default_runtime.py',
    '../../../../configs/_base_/datasets/synthetic_cxr_demo.py',
    '../../../../configs/_base_/schedules/demo_iter.py',
]
custom_imports = dict(imports=['lgdea', 'projects.gloria.gloria'], allow_failed_imports=False)

pair_ratio = 1.0
# Baselines cannot use unpaired data: paired pool only.
train_dataloader = dict(dataset=dict(pair_ratio=pair_ratio, include_unpaired=False))
custom_hooks = [dict(type='PairingSplitHook'), {{_base_.unpaired_diagnostics}}]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=600, max_keep_ckpts=1))

# The shared protocol (mean prompt embedding, no z-scoring: the global cosine for GLoRIA) plus
# GLoRIA's official zero-shot protocol (max over prompts of the global+local score, per-class
# z-scoring) as an extra, labelled column.
retrieval_evaluator = [
    dict(type='ZeroShotAccuracy',
         extra_protocols=[dict(name='gloria_official', aggregation='max', zscore=True)]),
    dict(type='RetrievalPrecisionAtK', topk=(1, 2, 5, 10)),
]
val_evaluator = retrieval_evaluator
test_evaluator = retrieval_evaluator
