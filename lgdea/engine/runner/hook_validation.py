"""Fail before training on hook settings that mmengine would only reject at their first use."""
import difflib
import inspect

from mmengine.hooks import CheckpointHook

__all__ = ['check_hook_args']

#: arguments CheckpointHook passes to ``runner.save_checkpoint`` by name itself
_PASSED_BY_CHECKPOINT_HOOK = ('out_dir', 'filename', 'file_client_args', 'save_optimizer',
                              'save_param_scheduler', 'meta', 'by_epoch', 'backend_args')


def check_hook_args(runner) -> None:
    """Raise ``ValueError`` for a ``CheckpointHook`` setting that no code accepts.

    ``CheckpointHook`` takes ``**kwargs`` and forwards them to ``runner.save_checkpoint`` at the
    first save, so a typo such as ``default_hooks.checkpoint.intervall=1`` trains for hours and
    then crashes with a ``TypeError``. Every hook without ``**kwargs`` already fails when the
    runner builds it. Call this after the runner is built and before ``runner.train()``.

    Args:
        runner: a built mmengine ``Runner`` (its registered hooks are checked).
    """
    params = inspect.signature(runner.save_checkpoint).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = set(params) - set(_PASSED_BY_CHECKPOINT_HOOK)
    known = sorted(set(inspect.signature(CheckpointHook.__init__).parameters) - {'self', 'kwargs'})
    for hook in runner.hooks:
        if not isinstance(hook, CheckpointHook):
            continue
        for key in sorted(set(getattr(hook, 'args', {}) or {}) - accepted):
            close = difflib.get_close_matches(key, known, n=1)
            hint = f'did you mean `{close[0]}`? ' if close else ''
            raise ValueError(
                f'{type(hook).__name__} got an unknown argument `{key}` '
                f'(default_hooks.checkpoint.{key} in the config); {hint}it would only fail at '
                f'the first checkpoint save, after training. Known arguments: {", ".join(known)}.')
