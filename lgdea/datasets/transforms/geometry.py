"""Geometry records of the image pipeline and the inverse mapping of maps to original pixels.

Every geometric transform (:class:`ResizeCXR`, :class:`RandomCropCXR`, :class:`CenterCropCXR`,
:class:`PadToSquareCXR`, and :class:`LoadCXRImage` when the file on disk is a resized copy of
the annotation frame) appends one record to ``results['geometry']``. Each record says what
the step did and between which shapes (``(h, w)``):

- ``dict(type='resize', in_shape, out_shape, scale=(sy, sx))`` with ``sy = out_h / in_h`` and
  ``sx = out_w / in_w``. Pixel centres follow the half-pixel convention of OpenCV / PIL /
  ``F.interpolate(align_corners=False)``: input pixel ``y`` lies at output coordinate
  ``(y + 0.5) * sy - 0.5`` (Eq. G1).
- ``dict(type='crop', in_shape, out_shape, x0, y0)``: output pixel ``(y, x)`` is input pixel
  ``(y + y0, x + x0)`` (Eq. G2).
- ``dict(type='pad', in_shape, out_shape, left, top, right, bottom, pad_value)``: output pixel
  ``(y, x)`` is input pixel ``(y - top, x - left)``; the padding is outside the field of
  view (Eq. G3).

Boxes are never transformed: they stay in the original (annotation) pixels, and metrics map a
map defined on the network input back with :func:`invert_map`.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ['resize_record', 'crop_record', 'pad_record', 'append_geometry', 'invert_map',
           'resize_nan_aware', 'final_shape']

Shape = Tuple[int, int]


def _shape(shape) -> Shape:
    shape = tuple(int(s) for s in tuple(shape)[:2])
    if len(shape) != 2 or min(shape) <= 0:
        raise ValueError(f'a shape must be (h, w) with positive sides, got {shape}')
    return shape


def resize_record(in_shape: Sequence[int], out_shape: Sequence[int], **extra) -> Dict:
    """Record of a resize from ``in_shape`` to ``out_shape`` (Eq. G1)."""
    in_shape, out_shape = _shape(in_shape), _shape(out_shape)
    return dict(type='resize', in_shape=in_shape, out_shape=out_shape,
                scale=(out_shape[0] / in_shape[0], out_shape[1] / in_shape[1]), **extra)


def crop_record(in_shape: Sequence[int], out_shape: Sequence[int], x0: int, y0: int,
                **extra) -> Dict:
    """Record of a crop whose top-left corner is input pixel ``(y0, x0)`` (Eq. G2)."""
    in_shape, out_shape = _shape(in_shape), _shape(out_shape)
    x0, y0 = int(x0), int(y0)
    if x0 < 0 or y0 < 0 or y0 + out_shape[0] > in_shape[0] or x0 + out_shape[1] > in_shape[1]:
        raise ValueError(f'crop {out_shape} at (y0={y0}, x0={x0}) leaves the image {in_shape}')
    return dict(type='crop', in_shape=in_shape, out_shape=out_shape, x0=x0, y0=y0, **extra)


def pad_record(in_shape: Sequence[int], left: int, top: int, right: int, bottom: int,
               pad_value: float = 0, **extra) -> Dict:
    """Record of a constant padding by ``left/top/right/bottom`` pixels (Eq. G3)."""
    in_shape = _shape(in_shape)
    left, top, right, bottom = (int(v) for v in (left, top, right, bottom))
    if min(left, top, right, bottom) < 0:
        raise ValueError('padding must be non-negative')
    out_shape = (in_shape[0] + top + bottom, in_shape[1] + left + right)
    return dict(type='pad', in_shape=in_shape, out_shape=out_shape, left=left, top=top,
                right=right, bottom=bottom, pad_value=pad_value, **extra)


def append_geometry(results: dict, record: Dict) -> None:
    """Append ``record`` to ``results['geometry']`` after checking the chain is continuous."""
    chain: List[Dict] = results.setdefault('geometry', [])
    if chain and tuple(chain[-1]['out_shape']) != tuple(record['in_shape']):
        raise RuntimeError(
            f'geometry chain broken at {record["type"]}: the previous step produced '
            f'{tuple(chain[-1]["out_shape"])} but this one starts from '
            f'{tuple(record["in_shape"])} (img_path={results.get("img_path")}); a transform '
            'changed the image without recording it.')
    chain.append(record)


def final_shape(geometry: Sequence[Dict], ori_shape: Sequence[int]) -> Shape:
    """Shape of the network input after the whole chain (``ori_shape`` when empty)."""
    return _shape(geometry[-1]['out_shape']) if geometry else _shape(ori_shape)


def resize_nan_aware(map_hw: np.ndarray, out_shape: Sequence[int],
                     min_valid: float = 0.5) -> np.ndarray:
    """Bilinear resize (half-pixel centres, Eq. G1) that treats NaN as "no value".

    ``out = bilinear(v * m) / bilinear(m)`` with ``m`` the finite-value mask (Eq. G4); a pixel
    whose interpolated mask is below ``min_valid`` (its centre falls outside the valid region)
    is NaN. Without NaN this is exactly ``F.interpolate(mode='bilinear',
    align_corners=False)``.

    Args:
        map_hw: [h, w] map.
        out_shape: (H, W).
        min_valid: minimum interpolated valid fraction to keep a value.

    Returns:
        [H, W] float64 map.
    """
    out_shape = _shape(out_shape)
    arr = np.asarray(map_hw, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f'expected a 2-D map, got shape {arr.shape}')
    if tuple(arr.shape) == out_shape:
        return arr.copy()
    valid = np.isfinite(arr)
    values = torch.from_numpy(np.where(valid, arr, 0.0))[None, None]
    mask = torch.from_numpy(valid.astype(np.float64))[None, None]
    num = F.interpolate(values, size=out_shape, mode='bilinear', align_corners=False)[0, 0]
    if valid.all():
        return num.numpy()
    den = F.interpolate(mask, size=out_shape, mode='bilinear', align_corners=False)[0, 0]
    num, den = num.numpy(), den.numpy()
    out = np.full(out_shape, np.nan)
    keep = den >= min_valid
    out[keep] = num[keep] / den[keep]
    return out


def invert_map(map_hw: np.ndarray, geometry: Optional[Sequence[Dict]],
               ori_shape: Sequence[int]) -> np.ndarray:
    """Map a map defined on the network input back to original pixels.

    1. ``map_hw`` (any resolution, e.g. the 14x14 patch grid) is bilinearly resized to the
       final network input shape (``geometry[-1]['out_shape']``).
    2. The records are undone last to first: a pad is cut away (Eq. G3), a crop is put back
       into a NaN canvas of its input shape (Eq. G2), a resize is undone with a NaN-aware
       bilinear resize (Eq. G1, G4).

    Args:
        map_hw: [h, w] array (numpy or tensor).
        geometry: ``results['geometry']`` of the sample (None / empty = identity).
        ori_shape: (H, W) of the original image (the frame of the boxes); must equal the
            ``in_shape`` of the first record.

    Returns:
        [H, W] float64 map in original pixels, NaN outside the field of view (padding,
        cropped-away regions).
    """
    if torch.is_tensor(map_hw):
        map_hw = map_hw.detach().cpu().double().numpy()
    geometry = list(geometry or [])
    ori_shape = _shape(ori_shape)
    if geometry and _shape(geometry[0]['in_shape']) != ori_shape:
        raise ValueError(
            f'the geometry chain starts from {tuple(geometry[0]["in_shape"])} but ori_shape is '
            f'{ori_shape}; LoadCXRImage records a resize when the file on disk is a resized '
            'copy of the annotation frame, so the chain should start at ori_shape.')
    cur = resize_nan_aware(map_hw, final_shape(geometry, ori_shape))
    for rec in reversed(geometry):
        kind = rec['type']
        in_shape, out_shape = _shape(rec['in_shape']), _shape(rec['out_shape'])
        if tuple(cur.shape) != out_shape:
            raise RuntimeError(f'geometry record {rec} expects a {out_shape} map, got '
                               f'{cur.shape}')
        if kind == 'resize':
            cur = resize_nan_aware(cur, in_shape)
        elif kind == 'crop':
            canvas = np.full(in_shape, np.nan)
            y0, x0 = int(rec['y0']), int(rec['x0'])
            canvas[y0:y0 + out_shape[0], x0:x0 + out_shape[1]] = cur
            cur = canvas
        elif kind == 'pad':
            top, left = int(rec['top']), int(rec['left'])
            cur = cur[top:top + in_shape[0], left:left + in_shape[1]].copy()
        else:
            raise ValueError(f'unknown geometry record type "{kind}" in {rec}')
    return cur
