"""Geometric transforms of chest X-rays that record what they did (``results['geometry']``).

Boxes (``results['boxes']``) are never changed: they stay in original pixels and the metrics
map predictions back with :func:`lgdea.datasets.transforms.geometry.invert_map`. Items without
an image (``'img'`` absent, e.g. report items) pass through unchanged.
"""
from typing import Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from lgdea.registry import TRANSFORMS
from .geometry import append_geometry, crop_record, pad_record, resize_record

__all__ = ['ResizeCXR', 'RandomCropCXR', 'CenterCropCXR', 'PadToSquareCXR', 'resize_image']

_CV2_INTERP = dict(nearest=cv2.INTER_NEAREST_EXACT, bilinear=cv2.INTER_LINEAR,
                   bicubic=cv2.INTER_CUBIC, area=cv2.INTER_AREA)


def _pair(size: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f'{name} must be a positive int or (h, w), got {size}')
    return size


def resize_image(img: np.ndarray, out_shape: Tuple[int, int],
                 interpolation: str = 'auto') -> np.ndarray:
    """Resize an [H, W] or [H, W, C] array to ``out_shape`` (h, w) with half-pixel centres.

    ``interpolation='auto'`` uses area averaging when both sides shrink (no aliasing when a
    2500-pixel radiograph becomes 224) and bilinear otherwise.
    """
    h, w = img.shape[:2]
    oh, ow = out_shape
    if (h, w) == (oh, ow):
        return img.copy()
    if interpolation == 'auto':
        interpolation = 'area' if (oh < h and ow < w) else 'bilinear'
    if interpolation not in _CV2_INTERP:
        raise ValueError(f'interpolation must be auto|{"|".join(_CV2_INTERP)}, got '
                         f'{interpolation!r}')
    src = img
    if src.dtype == np.bool_:
        src = src.astype(np.uint8)
    out = cv2.resize(src, (ow, oh), interpolation=_CV2_INTERP[interpolation])
    if img.ndim == 3 and out.ndim == 2:  # cv2 drops a single channel
        out = out[..., None]
    return out


class _GeometricTransform(BaseTransform):
    """Shared plumbing: skip items without an image, update ``img_shape``."""

    def transform(self, results: dict) -> dict:
        if results.get('img') is None:
            return results
        self._apply(results)
        results['img_shape'] = tuple(results['img'].shape[:2])
        return results

    def _apply(self, results: dict) -> None:
        raise NotImplementedError


@TRANSFORMS.register_module()
class ResizeCXR(_GeometricTransform):
    """Resize to a fixed ``scale=(h, w)`` (aspect not kept; 224x224 is the test default).

    Records ``dict(type='resize', in_shape, out_shape, scale=(sy, sx))``.

    Args:
        scale: (h, w) or an int for a square.
        interpolation: ``'auto'`` (area when shrinking, else bilinear) | ``'bilinear'`` |
            ``'bicubic'`` | ``'area'`` | ``'nearest'``.
    """

    def __init__(self, scale: Union[int, Sequence[int]], interpolation: str = 'auto'):
        self.scale = _pair(scale, 'scale')
        self.interpolation = interpolation

    def _apply(self, results: dict) -> None:
        img = results['img']
        in_shape = img.shape[:2]
        if tuple(in_shape) == self.scale:
            return
        results['img'] = resize_image(img, self.scale, self.interpolation)
        append_geometry(results, resize_record(in_shape, self.scale))

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale={self.scale}, '
                f"interpolation='{self.interpolation}')")


class _CropCXR(_GeometricTransform):

    def __init__(self, size: Union[int, Sequence[int]]):
        self.size = _pair(size, 'size')

    def _offset(self, h: int, w: int) -> Tuple[int, int]:
        raise NotImplementedError

    def _apply(self, results: dict) -> None:
        img = results['img']
        h, w = img.shape[:2]
        ch, cw = self.size
        if ch > h or cw > w:
            raise ValueError(
                f'{self.__class__.__name__}: crop {self.size} is larger than the image '
                f'{(h, w)} of "{results.get("img_path")}"; resize first (ResizeCXR / '
                'PadToSquareCXR).')
        y0, x0 = self._offset(h, w)
        results['img'] = img[y0:y0 + ch, x0:x0 + cw].copy()
        append_geometry(results, crop_record((h, w), (ch, cw), x0=x0, y0=y0))

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(size={self.size})'


@TRANSFORMS.register_module()
class RandomCropCXR(_CropCXR):
    """Crop ``size=(h, w)`` at a uniformly random position (training augmentation).

    Records ``dict(type='crop', in_shape, out_shape, x0, y0)``.
    """

    def _offset(self, h: int, w: int) -> Tuple[int, int]:
        return (int(np.random.randint(0, h - self.size[0] + 1)),
                int(np.random.randint(0, w - self.size[1] + 1)))


@TRANSFORMS.register_module()
class CenterCropCXR(_CropCXR):
    """Crop ``size=(h, w)`` at the centre. It discards field of view: not for the grounding
    test pipeline (docs/method.md, "Evaluation"); the cut-away region maps back to NaN."""

    def _offset(self, h: int, w: int) -> Tuple[int, int]:
        return (h - self.size[0]) // 2, (w - self.size[1]) // 2


@TRANSFORMS.register_module()
class PadToSquareCXR(_GeometricTransform):
    """Resize the longest side to ``size`` keeping the aspect, then pad to a square (as
    GLoRIA / MGCA do). With ``size=None`` only pad to ``max(h, w)``.

    Records a ``resize`` (when the size changes) and a ``pad``
    ``dict(type='pad', in_shape, out_shape, left, top, right, bottom, pad_value)``.

    Args:
        size: side of the output square, or None.
        pad_value: constant of the padding.
        center: centre the image (else pad only right and bottom).
        interpolation: see :class:`ResizeCXR`.
    """

    def __init__(self, size: Union[int, None] = None, pad_value: float = 0, center: bool = True,
                 interpolation: str = 'auto'):
        if size is not None and int(size) <= 0:
            raise ValueError(f'size must be positive, got {size}')
        self.size = None if size is None else int(size)
        self.pad_value = pad_value
        self.center = center
        self.interpolation = interpolation

    def _apply(self, results: dict) -> None:
        img = results['img']
        h, w = img.shape[:2]
        if self.size is not None:
            ratio = self.size / max(h, w)
            nh = min(self.size, max(1, int(round(h * ratio))))
            nw = min(self.size, max(1, int(round(w * ratio))))
            if (nh, nw) != (h, w):
                img = resize_image(img, (nh, nw), self.interpolation)
                append_geometry(results, resize_record((h, w), (nh, nw)))
                h, w = nh, nw
        side = self.size if self.size is not None else max(h, w)
        dy, dx = side - h, side - w
        top, left = (dy // 2, dx // 2) if self.center else (0, 0)
        bottom, right = dy - top, dx - left
        if dy or dx:
            pad_width = [(top, bottom), (left, right)] + [(0, 0)] * (img.ndim - 2)
            img = np.pad(img, pad_width, mode='constant',
                         constant_values=np.array(self.pad_value).astype(img.dtype))
            append_geometry(results, pad_record((h, w), left=left, top=top, right=right,
                                                bottom=bottom, pad_value=self.pad_value))
        results['img'] = img

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, pad_value={self.pad_value}, '
                f'center={self.center})')
