
from .vl_loops import (VLMultiTestLoop, VLMultiValLoop, VLTestLoop, VLValLoop,  # noqa: F401
                       bind_model_to_metrics, dump_test_results, to_jsonable)
from .checkpoint import (CheckpointMismatchError, NonFiniteCheckpointError,  # noqa: F401
                         check_checkpoint_covers_model, check_finite_model,
                         check_finite_state_dict, checkpoint_safe_globals,
                         first_non_finite_key, history_buffer_getattr,
                         register_checkpoint_safe_globals)
from .cpu_ddp import CPUDistributedDataParallel  # noqa: F401
from .hook_validation import check_hook_args  # noqa: F401
from .dist_setup import (CPU_MODEL_WRAPPER, DEFAULT_COLLATE_FN,  # noqa: F401
                         drop_disabled_default_hooks, resolve_collate_fn_scopes,
                         set_dataloader_defaults, setup_runner_env, teardown_runner_env)
from .strategies import (VLFullyShardedDataParallel, FSDPAmpOptimWrapper,  # noqa: F401
                         FSDPAutocastOptimWrapper, FSDPOptimWrapper, build_runner,
                         gathered_params, prepare_strategy_cfg,
                         strategy_type, transformer_block_wrap_policy)
