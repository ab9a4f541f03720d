"""Outputs of a frozen text encoder, remembered per token sequence.

A frozen encoder maps the same token ids to the same features at every step, so over a
training run it needs to see each distinct report once. The cache stores, per sequence, the
unpadded outputs a model derives from the frozen encoder (pooled feature, word features, ...)
on the CPU; the model pads them back into a batch exactly as its uncached path would.
"""
from typing import Dict, List

import torch

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

    def __contains__(self, key: bytes) -> bool:
        return key in self._store

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
