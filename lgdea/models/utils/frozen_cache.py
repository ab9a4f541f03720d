"""Outputs of a frozen text encoder, remembered per token sequence.

A frozen encoder maps the same token ids to the same features at every step, so over a
training run it needs to see each distinct report once. The cache stores, per sequence, the
unpadded outputs a model derives from the frozen encoder (pooled feature, word features, ...)
on the CPU; the model pads them back into a batch exactly as its uncached path would.
"""
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

__all__ = ['FrozenTextCache']


class FrozenTextCache:
    """Per-sequence tensors keyed by the sequence's token ids (padding excluded).

    Memory grows with the number of distinct sequences: e.g. MGCA's word features of the
    demo's 8,000 reports (about 60 words x 384 floats each) take about 0.7 GB.
    """

    def __init__(self):
        self._store: Dict[bytes, Dict[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self._store)

    @staticmethod
    def keys(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> List[bytes]:
        """One key per row of ``input_ids`` [N, T]: the bytes of its unpadded token ids."""
        ids = input_ids.detach().cpu()
        lengths = attention_mask.detach().cpu().sum(1).tolist()
        return [ids[i, :int(n)].numpy().tobytes() for i, n in enumerate(lengths)]

    def missing(self, keys: List[bytes]) -> List[int]:
        """Row indices whose key is not stored yet (the first row of each repeated key)."""
        seen, rows = set(), []
        for i, key in enumerate(keys):
            if key not in self._store and key not in seen:
                seen.add(key)
                rows.append(i)
        return rows

    def put(self, key: bytes, **tensors: torch.Tensor) -> None:
        self._store[key] = {k: v.detach().cpu() for k, v in tensors.items()}

    def get(self, keys: List[bytes], name: str) -> List[torch.Tensor]:
        """Tensor ``name`` of every key, in order."""
        return [self._store[k][name] for k in keys]

    def get_padded(self, keys: List[bytes], name: str, length: int,
                   device=None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Variable-length tensors ``name`` ([L_i, ...] each) zero-padded along dim 0 to
        ``length``: ``([N, length, ...], lengths [N])`` on ``device``."""
        items = self.get(keys, name)
        lengths = torch.tensor([t.shape[0] for t in items], device=device)
        padded = pad_sequence(items, batch_first=True)
        extra = length - padded.shape[1]
        if extra < 0:
            raise ValueError(f'FrozenTextCache: a cached "{name}" has {padded.shape[1]} rows, '
                             f'more than the {length} slots asked for')
        padded = F.pad(padded, (0, 0) * (padded.dim() - 2) + (0, extra))
        return padded.to(device), lengths
