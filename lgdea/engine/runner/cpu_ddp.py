"""DistributedDataParallel wrapper that also works for a model on the CPU (gloo backend)."""
from typing import Set

import torch.nn as nn
from mmengine.model import MMDistributedDataParallel

from lgdea.registry import MODEL_WRAPPERS

__all__ = ['CPUDistributedDataParallel']


def _module_device_types(module: nn.Module) -> Set[str]:
    """Device types (``'cpu'``, ``'cuda'``, ...) of the parameters and buffers of ``module``."""
    tensors = list(module.parameters()) + list(module.buffers())
    return {t.device.type for t in tensors}


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """:class:`MMDistributedDataParallel` that drops ``device_ids`` for a CPU model.

    mmengine's ``Runner.wrap_model`` (and ``DDPStrategy``) always pass
    ``device_ids=[LOCAL_RANK]`` to a DistributedDataParallel wrapper, which
    ``torch.nn.parallel.DistributedDataParallel`` rejects for a module whose parameters live on
    the CPU ("device_ids ... should be None for CPU modules"). This wrapper removes
    ``device_ids`` and ``output_device`` when every parameter and buffer of ``module`` is on the
    CPU and passes them on unchanged otherwise (a CUDA model under the gloo backend), so the same
    config runs on a GPU machine and on a CPU-only one.

    ``lgdea.engine.runner.setup_runner_env`` selects it automatically when the run is
    distributed on CPU / gloo, as
    ``model_wrapper_cfg=dict(type='lgdea.engine.runner.cpu_ddp.CPUDistributedDataParallel')``:
    mmengine's ``wrap_model`` looks the type up in mmengine's root registry, which does not see
    lgdea's registry, so the full import path is used (see ``dist_setup.CPU_MODEL_WRAPPER``).

    Args:
        module (nn.Module): the model to wrap (a :class:`mmengine.model.BaseModel`).
        detect_anomalous_params (bool): see :class:`MMDistributedDataParallel`.
        **kwargs: passed to :class:`torch.nn.parallel.DistributedDataParallel`
            (``broadcast_buffers``, ``find_unused_parameters``, ...).
    """

    def __init__(self, module: nn.Module, detect_anomalous_params: bool = False, **kwargs):
        devices = _module_device_types(module)
        if not devices or devices == {'cpu'}:
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        super().__init__(
            module=module, detect_anomalous_params=detect_anomalous_params, **kwargs)
