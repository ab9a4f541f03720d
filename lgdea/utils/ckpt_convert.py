"""Conversion of official (released) checkpoints of other methods into lgdea models.

A method registers a converter ``fn(state_dict) -> (new_state_dict, ConversionReport)`` under
its name, either with :func:`register_ckpt_converter` or by defining a module-level dict
``CKPT_CONVERTERS = {name: fn}`` in its plugin package (``projects/<method>/<method>``).
``tools/convert_official_ckpt.py`` discovers both (:func:`find_converter`).

Most converters are a list of prefix rules; :func:`rename_keys` applies them and reports
every official key it could not place.
"""
import importlib
import io
import pickle
import re
import types
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

__all__ = ['CKPT_CONVERTERS', 'ConversionReport', 'register_ckpt_converter', 'rename_keys',
           'load_official_state_dict', 'find_converter', 'compare_with_model']

#: name -> converter ``fn(state_dict) -> (new_state_dict, ConversionReport)``.
CKPT_CONVERTERS: Dict[str, Callable] = {}


def register_ckpt_converter(name: str):
    """Decorator: register a converter under ``name``."""

    def wrap(fn):
        if name in CKPT_CONVERTERS and CKPT_CONVERTERS[name] is not fn:
            raise KeyError(f'a checkpoint converter named {name!r} is already registered')
        CKPT_CONVERTERS[name] = fn
        return fn

    return wrap


@dataclass
class ConversionReport:
    """What happened to each key.

    Attributes:
        renamed: new key -> official key.
        dropped: official keys deliberately not used (e.g. a BERT pooler this implementation
            has no use for).
        unmatched: official keys no rule placed (worth a look).
        missing: keys of the target model the checkpoint did not fill (filled by
            :func:`compare_with_model`).
        shape_mismatch: ``(key, checkpoint shape, model shape)`` (idem).
    """
    renamed: Dict[str, str] = field(default_factory=dict)
    dropped: List[str] = field(default_factory=list)
    unmatched: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    shape_mismatch: List[Tuple[str, tuple, tuple]] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f'renamed: {len(self.renamed)}', f'dropped (unused by design): '
                 f'{len(self.dropped)}', f'unmatched: {len(self.unmatched)}']
        for k in self.unmatched:
            lines.append(f'  unmatched official key: {k}')
        if self.missing or self.shape_mismatch:
            lines.append(f'model keys not filled: {len(self.missing)}')
            for k in self.missing:
                lines.append(f'  missing: {k}')
            for k, a, b in self.shape_mismatch:
                lines.append(f'  shape mismatch: {k} checkpoint {a} vs model {b}')
        return '\n'.join(lines)


def rename_keys(state: Dict[str, torch.Tensor], rules: Sequence[Tuple[str, str]],
                drop: Sequence[str] = (),
                strip: Sequence[str] = ()) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Rename official keys by prefix rules.

    Args:
        state: official state dict.
        rules: ``(official_prefix, new_prefix)``; the first matching rule wins.
        drop: regular expressions (``re.match``) of official keys to leave out on purpose.
        strip: prefixes removed from every key first, repeatedly (e.g. ``'module.'``).

    Returns:
        (new state dict, report).
    """
    report = ConversionReport()
    out: Dict[str, torch.Tensor] = {}
    drop_res = [re.compile(p) for p in drop]
    for key, value in state.items():
        short = key
        changed = True
        while changed:
            changed = False
            for prefix in strip:
                if short.startswith(prefix):
                    short, changed = short[len(prefix):], True
        if any(r.match(short) for r in drop_res):
            report.dropped.append(key)
            continue
        for src, dst in rules:
            if short.startswith(src):
                new_key = dst + short[len(src):]
                if new_key in out:
                    raise KeyError(f'two official keys map to {new_key!r} '
                                   f'({report.renamed[new_key]!r} and {key!r})')
                out[new_key] = value
                report.renamed[new_key] = key
                break
        else:
            report.unmatched.append(key)
    return out, report


def compare_with_model(state: Dict[str, torch.Tensor], model: torch.nn.Module,
                       report: Optional[ConversionReport] = None) -> ConversionReport:
    """Fill ``report.missing`` / ``shape_mismatch`` against ``model.state_dict()``."""
    report = report or ConversionReport()
    target = model.state_dict()
    report.missing = [k for k in target if k not in state]
    report.shape_mismatch = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in target.items()
                             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    extra = [k for k in state if k not in target]
    for k in extra:  # renamed into a name the model does not have
        report.unmatched.append(f'{report.renamed.get(k, k)} -> {k} (not in the model)')
    return report


class _Placeholder:
    """Stands in for a pickled object whose class cannot be imported (e.g. an OmegaConf config
    in a Lightning checkpoint when omegaconf is not installed)."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state):
        self.state = state


