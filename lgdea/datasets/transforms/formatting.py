"""Packing of a record into ``dict(inputs, data_samples, kind)`` (docs/architecture.md, sec. 2)."""
from typing import Optional, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmpretrain.structures import DataSample

from lgdea.registry import TRANSFORMS

__all__ = ['PackVLInputs', 'image_to_tensor']

KINDS = ('pair', 'image', 'report')


def image_to_tensor(img) -> torch.Tensor:
    """[H, W] / [H, W, C] numpy array -> [C, H, W] tensor (dtype kept: uint8 stays uint8)."""
    if torch.is_tensor(img):
        return img if img.dim() == 3 else img[None]
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3:
        raise ValueError(f'expected an [H, W] or [H, W, C] image, got shape {img.shape}')
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def _has_text(text) -> bool:
    return text is not None and bool(str(text).strip())


@TRANSFORMS.register_module()
class PackVLInputs(BaseTransform):
    """Pack an image and/or report record for the VL data flow.

    Output: ``dict(inputs=[C, H, W] tensor (uint8 or float, as loaded) or None,
    data_samples=DataSample, kind='pair'|'image'|'report')``.

    The DataSample carries every present record key: metainfo ``sample_idx, img_path,
    study_id, subject_id, view, category, ori_shape, img_shape, geometry, paired, kind``;
    data fields ``text`` (from ``report``), ``phrase``, ``evidence``, ``boxes`` (np.float32
    [N, 4], x, y, w, h in original pixels); ``gt_label`` (``set_gt_label``) and ``gt_score``
    (``set_gt_score``, a float tensor that keeps NaN = unknown).

    ``kind`` comes from ``results['kind']``; without it: ``'pair'`` when the record has both an
    image and report text, ``'image'`` with only an image, ``'report'`` with only text.
    ``paired`` comes from the record, else ``kind == 'pair'``.

    Args:
        input_key: key of the image array.
        extra_meta_keys: more record keys to copy as metainfo.
        extra_data_keys: more record keys to copy as data fields.
    """

    META_KEYS = ('sample_idx', 'img_path', 'study_id', 'subject_id', 'view', 'category',
                 'ori_shape', 'img_shape', 'geometry')
    DATA_KEYS = ('phrase', 'evidence', 'boxes')

    def __init__(self, input_key: str = 'img', extra_meta_keys: Sequence[str] = (),
                 extra_data_keys: Sequence[str] = ()):
        self.input_key = input_key
        self.meta_keys = tuple(self.META_KEYS) + tuple(extra_meta_keys)
        self.data_keys = tuple(self.DATA_KEYS) + tuple(extra_data_keys)

    def _kind(self, results: dict, has_img: bool, has_text: bool) -> str:
        where = (f'(img_path={results.get("img_path")}, study_id={results.get("study_id")})')
        kind = results.get('kind')
        if kind is None:
            if has_img:
                kind = 'pair' if has_text else 'image'
            elif has_text:
                kind = 'report'
            else:
                raise ValueError(f'PackVLInputs: the record has neither an image nor report '
                                 f'text {where}; add LoadCXRImage to the pipeline or drop it.')
        if kind not in KINDS:
            raise ValueError(f'PackVLInputs: kind must be one of {KINDS}, got {kind!r} {where}')
        if kind in ('pair', 'image') and not has_img:
            raise ValueError(f'PackVLInputs: a {kind!r} item needs an image but `{self.input_key}`'
                             f' is missing {where}; is LoadCXRImage in the pipeline?')
        if kind in ('pair', 'report') and not has_text:
            raise ValueError(f'PackVLInputs: a {kind!r} item needs report text but `report` is '
                             f'empty {where}.')
        return kind

    def transform(self, results: dict) -> dict:
        img = results.get(self.input_key)
        text = results.get('report', results.get('text'))
        kind = self._kind(results, img is not None, _has_text(text))

        sample = DataSample()
        for key in self.meta_keys:
            if results.get(key) is not None:
                value = results[key]
                if key in ('ori_shape', 'img_shape'):
                    value = tuple(int(v) for v in value)
                sample.set_metainfo({key: value})
        sample.set_metainfo(dict(kind=kind, paired=bool(results.get('paired', kind == 'pair'))))
        if _has_text(text):
            sample.set_field(str(text), 'text')
        for key in self.data_keys:
            if results.get(key) is not None:
                value = results[key]
                if key == 'boxes':
                    value = np.asarray(value, dtype=np.float32).reshape(-1, 4)
                sample.set_field(value, key)
        if results.get('gt_label') is not None:
            sample.set_gt_label(results['gt_label'])
        if results.get('gt_score') is not None:
            sample.set_gt_score(np.asarray(results['gt_score'], dtype=np.float32))

        inputs: Optional[torch.Tensor] = None
        if kind != 'report':
            inputs = image_to_tensor(img)
        return dict(inputs=inputs, data_samples=sample, kind=kind)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(input_key='{self.input_key}', "
                f'meta_keys={self.meta_keys}, data_keys={self.data_keys})')
