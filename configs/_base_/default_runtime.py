default_scope = 'lgdea'
custom_imports = dict(imports=['lgdea'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # samples/s, data-wait share, peak memory, FLOPs/sample and MFU per rank, at the logger's
    # interval; summary in <work_dir>/throughput.json
    throughput=dict(type='ThroughputHook'),
    # stop at the first NaN/inf loss term, grad norm or weight (docs/get_started.md); a
    # default hook so that configs replacing `custom_hooks` keep it
    non_finite_guard=dict(type='NonFiniteGuardHook'),
)
# CorruptImageReportHook: images skipped by LoadCXRImage(on_error='skip') and how their places
# were filled, reported at the end of every epoch
custom_hooks = [dict(type='PairingSplitHook'), dict(type='CorruptImageReportHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
