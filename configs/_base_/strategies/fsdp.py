# FSDP: PyTorch FullyShardedDataParallel through mmengine's FlexibleRunner (docs/get_started.md,
# "Choosing a distributed strategy"). Add this file to the `_base_` list of any method config
# and launch with `bash tools/dist_train.sh CONFIG N`. Parameters, gradients and optimizer
# state are sharded over the N processes; each transformer block (ViT, BERT) is one FSDP unit,
# gathered only while it runs. The optimizer wrapper of the method config is kept and becomes
# FSDPOptimWrapper (FSDPAmpOptimWrapper with --amp), whose clip_grad norm spans all shards.
# The wrapper (also on CPU / gloo) keeps the scalar temperature parameters replicated.
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        type='lgdea.engine.runner.strategies.VLFullyShardedDataParallel',
        sharding_strategy='FULL_SHARD',
        use_orig_params=True,
        # rank 0's initial weights on every rank, as DDP does (the ranks may seed differently)
        sync_module_states=True,
        auto_wrap_policy=dict(
            type='lgdea.engine.runner.strategies.transformer_block_wrap_policy')),
    # one checkpoint file with the full weights, written by rank 0: tools/test.py, resuming
    # and the export tools read it like a DDP checkpoint
    state_dict_cfg='full',
)
