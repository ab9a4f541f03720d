# DeepSpeed ZeRO stage 2 through mmengine's FlexibleRunner (docs/get_started.md, "Choosing a
# distributed strategy"). Needs CUDA GPUs and `pip install deepspeed`. Add this file to the
# `_base_` list of any method config and launch with `bash tools/dist_train.sh CONFIG N`.
# Optimizer state and gradients are partitioned over the N processes, parameters are
# replicated. Training runs in bfloat16 (DeepSpeed's bf16 section; --amp is refused). The
# method config's optim_wrapper becomes DeepSpeedOptimWrapper: its clip_grad max_norm moves to
# `gradient_clipping`, accumulative_counts to `gradient_accumulation_steps`.
strategy = dict(
    type='DeepSpeedStrategy',
    zero_optimization=dict(
        stage=2,
        allgather_partitions=True,
        allgather_bucket_size=int(2e8),
        reduce_scatter=True,
        reduce_bucket_size=int(2e8),
        overlap_comm=True,
        contiguous_gradients=True),
    bf16=dict(enabled=True),
    # the images produced by VLDataPreprocessor meet bfloat16 weights; token ids stay integers
    inputs_to_half=['images'],
)
