"""Keeps MGCA's prototypes fixed during the first epoch(s) (SwAV trick, docs/baselines.md 2.6)."""
import math
from typing import List, Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop

from lgdea.registry import HOOKS

__all__ = ['MGCAPrototypeFreezeHook']


@HOOKS.register_module()
class MGCAPrototypeFreezeHook(Hook):
    """Drop the prototype gradients while ``epoch < freeze_epochs``.

    The official code sets the prototype gradients to None after backward during the first
    epoch (``on_after_backward``): the optimizer then skips the prototypes (no update, no
    weight decay, no optimizer state), while the encoders still receive the CPA gradient. The
    hook does the same in two places: a tensor hook on each prototype parameter replaces its
    gradient by zeros during backward (so DDP all-reduces zeros and gradient clipping sees no
    prototype gradient), and an optimizer step pre-hook sets ``grad = None`` before the
    optimizer runs (so it skips the parameters, as in the official code). Both work under DDP
    and AMP.

    "Epoch" follows the train loop: the runner's epoch for ``EpochBasedTrainLoop``; for an
    iteration-based loop (the project's baselines, with an infinite sampler whose epoch never
    advances) one epoch is ``iters_per_epoch`` iterations, by default
    ``ceil(len(train dataset) / (batch size x world size))``: one pass over the paired pool.

    Args:
        freeze_epochs: number of frozen epochs (official: 1).
        iters_per_epoch: override the iterations of one epoch (iteration-based loops).
        param_prefixes: names (prefixes) of the frozen parameters in the model.
    """

    priority = 'NORMAL'

    def __init__(self, freeze_epochs: int = 1, iters_per_epoch: Optional[int] = None,
                 param_prefixes: Sequence[str] = ('cpa_loss.prototype_layer.', )):
        if freeze_epochs < 0:
            raise ValueError(f'freeze_epochs must be >= 0, got {freeze_epochs}')
        if iters_per_epoch is not None and iters_per_epoch <= 0:
            raise ValueError(f'iters_per_epoch must be positive, got {iters_per_epoch}')
        self.freeze_epochs = int(freeze_epochs)
        self.iters_per_epoch = iters_per_epoch
        self.param_prefixes = tuple(param_prefixes)
        self.frozen = False
        self._params: List[torch.nn.Parameter] = []
        self._handles = []
        self._by_epoch = True
        self._freeze_iters = 0

    # ---------------------------------------------------------------- setup
    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._params = [p for n, p in model.named_parameters()
                        if any(n.startswith(prefix) for prefix in self.param_prefixes)]
        if not self._params:
            raise KeyError(f'MGCAPrototypeFreezeHook: no parameter of {type(model).__name__} '
                           f'starts with {list(self.param_prefixes)}; set `param_prefixes` to '
                           'the prototype layer of the model.')
        self._by_epoch = isinstance(runner.train_loop, EpochBasedTrainLoop)
        if not self._by_epoch:
            ipe = self.iters_per_epoch or self._infer_iters_per_epoch(runner)
            self._freeze_iters = self.freeze_epochs * ipe
            runner.logger.info(f'MGCAPrototypeFreezeHook: prototypes frozen for the first '
                               f'{self._freeze_iters} iterations ({self.freeze_epochs} x {ipe})')
        for p in self._params:
            self._handles.append(p.register_hook(self._zero_if_frozen))
        for optimizer in _optimizers(runner.optim_wrapper):
            self._handles.append(optimizer.register_step_pre_hook(self._drop_grads))
        self.frozen = self._should_freeze(runner)

    @staticmethod
    def _infer_iters_per_epoch(runner) -> int:
        loader = runner.train_dataloader
        batch = loader.batch_size
        if batch is None and loader.batch_sampler is not None:
            batch = getattr(loader.batch_sampler, 'batch_size', None)
        if not batch:
            raise ValueError('MGCAPrototypeFreezeHook: cannot infer the batch size of the train '
                             'dataloader; set `iters_per_epoch`.')
        return max(1, math.ceil(len(loader.dataset) / (batch * runner.world_size)))

    def _should_freeze(self, runner) -> bool:
        if self._by_epoch:
            return runner.epoch < self.freeze_epochs
        return runner.iter < self._freeze_iters

    # ------------------------------------------------------------ per step
    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        frozen = self._should_freeze(runner)
        if self.frozen and not frozen:
            runner.logger.info(f'MGCAPrototypeFreezeHook: prototypes trainable from iteration '
                               f'{runner.iter} (epoch {runner.epoch})')
        self.frozen = frozen

    def _zero_if_frozen(self, grad: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(grad) if self.frozen else grad

    def _drop_grads(self, optimizer, args, kwargs) -> None:
        if self.frozen:
            for p in self._params:
                p.grad = None

    def after_train(self, runner) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _optimizers(optim_wrapper) -> list:
    """The torch optimizers behind an OptimWrapper or an OptimWrapperDict."""
    if hasattr(optim_wrapper, 'optim_wrappers'):  # OptimWrapperDict
        return [w.optimizer for w in optim_wrapper.optim_wrappers.values()]
    return [optim_wrapper.optimizer]
