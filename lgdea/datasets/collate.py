"""Collation of mixed pair / image / report items (docs/architecture.md, section 3)."""
from typing import List, Sequence

import torch
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS

from lgdea.registry import FUNCTIONS

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
    """
    images: List[torch.Tensor] = []
    samples, reports = [], []
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


# ``Runner.build_dataloader`` looks collate functions up with ``mmengine.registry.FUNCTIONS.get``,
# which searches the root registry and never the default scope's child: a plain
# ``collate_fn=dict(type='vl_collate')`` only resolves when the root knows the name too
# (``'lgdea.vl_collate'`` resolves either way).
if MMENGINE_FUNCTIONS.get('vl_collate') is None:
    MMENGINE_FUNCTIONS.register_module(name='vl_collate', module=vl_collate)
