"""Pair targets ``Y`` of the limited-pairing setting and the one cross-rank gather that every
method uses (docs/method.md, "Setting, pools and batches" and "Distributed training").

Gradient convention (open_clip style, written once here): every feature tensor is all-gathered
with the *local* slice keeping its autograd history and its gradient multiplied by the world
size. A loss computed on the gathered batch is then identical on every rank, and DDP's average
of the per-rank gradients equals the gradient of the single-process loss on the global batch.
Parameters that act on the gathered tensors themselves (a learnable logit scale) get their
plain gradient on every rank, which DDP's average leaves unchanged.
"""
import hashlib
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import torch

from lgdea.utils.dist import gather_features, gather_offset, get_world_size


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


@dataclass
class PairBatch:
    """The (gathered) image and report sides of a batch and their pair targets.

    Attributes:
        images: feature name -> [B_I', ...] image-side tensors (B_I' = images of all ranks).
        reports: feature name -> [B_R', ...] report-side tensors.
        image_keys, image_paired: [B_I'] int64 study keys and bool paired flags.
        report_keys, report_paired: [B_R'] likewise.
        targets: ``Y`` [B_I', B_R'] float 0/1 (:func:`build_pair_targets`).
        local_targets: ``Y`` of this rank's own rows and columns [B_I, B_R].
        gathered: whether the tensors span every rank (False on one process or when off).
        image_offset, report_offset: row of this rank's first image / report in the gathered
            tensors (0 when not gathered).
    """
    images: Dict[str, torch.Tensor]
    reports: Dict[str, torch.Tensor]
    image_keys: torch.Tensor
    image_paired: torch.Tensor
    report_keys: torch.Tensor
    report_paired: torch.Tensor
    targets: torch.Tensor
    local_targets: torch.Tensor
    gathered: bool
    image_offset: int = 0
    report_offset: int = 0


def gather_pair_batch(image_samples: Sequence, report_samples: Sequence,
                      images: Optional[Dict[str, torch.Tensor]] = None,
                      reports: Optional[Dict[str, torch.Tensor]] = None,
                      gather: bool = True, device=None) -> PairBatch:
    """Gather features and study keys across ranks once and build the pair targets.

    The only cross-rank gather of the training losses (CLIP, CLIP-on-evidence, GLoRIA's global
    loss, MGCA's ITA when its gather option is on, and LGDEA). See the module docstring for
    the gradient convention.

    Args:
        image_samples: the batch's image DataSamples (``study_id``, ``paired``).
        report_samples: the batch's report DataSamples.
        images: image-side features to gather, each [B_I, ...] (e.g. ``embed``).
        reports: report-side features to gather, each [B_R, ...].
        gather: False keeps the local batch (MGCA's official setting).
        device: device of the keys (default: that of the first feature, else CPU).
    """
    images, reports = dict(images or {}), dict(reports or {})
    if device is None:
        first = next(iter(list(images.values()) + list(reports.values())), None)
        device = first.device if first is not None else None
    img_keys, img_paired = study_keys(image_samples, device), paired_flags(image_samples, device)
    rep_keys, rep_paired = study_keys(report_samples, device), paired_flags(report_samples,
                                                                            device)
    local_targets = build_pair_targets(img_keys, img_paired, rep_keys, rep_paired)
    gathered = gather and get_world_size() > 1
    image_offset = report_offset = 0
    if gathered:
        image_offset = gather_offset(len(image_samples), device)
        report_offset = gather_offset(len(report_samples), device)
        scale = float(get_world_size())
        images = {k: gather_features(v, grad_scale=scale) for k, v in images.items()}
        reports = {k: gather_features(v, grad_scale=scale) for k, v in reports.items()}
        img_keys, rep_keys = gather_features(img_keys), gather_features(rep_keys)
        img_paired = gather_features(img_paired.long()).bool()
        rep_paired = gather_features(rep_paired.long()).bool()
        targets = build_pair_targets(img_keys, img_paired, rep_keys, rep_paired)
    else:
        targets = local_targets
    return PairBatch(images=images, reports=reports, image_keys=img_keys,
                     image_paired=img_paired, report_keys=rep_keys, report_paired=rep_paired,
                     targets=targets, local_targets=local_targets, gathered=gathered,
                     image_offset=image_offset, report_offset=report_offset)
