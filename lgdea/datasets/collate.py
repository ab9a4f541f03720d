"""Collation of mixed pair / image / report items (docs/architecture.md, section 3)."""
from typing import List, Sequence

import torch
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS

from lgdea.registry import FUNCTIONS
from .limited_pairing import DROPPED

__all__ = ['vl_collate']


@FUNCTIONS.register_module()
def vl_collate(data_batch: Sequence[dict]) -> dict:
    """Collate items packed by ``PackVLInputs``.

    Returns:
        ``dict(inputs=Tensor[B_I, C, H, W] or None, data_samples=list[DataSample] (B_I),
        reports=list[DataSample] (B_R))``: images and samples of the ``'pair'`` and ``'image'``
        items, in batch order; report samples of the ``'pair'`` and ``'report'`` items, in batch
        order. A ``'pair'`` item puts the same DataSample object in both lists. ``inputs`` is
        None when the batch has no image.

    A ``'dropped'`` marker (a paired image or report that could not be loaded nor replaced by
    another item of its study, ``LimitedPairingDataset``) is removed together with one paired
    item of the other side of the same study, so the batch keeps matching image and report
    counts and its pair targets ``Y``.
    """
    images: List[torch.Tensor] = []
    samples, reports = [], []
    data_batch = _drop_broken_pairs(data_batch)
    for i, item in enumerate(data_batch):
        if not isinstance(item, dict) or 'data_samples' not in item:
            raise TypeError(f'vl_collate: item {i} is {type(item).__name__}, expected the dict '
                            'of PackVLInputs (does the pipeline end with PackVLInputs?)')
        kind = item.get('kind') or item['data_samples'].metainfo.get('kind')
        if kind in ('pair', 'image'):
            if item.get('inputs') is None:
                raise ValueError(f'vl_collate: {kind!r} item {i} '
                                 f'({item["data_samples"].get("img_path")}) has no image')
            images.append(item['inputs'])
            samples.append(item['data_samples'])
        if kind in ('pair', 'report'):
            reports.append(item['data_samples'])
        if kind not in ('pair', 'image', 'report'):
            raise ValueError(f'vl_collate: item {i} has unknown kind {kind!r}')
    inputs = None
    if images:
        shapes = {tuple(t.shape) for t in images}
        if len(shapes) > 1:
            raise ValueError(f'vl_collate: images of one batch differ in shape {sorted(shapes)}; '
                             'end the image pipeline with a fixed-size ResizeCXR / '
                             'PadToSquareCXR / RandomCropCXR.')
        inputs = torch.stack(images, dim=0)
    return dict(inputs=inputs, data_samples=samples, reports=reports)


def _drop_broken_pairs(data_batch: Sequence[dict]) -> list:
    """``data_batch`` without its ``'dropped'`` markers and, for each, one paired partner
    (the other side of the marker's study)."""
    markers = [it for it in data_batch if isinstance(it, dict) and it.get('kind') == DROPPED]
    if not markers:
        return list(data_batch)
    partner_kind = dict(image='report', report='image')
    drop = set()
    for m in markers:
        for j, item in enumerate(data_batch):
            if j in drop or not isinstance(item, dict) or item.get('kind') == DROPPED:
                continue
            ds = item.get('data_samples')
            meta = ds.metainfo if ds is not None else {}
            kind = item.get('kind') or meta.get('kind')
            if (kind == partner_kind[m['dropped_kind']] and meta.get('paired')
                    and str(meta.get('study_id')) == str(m['study_id'])):
                drop.add(j)
                break
    return [it for j, it in enumerate(data_batch)
            if j not in drop and not (isinstance(it, dict) and it.get('kind') == DROPPED)]


# ``Runner.build_dataloader`` looks collate functions up with ``mmengine.registry.FUNCTIONS.get``,
# which searches the root registry and never the default scope's child: a plain
# ``collate_fn=dict(type='vl_collate')`` only resolves when the root knows the name too
# (``'lgdea.vl_collate'`` resolves either way).
if MMENGINE_FUNCTIONS.get('vl_collate') is None:
    MMENGINE_FUNCTIONS.register_module(name='vl_collate', module=vl_collate)