class _TolerantUnpickler(pickle.Unpickler):

    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return type(name, (_Placeholder, ), {'__module__': f'unavailable.{module}'})


def _tolerant_pickle_module() -> types.ModuleType:
    mod = types.ModuleType('lgdea_tolerant_pickle')
    mod.__dict__.update({k: getattr(pickle, k) for k in dir(pickle) if not k.startswith('__')})
    mod.Unpickler = _TolerantUnpickler
    mod.load = lambda f, **kw: _TolerantUnpickler(f, **kw).load()
    mod.loads = lambda b, **kw: _TolerantUnpickler(io.BytesIO(b), **kw).load()
    return mod


def load_official_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The tensor state dict of an official checkpoint (plain or Lightning
    ``{'state_dict': ...}``).

    Tries ``weights_only=True`` first; released Lightning checkpoints pickle their config, so
    it then unpickles fully (only do this with files you trust), replacing classes that
    cannot be imported by placeholders.
    """
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception:  # noqa: BLE001 - any unpickling refusal falls back to the full load
        ckpt = torch.load(path, map_location='cpu', weights_only=False,
                          pickle_module=_tolerant_pickle_module())
    if isinstance(ckpt, dict):
        for key in ('state_dict', 'model', 'module'):
            if isinstance(ckpt.get(key), dict):
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, dict) or not all(torch.is_tensor(v) for v in ckpt.values()):
        raise ValueError(f'{path}: no tensor state dict found (expected a dict of tensors or '
                         'a checkpoint with a `state_dict` entry).')
    return dict(ckpt)


def find_converter(name: str, plugin: Optional[str] = None) -> Callable:
    """The converter registered as ``name``.

    Imports ``plugin`` (default ``projects.<name>.<name>``) first, so that a project's
    converters register themselves, and merges a module-level ``CKPT_CONVERTERS`` dict of that
    package (and of its ``ckpt_convert`` submodule) when it has one.
    """
    modules = [plugin] if plugin else [f'projects.{name}.{name}']
    for mod_name in modules:
        for candidate in (mod_name, f'{mod_name}.ckpt_convert'):
            try:
                mod = importlib.import_module(candidate)
            except ModuleNotFoundError as e:
                if e.name is not None and candidate.startswith(e.name):
                    continue  # the module does not exist; other errors propagate
                raise
            for key, fn in dict(getattr(mod, 'CKPT_CONVERTERS', None) or {}).items():
                CKPT_CONVERTERS.setdefault(key, fn)
    if name not in CKPT_CONVERTERS:
        raise KeyError(f'no checkpoint converter named {name!r} (known: '
                       f'{sorted(CKPT_CONVERTERS)}); a project registers one with '
                       '`lgdea.utils.ckpt_convert.register_ckpt_converter` or a module-level '
                       '`CKPT_CONVERTERS` dict in projects/<name>/<name>.')
    return CKPT_CONVERTERS[name]


from . import vit_keys  # noqa: E402,F401  (registers the built-in 'timm_vit' converter)
