"""Stop training at the first non-finite loss, gradient norm or parameter (divergence guard)."""
import math
from typing import Any, Dict, List, Optional

import torch
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from lgdea.engine.optimizers import SkipNonFiniteOptimWrapper
from lgdea.registry import HOOKS

__all__ = ['NonFiniteGuardHook', 'batch_study_ids']


def _sample_study_id(sample) -> Optional[Any]:
    """``study_id`` of a DataSample / dict / object, or None."""
    if sample is None:
        return None
    if isinstance(sample, dict):
        return sample.get('study_id')
    metainfo = getattr(sample, 'metainfo', None)
    if isinstance(metainfo, dict) and metainfo.get('study_id') is not None:
        return metainfo['study_id']
    return getattr(sample, 'study_id', None)


def batch_study_ids(data_batch) -> List[Any]:
    """Study ids of a batch, in batch order without repeats (images first, then reports).

    Reads ``data_samples`` and ``reports`` (``vl_collate``) of a dict batch; anything else, or
    samples without ``study_id``, gives an empty list (the guard then says 'unknown').
    """
    if not isinstance(data_batch, dict):
        return []
    ids: List[Any] = []
    for key in ('data_samples', 'reports'):
        samples = data_batch.get(key)
        if not isinstance(samples, (list, tuple)):
            continue
        for sample in samples:
            sid = _sample_study_id(sample)
            if sid is not None and sid not in ids:
                ids.append(sid)
    return ids


def _as_float(value) -> float:
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean()) if value.numel() else float('nan')
    return float(value)


