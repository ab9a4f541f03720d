"""An optim wrapper that skips (and counts) updates whose loss or gradients are not finite."""
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper

from lgdea.registry import OPTIM_WRAPPERS

__all__ = ['SkipNonFiniteOptimWrapper', 'TooManySkippedStepsError']


class TooManySkippedStepsError(RuntimeError):
    """More non-finite steps than ``max_skipped_steps``: the run is diverging, not unlucky."""


@OPTIM_WRAPPERS.register_module()
class SkipNonFiniteOptimWrapper(OptimWrapper):
    """``OptimWrapper`` that skips an update whose loss or gradients contain NaN / inf.

    The skip mode of the divergence guard (``NonFiniteGuardHook`` stops at the first
    non-finite value; this wrapper lets a long run survive a rare bad batch). Per call of
    :meth:`update_params`:

    1. the loss is checked *before* ``backward``: a non-finite loss is not back-propagated;
    2. after ``backward`` every gradient is checked (before clipping, so a clipped inf cannot
       hide as a finite norm): a non-finite gradient is zeroed instead of applied.

    A skipped step leaves the parameters and the optimizer state untouched (no ``step``; the
    learning-rate schedule still advances with the iteration). Each skip is recorded as
    ``(iteration, reason)`` in :attr:`skipped_steps` and as ``train/skipped_steps`` (the
    running count) in the message hub; ``NonFiniteGuardHook`` logs it with the batch's study
    ids and does not stop for it. Skip number ``max_skipped_steps + 1`` raises
    :class:`TooManySkippedStepsError`: a run that keeps producing NaN is diverging.

    Under DDP / FSDP the decision is all-reduced (any rank bad -> every rank skips), so ranks
    never disagree on whether to call ``backward`` or ``step`` (which would hang DDP's gradient
    all-reduce). Gradient accumulation is not supported (``accumulative_counts`` must be 1):
    a skip in the middle of an accumulation window has no single right meaning.

    For float16 AMP use mmengine's ``AmpOptimWrapper``, whose loss scaler already skips
    overflowing steps on purpose; this wrapper is the float32 / bfloat16 counterpart.

    Args:
        max_skipped_steps: how many skipped steps a run may have before it stops (default 10;
            0 = stop at the first, like the guard hook alone, but before the bad update).
        **kwargs: ``OptimWrapper`` arguments (``optimizer``, ``clip_grad``, ...).
    """

    def __init__(self, *args, max_skipped_steps: int = 10, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(max_skipped_steps, int) or max_skipped_steps < 0:
            raise ValueError('SkipNonFiniteOptimWrapper: max_skipped_steps must be an integer '
                             f'>= 0, got {max_skipped_steps!r}.')
        if self._accumulative_counts != 1:
            raise ValueError(
                'SkipNonFiniteOptimWrapper does not support gradient accumulation '
                f'(optim_wrapper.accumulative_counts={self._accumulative_counts}); use '
                "type='OptimWrapper' with accumulation, or a larger batch without it.")
        self.max_skipped_steps = max_skipped_steps
        self.skipped_steps: List[Tuple[int, str]] = []
        self.last_step_skipped: Optional[str] = None

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _any_rank(bad: bool, device: torch.device) -> bool:
        if get_world_size() == 1:
            return bad
        flag = torch.tensor([int(bad)], dtype=torch.int32, device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def _grads(self) -> List[torch.Tensor]:
        return [p.grad for group in self.optimizer.param_groups for p in group['params']
                if p.grad is not None]

    def _grads_finite(self, grads: List[torch.Tensor]) -> bool:
        if not grads:
            return True
        return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())

    def _iteration(self) -> int:
        """1-based training iteration, as in the training log (``RuntimeInfoHook``)."""
        return int(self.message_hub.get_info('iter', -1)) + 1

    def _skip(self, reason: str) -> None:
        self.zero_grad()
        self.last_step_skipped = reason
        self.skipped_steps.append((self._iteration(), reason))
        self.message_hub.update_scalar('train/skipped_steps', len(self.skipped_steps))
        if len(self.skipped_steps) > self.max_skipped_steps:
            where = ', '.join(f'{i} ({r})' for i, r in self.skipped_steps[-10:])
            msg = (f'SkipNonFiniteOptimWrapper: {len(self.skipped_steps)} skipped steps, more '
                   f'than max_skipped_steps={self.max_skipped_steps} (last at iterations '
                   f'{where}). The run is diverging: lower the learning rate, enable gradient '
                   'clipping (optim_wrapper.clip_grad=dict(max_norm=...)) or check the '
                   'studies the training log names for these iterations.')
            print_log(msg, logger='current', level=40)
            raise TooManySkippedStepsError(msg)

    # ------------------------------------------------------------------ update
    def update_params(self, loss: torch.Tensor, step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        """A plain update (``backward``, ``step``, ``zero_grad``) unless a non-finite value
        makes it a counted skip. ``loss``: the scalar total loss."""
        self.last_step_skipped = None
        if self._any_rank(not bool(torch.isfinite(loss.detach()).all()), loss.device):
            self._inner_count += 1  # the call still counts as a (skipped) accumulation step
            self._skip('loss')
            return
        self.backward(self.scale_loss(loss))
        if self._any_rank(not self._grads_finite(self._grads()), loss.device):
            self._skip('grad')
            return
        self.step(**(step_kwargs or {}))
        self.zero_grad(**(zero_kwargs or {}))

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        state = super().state_dict()
        state['skipped_steps'] = [list(s) for s in self.skipped_steps]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        self.skipped_steps = [(int(i), str(r)) for i, r in state_dict.pop('skipped_steps', [])]
        super().load_state_dict(state_dict)
