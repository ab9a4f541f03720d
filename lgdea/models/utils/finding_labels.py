"""Finding-set keys of a batch, for measuring propagation (never for training).

The class-level target precision (docs/method.md, "Propagation diagnostics") compares the
finding set of an unpaired image with that of the reports its propagated targets point to.
Dataset labels (``gt_score``: the synthetic generator's ground truth, CheXpert labels on
MIMIC-CXR) are turned into one int64 key per item so that they can be all-gathered with the
batch; an item without labels gets key -1 and is left out of the measurement.
"""
from typing import Optional, Sequence

import torch

from lgdea.utils.dist import gather_features


def finding_keys(samples: Sequence, device=None) -> Optional[torch.Tensor]:
    """[N] int64: the binary finding vector ``gt_score > 0.5`` of each sample as an integer
    (bit k = finding k), -1 where a sample has no ``gt_score``; None when none has one."""
    keys, any_label = [], False
    for s in samples:
        score = s.get('gt_score', None) if hasattr(s, 'get') else None
        if score is None:
            keys.append(-1)
            continue
        any_label = True
        bits = torch.as_tensor(score).flatten() > 0.5
        if bits.numel() > 62:
            raise ValueError(f'finding_keys: {bits.numel()} labels do not fit an int64 key.')
        keys.append(int(sum(1 << k for k, b in enumerate(bits.tolist()) if b)))
    if not any_label:
        return None
    return torch.tensor(keys, dtype=torch.long, device=device)


def gathered_finding_keys(image_samples: Sequence, report_samples: Sequence, gathered: bool,
                          device=None):
    """(image keys [B_I'], report keys [B_R']) in the row order of ``gather_pair_batch``'s
    tensors, or None when the batch carries no labels."""
    img, rep = finding_keys(image_samples, device), finding_keys(report_samples, device)
    if img is None or rep is None:
        return None
    if gathered:
        img, rep = gather_features(img), gather_features(rep)
    return img, rep