@HOOKS.register_module()
class NonFiniteGuardHook(Hook):
    """Raise ``RuntimeError`` as soon as a training iteration produced a non-finite value.

    After every training iteration (``after_train_iter``) it checks:

    1. every loss entry of ``outputs``, the ``log_vars`` dict returned by the model's
       ``train_step`` (``parse_losses``: the total ``loss`` and each term whose key contains
       ``'loss'``; other logged diagnostics may be NaN by design, e.g. a precision over an empty
       set, and are not checked);
    2. ``train/grad_norm`` in the message hub, when the optim wrapper clips gradients
       (``clip_grad=dict(type='norm')`` logs it at every update step). Not under
       ``AmpOptimWrapper``: there an inf norm is a step that the dynamic loss scaler skipped on
       purpose, not divergence;
    3. every trainable parameter (``torch.isfinite(p).all()``).

    Why parameters rather than gradients: by ``after_train_iter`` mmengine has already run
    ``optimizer.step()`` and ``zero_grad()``, so the gradients are gone. A non-finite gradient
    that was applied shows up in the parameters (SGD / Adam propagate NaN / inf into the
    weights), and checking them is exactly the property that matters (no NaN weights reach a
    checkpoint), while a step skipped by an AMP loss scaler leaves them finite and is correctly
    not reported. Cost: one elementwise pass over the trainable parameters (less than the
    optimizer step itself, which reads them several times) and a single host sync for all
    checks together; RuntimeInfoHook syncs on the losses every iteration anyway.

    On a non-finite value it logs (level ERROR) and raises a ``RuntimeError`` naming the
    offending terms / parameters, the iteration (1-based, as in the training log) and the
    batch's study ids (``data_samples`` / ``reports`` metainfo ``study_id``; 'unknown' when the
    batch has none), so the run stops with a non-zero exit and before the next checkpoint.
    Under DDP the flag is all-reduced (MAX), so every rank raises at the same iteration instead
    of the others hanging in the next collective.

    Skip mode: a hook cannot skip a step (by ``after_train_iter`` mmengine has already applied
    the update), so skipping lives in the optim wrapper, the one switch for it:
    ``optim_wrapper=dict(type='SkipNonFiniteOptimWrapper', max_skipped_steps=10, ...)`` checks
    the loss and the gradients *before* the update and skips a non-finite one. This hook then
    logs each skipped step (level WARNING: iteration, reason, terms, study ids, count so far)
    instead of stopping, still checks the parameters, and logs the total after training; the
    wrapper stops the run past ``max_skipped_steps``. ``action`` only accepts ``'raise'``.

    Args:
        action: what to do on a non-finite value that was not skipped; only ``'raise'``.
        check_params: also check the trainable parameters (default True).
        check_grad_norm: also check ``train/grad_norm`` when it is logged (default True).
    """

    priority = 'VERY_HIGH'  # before CheckpointHook / LoggerHook of the same iteration

    def __init__(self, action: str = 'raise', check_params: bool = True,
                 check_grad_norm: bool = True):
        if action != 'raise':
            raise ValueError(
                f"NonFiniteGuardHook: action={action!r} is not supported; only 'raise'. "
                'To skip non-finite steps instead, set '
                "optim_wrapper.type='SkipNonFiniteOptimWrapper' (with max_skipped_steps): a "
                'hook runs after mmengine has applied the update and cannot skip it.')
        self.action = action
        self.check_params = check_params
        self.check_grad_norm = check_grad_norm

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    @staticmethod
    def _wrappers(runner) -> list:
        wrappers = getattr(runner.optim_wrapper, '_optim_wrappers', None)
        return (list(wrappers.values()) if isinstance(wrappers, dict)
                else [runner.optim_wrapper])

    def _skipped(self, runner) -> Optional[str]:
        """Reason the optim wrapper skipped this iteration's update ('loss' / 'grad'), or None."""
        for wrapper in self._wrappers(runner):
            if isinstance(wrapper, SkipNonFiniteOptimWrapper) and wrapper.last_step_skipped:
                return wrapper.last_step_skipped
        return None

    def _grad_norm(self, runner) -> Optional[float]:
        if not self.check_grad_norm:
            return None
        from mmengine.optim import AmpOptimWrapper
        if any(isinstance(w, AmpOptimWrapper) for w in self._wrappers(runner)):
            return None
        buf = runner.message_hub.log_scalars.get('train/grad_norm')
        if buf is None or not len(buf.data[0]):
            return None
        return float(buf.current())

    def _params(self, runner) -> List[torch.Tensor]:
        if not self.check_params:
            return []
        return [p for p in self._model(runner).parameters() if p.requires_grad]

    # ------------------------------------------------------------------ hook
    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[Dict[str, Any]] = None) -> None:
        outputs = outputs or {}
        values = {k: v for k, v in outputs.items()
                  if 'loss' in k and isinstance(v, (torch.Tensor, float, int))
                  and not isinstance(v, bool)}
        params = self._params(runner)
        skipped = self._skipped(runner)
        if skipped:
            # the wrapper skipped the update: a non-finite loss / gradient is expected here
            self._report_skip(runner, skipped, values, data_batch)
            values = {}
        grad_norm = None if skipped else self._grad_norm(runner)

        flags = []
        device = params[0].device if params else None
        for v in values.values():
            if isinstance(v, torch.Tensor):
                device = device or v.device
                flags.append(torch.isfinite(v.detach()).all().reshape(1))
            else:
                flags.append(torch.tensor([math.isfinite(float(v))]))
        device = device or torch.device('cpu')
        flags = [f.to(device) for f in flags]
        flags.extend(torch.isfinite(p.detach()).all().reshape(1) for p in params)
        if grad_norm is not None:
            flags.append(torch.tensor([math.isfinite(grad_norm)], device=device))
        if not flags:
            return
        bad = (~torch.cat(flags)).any().to(torch.int32)
        if get_world_size() > 1:
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        if not bool(bad.item()):
            return
        self._fail(runner, values, grad_norm, data_batch)

    def after_train(self, runner) -> None:
        skipped = [s for w in self._wrappers(runner) if isinstance(w, SkipNonFiniteOptimWrapper)
                   for s in w.skipped_steps]
        if skipped:
            where = ', '.join(f'{i} ({r})' for i, r in skipped[:20]) + (
                f' (+{len(skipped) - 20} more)' if len(skipped) > 20 else '')
            print_log(f'NonFiniteGuardHook: {len(skipped)} training step(s) skipped for a '
                      f'non-finite loss or gradient, at iterations {where}.',
                      logger='current', level=30)

    @staticmethod
    def _non_finite_terms(values: Dict[str, Any]) -> List[str]:
        terms = []
        for key, v in values.items():
            finite = (bool(torch.isfinite(v.detach()).all()) if isinstance(v, torch.Tensor)
                      else math.isfinite(float(v)))
            if not finite:
                terms.append(f'{key}={_as_float(v)}')
        return terms

    @staticmethod
    def _ids_text(data_batch) -> str:
        ids = batch_study_ids(data_batch)
        if not ids:
            return 'unknown'
        return ', '.join(str(i) for i in ids[:20]) + (
            f' (+{len(ids) - 20} more)' if len(ids) > 20 else '')

    def _report_skip(self, runner, reason: str, values: Dict[str, Any], data_batch) -> None:
        count = sum(len(w.skipped_steps) for w in self._wrappers(runner)
                    if isinstance(w, SkipNonFiniteOptimWrapper))
        limit = max(w.max_skipped_steps for w in self._wrappers(runner)
                    if isinstance(w, SkipNonFiniteOptimWrapper))
        terms = self._non_finite_terms(values)
        what = ('non-finite ' + ', '.join(terms)) if terms else f'non-finite {reason}'
        if reason == 'grad':
            what = 'non-finite gradients' + (f' ({", ".join(terms)})' if terms else '')
        print_log(f'NonFiniteGuardHook: skipped the update of iteration {runner.iter + 1} '
                  f'({what}; skipped so far: {count}, limit {limit}). Batch study ids: '
                  f'{self._ids_text(data_batch)}.', logger='current', level=30)

    def _fail(self, runner, values: Dict[str, Any], grad_norm: Optional[float],
              data_batch) -> None:
        iteration = runner.iter + 1
        terms = self._non_finite_terms(values)
        if grad_norm is not None and not math.isfinite(grad_norm):
            terms.append(f'grad_norm={grad_norm}')
        bad_params = []
        if self.check_params:
            for name, p in self._model(runner).named_parameters():
                if p.requires_grad and not bool(torch.isfinite(p.detach()).all()):
                    bad_params.append(name)
        parts = []
        if terms:
            parts.append('non-finite ' + ', '.join(terms))
        if bad_params:
            shown = ', '.join(bad_params[:5]) + (
                f' (+{len(bad_params) - 5} more)' if len(bad_params) > 5 else '')
            parts.append(f'non-finite parameters after the update: {shown}')
        if not parts:
            parts.append('non-finite value on another rank')
        ids_text = self._ids_text(data_batch)
        msg = (f'NonFiniteGuardHook: training diverged at iteration {iteration} '
               f'(epoch {runner.epoch}): {"; ".join(parts)}. Batch study ids: {ids_text}. '
               'Lower the learning rate, enable gradient clipping '
               "(optim_wrapper.clip_grad=dict(max_norm=...)) or check these studies' data.")
        print_log(msg, logger='current', level=40)
        raise RuntimeError(msg)
