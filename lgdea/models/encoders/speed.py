"""Speed options of the encoders: activation checkpointing of ViT blocks and ``torch.compile``.

Both leave the module tree, parameter names and state-dict keys unchanged, so checkpoints,
``init_cfg`` loading, parameter-wise optimizer settings and FSDP's block wrap policy see the
same model with the options on or off.
"""
import types
from typing import Callable, Optional, Union

import torch
import torch.nn as nn
from torch.utils import checkpoint as torch_checkpoint

__all__ = ['enable_block_checkpointing', 'compile_options', 'compiled_module']


def _checkpointed_forward(self, *args, **kwargs):
    """Bound per block by :func:`enable_block_checkpointing`: the class's forward, under
    non-reentrant activation checkpointing while gradients are recorded in training."""
    forward = type(self).forward
    if self.training and torch.is_grad_enabled():
        return torch_checkpoint.checkpoint(forward, self, *args, use_reentrant=False, **kwargs)
    return forward(self, *args, **kwargs)


def enable_block_checkpointing(backbone: nn.Module) -> int:
    """Checkpoint every transformer block of a ViT backbone (in place).

    A checkpointed block keeps only its input for the backward pass and recomputes its
    internal activations there: one extra forward of the blocks per training step for the
    activation memory of one block instead of all of them. Inference and ``no_grad`` passes
    run the plain forward.

    Args:
        backbone: an mmpretrain ``VisionTransformer`` (``layers``) or timm ViT (``blocks``).

    Returns:
        The number of blocks checkpointed.
    """
    blocks = getattr(backbone, 'layers', None)
    if blocks is None:
        blocks = getattr(backbone, 'blocks', None)
    if not isinstance(blocks, (nn.ModuleList, nn.Sequential)) or len(blocks) == 0:
        raise ValueError(f'gradient_checkpointing: {type(backbone).__name__} has no '
                         'transformer blocks (`layers` / `blocks`); it checkpoints ViT '
                         'backbones only.')
    for block in blocks:
        # an instance attribute: nn.Module.__call__ finds it before the class's forward, and
        # copy.deepcopy rebinds a bound method to the copied block
        block.forward = types.MethodType(_checkpointed_forward, block)
    return len(blocks)


def compile_options(torch_compile: Union[bool, dict, None], owner: str) -> Optional[dict]:
    """``torch_compile`` config value -> ``torch.compile`` kwargs (None = eager).

    ``False`` / None: eager; ``True``: ``torch.compile`` defaults (inductor); a dict: its kwargs
    (``backend``, ``mode``, ``dynamic``, ``fullgraph``, ``options``).
    """
    if torch_compile is None or torch_compile is False:
        return None
    if torch_compile is True:
        return {}
    if isinstance(torch_compile, dict):
        unknown = sorted(set(torch_compile) - {'backend', 'mode', 'dynamic', 'fullgraph',
                                               'options'})
        if unknown:
            raise ValueError(f'{owner}.torch_compile: unknown torch.compile arguments '
                             f'{unknown} (backend, mode, dynamic, fullgraph, options).')
        return dict(torch_compile)
    raise TypeError(f'{owner}.torch_compile must be a bool or a dict of torch.compile '
                    f'arguments, got {torch_compile!r}')


def compiled_module(owner: nn.Module, module: nn.Module, options: dict) -> Callable:
    """``torch.compile(module, **options)``, built on first use and cached on ``owner``.

    The compiled wrapper is kept outside the module tree (not a submodule: no ``_orig_mod.``
    in the state dict, parameters listed once); when ``module`` is no longer the one the
    cached wrapper compiled (a replaced submodule), a new wrapper is built.
    """
    cached = owner.__dict__.get('_compiled_module')
    if cached is None or cached[0] is not module:
        cached = (module, torch.compile(module, **options))
        object.__setattr__(owner, '_compiled_module', cached)
    return cached[1]
