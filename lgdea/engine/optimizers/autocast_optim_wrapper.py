"""bf16 mixed precision without loss scaling, on a GPU or on the CPU (``tools/train.py --amp``)."""
from contextlib import contextmanager
from typing import Optional

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

from lgdea.registry import OPTIM_WRAPPERS

__all__ = ['AutocastOptimWrapper']


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward (``optim_context``) runs under ``torch.autocast`` in
    bfloat16.

    bfloat16 has float32's exponent range, so gradients cannot underflow the way float16 ones
    do and no loss scaler is needed: ``backward`` and ``step`` are the plain ones. Parameters,
    gradients and optimizer state stay float32 (autocast only casts the inputs of matmuls /
    convolutions); the losses and the small heads before them run in float32 inside the
    region (:func:`lgdea.models.utils.float32_forward`). mmengine's ``AmpOptimWrapper`` needs a
    GPU and always loss-scales; this wrapper also runs on the CPU, where it is how the bf16
    path is tested (docs/get_started.md, "Speed options"). For float16 use ``AmpOptimWrapper``
    (``tools/train.py --amp --amp-dtype float16``), whose dynamic loss scale float16 needs.

    Args:
        dtype: the autocast dtype; only ``'bfloat16'`` (float16 needs loss scaling).
        device_type: ``'cuda'`` or ``'cpu'``; None (default) = the device of the model's
            first parameter at each forward.
        **kwargs: ``OptimWrapper`` arguments (``optimizer``, ``clip_grad``,
            ``accumulative_counts``, ...).
    """

    def __init__(self, *args, dtype: str = 'bfloat16', device_type: Optional[str] = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(f'AutocastOptimWrapper: dtype must be "bfloat16", got {dtype!r}; '
                             "float16 needs loss scaling: use type='AmpOptimWrapper', "
                             "dtype='float16' (tools/train.py --amp --amp-dtype float16).")
        if device_type not in (None, 'cuda', 'cpu'):
            raise ValueError('AutocastOptimWrapper: device_type must be None, "cuda" or "cpu", '
                             f'got {device_type!r}.')
        self.cast_dtype = torch.bfloat16
        self.device_type = device_type

    def _device_type(self, model: nn.Module) -> str:
        if self.device_type is not None:
            return self.device_type
        param = next(model.parameters(), None)
        kind = param.device.type if param is not None else 'cpu'
        if kind == 'cuda' and not torch.cuda.is_bf16_supported():
            raise RuntimeError(f'AutocastOptimWrapper: {torch.cuda.get_device_name()} does not '
                               'support bfloat16; train in float32, or with float16 through '
                               "AmpOptimWrapper (tools/train.py --amp --amp-dtype float16).")
        if kind not in ('cuda', 'cpu'):
            raise RuntimeError(f'AutocastOptimWrapper: no bf16 autocast for device {kind!r} '
                               '(cuda or cpu).')
        return kind

    @contextmanager
    def optim_context(self, model: nn.Module):
        """The parent's context (gradient-accumulation ``no_sync``) inside a bf16 autocast
        region of the model's device."""
        with super().optim_context(model), torch.autocast(self._device_type(model),
                                                          dtype=self.cast_dtype):
            yield
