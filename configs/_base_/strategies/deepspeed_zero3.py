# DeepSpeed ZeRO stage 3 through mmengine's FlexibleRunner (docs/get_started.md, "Choosing a
# distributed strategy"). Needs CUDA GPUs and `pip install deepspeed`. As ZeRO-2
# (deepspeed_zero2.py), and the parameters are partitioned too: DeepSpeed gathers each
# layer's parameters when it runs. Training runs in bfloat16; --amp is refused.
strategy = dict(
    type='DeepSpeedStrategy',
    zero_optimization=dict(
        stage=3,
        overlap_comm=True,
        contiguous_gradients=True,
        reduce_bucket_size=int(2e8),
        stage3_prefetch_bucket_size=int(2e8),
        stage3_param_persistence_threshold=int(1e5),
        # the full bfloat16 weights are gathered on rank 0 when a checkpoint is saved
        stage3_gather_16bit_weights_on_model_save=True),
    bf16=dict(enabled=True),
    inputs_to_half=['images'],
)
