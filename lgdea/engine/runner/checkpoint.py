"""Loading mmengine checkpoints under ``torch.load(weights_only=True)`` (torch >= 2.6).

Since torch 2.6 ``torch.load`` defaults to ``weights_only=True`` and only rebuilds tensors,
containers and allow-listed globals. mmengine 0.10.7 calls ``torch.load(filename,
map_location=...)`` (no ``weights_only``) for ``resume``, ``load_from`` and ``tools/test.py``,
and its checkpoints hold more than tensors. Saving a checkpoint of an mmengine ``Runner`` and
loading it with ``weights_only=True`` shows what is needed:

* ``message_hub.log_scalars``: :class:`mmengine.logging.HistoryBuffer` objects (NEWOBJ + BUILD)
  whose state holds float64 numpy arrays (``numpy._core.multiarray._reconstruct``,
  ``numpy.ndarray``, ``numpy.dtype``, ``numpy.dtypes.Float64DType``) and the statistics methods
  pickled by reference as ``getattr(HistoryBuffer, 'mean')`` (GLOBAL ``builtins.getattr``, since
  ``torch.save`` uses pickle protocol 2);
* ``message_hub.runtime_info`` / ``meta['dataset_meta']``: anything the hooks and datasets put
  there, e.g. numpy scalars from metrics (``best_score``: ``numpy._core.multiarray.scalar``),
  numpy arrays of any dtype, :class:`mmengine.config.ConfigDict` values of a dataset's
  ``metainfo`` given in the config;
* ``param_schedulers``: plain dicts (``collections.Counter`` for MultiStepLR is allowed by
  torch already); ``optimizer`` (and AmpOptimWrapper's ``loss_scaler``): tensors and numbers.

Decision (keeps ``weights_only`` security): :func:`register_checkpoint_safe_globals` allow-lists
exactly these types with ``torch.serialization.add_safe_globals``, and replaces the
unrestricted ``builtins.getattr`` by :func:`history_buffer_getattr`, which only returns the
statistics methods of :class:`HistoryBuffer` (allow-listing ``getattr`` itself would let a
crafted file reach any attribute, e.g. a function's ``__globals__``, and run code). Nothing is
loaded with ``weights_only=False``. A checkpoint that holds another type still fails, with a
message (:func:`load_from_local`) naming the file and the type and saying how to allow it.

Importing ``lgdea.engine`` (done by ``lgdea.utils.register_all_modules``) runs the
registration.
"""
import os
import os.path as osp
import pickle
from typing import Any, Callable, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

__all__ = ['register_checkpoint_safe_globals', 'checkpoint_safe_globals',
           'history_buffer_getattr', 'load_from_local', 'NonFiniteCheckpointError',
           'first_non_finite_key', 'check_finite_state_dict', 'check_finite_model',
           'CheckpointMismatchError', 'check_checkpoint_covers_model']

SafeGlobal = Union[Callable, Tuple[Callable, str]]

#: HistoryBuffer statistics methods that mmengine registers by default.
_DEFAULT_STATISTICS = ('min', 'max', 'current', 'mean')


def history_buffer_getattr(obj: Any, name: str) -> Callable:
    """Restricted stand-in for ``getattr`` when unpickling a :class:`HistoryBuffer`.

    A pickled HistoryBuffer stores its statistics methods as ``getattr(HistoryBuffer, 'mean')``.
    This function performs only such look-ups.

    Args:
        obj: must be :class:`HistoryBuffer` (or a subclass).
        name: a statistics method name (``min``, ``max``, ``current``, ``mean`` or one
            registered with ``HistoryBuffer.register_statistics``).

    Returns:
        The method.

    Raises:
        pickle.UnpicklingError: any other ``getattr`` call in the checkpoint.
    """
    allowed = set(_DEFAULT_STATISTICS) | set(HistoryBuffer._statistics_methods)
    if (isinstance(obj, type) and issubclass(obj, HistoryBuffer) and isinstance(name, str)
            and name in allowed and not name.startswith('_')):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'checkpoint calls getattr({obj!r}, {name!r}); lgdea only allows getattr on '
        f'HistoryBuffer statistics methods {sorted(allowed)} under weights_only loading.')


def _numpy_core_names() -> List[str]:
    """Module paths under which numpy pickles ``_reconstruct`` / ``scalar`` (1.x and 2.x)."""
    return ['numpy._core.multiarray', 'numpy.core.multiarray']


def checkpoint_safe_globals() -> List[SafeGlobal]:
    """The globals an mmengine 0.10.7 checkpoint needs, as ``add_safe_globals`` entries.

    Returns:
        Classes / functions, and ``(callable, 'module.name')`` pairs where the pickled name
        differs from the object's own (numpy 1.x vs 2.x paths, ``builtins.getattr``).
    """
    multiarray = getattr(np, '_core', None)
    multiarray = multiarray.multiarray if multiarray is not None else np.core.multiarray
    entries: List[SafeGlobal] = [
        HistoryBuffer,
        ConfigDict,
        np.ndarray,
        np.dtype,
        (history_buffer_getattr, 'builtins.getattr'),
        torch.torch_version.TorchVersion,
    ]
    for module in _numpy_core_names():
        entries.append((multiarray._reconstruct, f'{module}._reconstruct'))
        entries.append((multiarray.scalar, f'{module}.scalar'))
    # A pickled dtype is rebuilt as an instance of its DType class (numpy >= 1.25:
    # numpy.dtypes.Float64DType, ...); BUILD on it needs the class allow-listed.
    dtype_classes = {type(np.dtype(code)) for code in np.typecodes['All'] if code}
    dtype_classes |= {type(np.dtype(t)) for t in (object, str, bytes, bool, np.void)}
    entries.extend(sorted(dtype_classes, key=lambda c: c.__qualname__))
    return entries


