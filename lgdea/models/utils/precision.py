"""Float32 islands inside bf16 / fp16 autocast (``tools/train.py --amp``).

Under autocast the encoders run their matmuls in the low-precision dtype; the losses and
the small heads in front of them must not: a softmax / log-softmax / logsumexp over logits
scaled by ``1 / tau`` (tau 0.07-0.1) and a batch norm over nearly equal features amplify
bf16's 8-bit mantissa (about 3 significant digits). :func:`float32_forward` marks such a
function: while an autocast region is active it leaves it, casts the floating-point tensor
arguments to float32 and runs the function in float32. Outside autocast it only calls the
function (float32 models are unchanged, bit for bit).
"""
import functools
from contextlib import ExitStack
from typing import Any, Callable

import torch

__all__ = ['float32_forward', 'autocast_active', 'to_float32']

_DEVICE_TYPES = ('cuda', 'cpu')


def autocast_active() -> bool:
    """True inside an enabled ``torch.autocast`` region of CUDA or CPU."""
    return any(torch.is_autocast_enabled(d) for d in _DEVICE_TYPES)


def to_float32(obj: Any) -> Any:
    """Floating-point tensors (also inside dicts, lists and tuples) cast to float32; other
    values unchanged."""
    if torch.is_tensor(obj):
        return obj.float() if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return type(obj)((k, to_float32(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)) and not hasattr(obj, '_fields'):
        return type(obj)(to_float32(v) for v in obj)
    return obj


def float32_forward(fn: Callable) -> Callable:
    """Decorator: run ``fn`` in float32 (autocast off, float tensor arguments cast) while an
    autocast region is active; a plain call otherwise."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not autocast_active():
            return fn(*args, **kwargs)
        with ExitStack() as stack:
            for device_type in _DEVICE_TYPES:
                if torch.is_autocast_enabled(device_type):
                    stack.enter_context(torch.autocast(device_type, enabled=False))
            return fn(*to_float32(args), **to_float32(kwargs))

    return wrapper
