"""Pair targets ``Y`` of the limited-pairing setting (method.md, "Setting, pools and batches")."""
import hashlib
from typing import Sequence

import torch


def study_key(study_id) -> int:
    """A stable int64 key for a study id (strings cannot be all-gathered as tensors)."""
    digest = hashlib.sha1(str(study_id).encode('utf-8')).hexdigest()
    return int(digest[:15], 16)


def study_keys(samples: Sequence, device=None) -> torch.Tensor:
    """[N] int64 keys of ``sample.study_id`` for a list of DataSamples."""
    keys = []
    for i, s in enumerate(samples):
        sid = s.get('study_id', None) if hasattr(s, 'get') else getattr(s, 'study_id', None)
        if sid is None:
            raise KeyError(f'data sample {i} has no `study_id`; every dataset record must carry '
                           'one (the pairing unit). Check the dataset\'s load_data_list.')
        keys.append(study_key(sid))
    return torch.tensor(keys, dtype=torch.long, device=device)


def paired_flags(samples: Sequence, device=None) -> torch.Tensor:
    """[N] bool: whether each sample belongs to a paired study (default True)."""
    flags = [bool(s.get('paired', True)) for s in samples]
    return torch.tensor(flags, dtype=torch.bool, device=device)


def build_pair_targets(image_keys: torch.Tensor, image_paired: torch.Tensor,
                       report_keys: torch.Tensor, report_paired: torch.Tensor) -> torch.Tensor:
    """``Y[i, j] = 1`` iff study(image_i) == study(report_j) and that study is paired.

    Built from study ids, so two images of one study never make each other's report a
    negative, and the withheld partner of an unpaired image never becomes a positive.

    Args:
        image_keys: [B_I] int64 study keys of the images.
        image_paired: [B_I] bool.
        report_keys: [B_R] int64 study keys of the reports.
        report_paired: [B_R] bool.

    Returns:
        Y: [B_I, B_R] float (0/1).
    """
    same = image_keys[:, None] == report_keys[None, :]
    both = image_paired[:, None] & report_paired[None, :]
    return (same & both).float()