def register_checkpoint_safe_globals() -> None:
    """Allow-list the globals of :func:`checkpoint_safe_globals` for ``weights_only`` loading.

    Idempotent; process-wide (``torch.serialization.add_safe_globals``).
    """
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:  # torch < 2.4: weights_only is opt-in, nothing to do
        return
    add_safe_globals(checkpoint_safe_globals())


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location=None) -> Any:
    """Load a local checkpoint as mmengine does, with an actionable ``weights_only`` error.

    Replaces mmengine's default (prefix ``''``) scheme. ``torch.load`` keeps its own default
    for ``weights_only`` (True since torch 2.6, or as ``TORCH_FORCE_*`` variables say).

    Args:
        filename: local path (``~`` is expanded).
        map_location: as :func:`torch.load`.

    Returns:
        The loaded checkpoint.

    Raises:
        FileNotFoundError: ``filename`` is not a file.
        pickle.UnpicklingError: the checkpoint holds a type that is not allow-listed.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    try:
        return torch.load(filename, map_location=map_location)
    except RuntimeError as exc:
        if 'PytorchStreamReader' not in str(exc) and 'zip archive' not in str(exc):
            raise
        folder = osp.dirname(osp.abspath(filename))
        others = sorted(f for f in os.listdir(folder)
                        if f.endswith('.pth') and f != osp.basename(filename))
        hint = (f'; other checkpoints in {folder}: {", ".join(others[-3:])} (resume from one '
                'with --resume PATH)' if others else '')
        raise RuntimeError(
            f'checkpoint {filename} is unreadable: truncated or corrupt (e.g. the process was '
            f'killed while saving it){hint}. Delete it (and fix last_checkpoint) or pass '
            f'another file. torch: {exc}') from exc
    except pickle.UnpicklingError as exc:
        raise pickle.UnpicklingError(
            f'Could not load checkpoint {filename} with torch.load(weights_only=True): it holds '
            'a type that lgdea does not allow-list (see the torch message below). If you trust '
            'this file, allow the type with `torch.serialization.add_safe_globals([TYPE])` '
            'before the runner loads it (e.g. in a module listed in `custom_imports`), or '
            're-save its state_dict only.\n' + str(exc)) from exc


class NonFiniteCheckpointError(ValueError):
    """A checkpoint to evaluate holds NaN / inf weights (a diverged run)."""


def first_non_finite_key(state_dict) -> Optional[Tuple[str, int]]:
    """First floating-point entry of ``state_dict`` with a NaN / inf value.

    Args:
        state_dict: mapping of names to tensors (non-tensor and integer entries are skipped).

    Returns:
        ``(key, number of non-finite elements)``, or None when every entry is finite.
    """
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex()):
            bad = ~torch.isfinite(value.detach())
            if bool(bad.any()):
                return key, int(bad.sum())
    return None


def check_finite_state_dict(state_dict, source: str) -> None:
    """Raise :class:`NonFiniteCheckpointError` when ``state_dict`` holds a non-finite weight.

    Args:
        state_dict: the weights (a checkpoint's ``state_dict`` or a model's).
        source: the checkpoint file, named in the message.
    """
    found = first_non_finite_key(state_dict)
    if found is not None:
        key, count = found
        raise NonFiniteCheckpointError(
            f'checkpoint {source} has non-finite weights: `{key}` holds {count} NaN/inf '
            'value(s) (the first such key; the training run diverged). Refusing to evaluate '
            'it; use an earlier checkpoint or retrain with a lower learning rate / gradient '
            'clipping (NonFiniteGuardHook stops such runs, docs/get_started.md).')


class CheckpointMismatchError(ValueError):
    """A checkpoint to evaluate lacks trainable parameters of the model (another model's file,
    or a partial one): the evaluation would measure randomly initialised weights."""


def check_checkpoint_covers_model(model: torch.nn.Module, filename: str,
                                  allow_partial: bool = False) -> List[str]:
    """Names of the model's trainable parameters missing from checkpoint ``filename``.

    mmengine loads such a checkpoint with a warning only (``strict=False``) and the metrics are
    then those of the model's initial weights. Frozen parameters (e.g. a frozen pretrained text
    encoder built from its own weights) are not required. Keys are compared after stripping a
    ``module.`` prefix, as mmengine's loader does.

    Raises:
        CheckpointMismatchError: some are missing and ``allow_partial`` is False.
    """
    from mmengine.model import is_model_wrapper
    if is_model_wrapper(model):
        model = model.module
    ckpt = load_from_local(filename, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    keys = {k[len('module.'):] if k.startswith('module.') else k for k in state}
    missing = [n for n, p in model.named_parameters() if p.requires_grad and n not in keys]
    if missing and not allow_partial:
        total = sum(1 for p in model.parameters() if p.requires_grad)
        shown = ', '.join(missing[:5]) + (f' (+{len(missing) - 5} more)'
                                          if len(missing) > 5 else '')
        raise CheckpointMismatchError(
            f'checkpoint {filename} lacks {len(missing)} of the {total} trainable parameters of '
            f'{type(model).__name__} ({shown}): it is not a checkpoint of this config\'s model, '
            'and evaluating it would report the metrics of untrained weights. Pass the '
            'checkpoint of this config, or --allow-partial-checkpoint if the missing '
            'parameters are meant to keep their initial values.')
    return missing


def check_finite_model(model: torch.nn.Module, source: str) -> None:
    """:func:`check_finite_state_dict` on a (possibly wrapped) model's loaded weights."""
    from mmengine.model import is_model_wrapper
    if is_model_wrapper(model):
        model = model.module
    check_finite_state_dict(model.state_dict(), source)


register_checkpoint_safe_globals()
