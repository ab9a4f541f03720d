"""Vectorised drawing primitives shared by the anatomy, finding and confounder painters.

Every function works on a batch: coordinate arrays ``u, v`` of shape ``[n, S, S]`` (the
anatomy coordinates of each pixel, in ``[0, 1]`` units of the image side) and per-image
parameters of shape ``[n, 1, 1]``. Nothing here draws random numbers: randomness is drawn
per image by the caller and passed in, so a batch renders the same as its images one by one.
"""
import functools
from typing import Dict, Tuple

import numpy as np

F32 = np.float32


def col(values) -> np.ndarray:
    """Per-image parameters ``[n]`` -> ``[n, 1, 1]`` float32 for broadcasting over pixels."""
    return np.asarray(values, dtype=F32).reshape(-1, 1, 1)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function ``1 / (1 + exp(-x)) = (1 + tanh(x / 2)) / 2``, computed in place."""
    t = np.multiply(x, 0.5, dtype=F32)
    np.tanh(t, out=t)
    t *= 0.5
    t += 0.5
    return t


def soft_inside(radius: np.ndarray, edge: float) -> np.ndarray:
    """Soft mask of ``radius < 1`` with an edge of width ``edge`` (normalised radius units)."""
    return sigmoid((1.0 - radius) / edge)


def ellipse_radius(u, v, cx, cy, rx, ry, angle=None) -> np.ndarray:
    """Normalised elliptical radius ``sqrt(a^2 + b^2)``; 1 on the ellipse, optionally rotated."""
    du, dv = u - cx, v - cy
    if angle is not None:
        ca, sa = np.cos(angle), np.sin(angle)
        du, dv = ca * du + sa * dv, -sa * du + ca * dv
    return np.sqrt((du / rx) ** 2 + (dv / ry) ** 2)


def segment_distance(u, v, x0, y0, x1, y1) -> np.ndarray:
    """Distance of every pixel to the segment ``(x0, y0) -> (x1, y1)`` (per-image endpoints)."""
    dx, dy = x1 - x0, y1 - y0
    length2 = np.maximum(dx * dx + dy * dy, 1e-12)
    t = np.clip(((u - x0) * dx + (v - y0) * dy) / length2, 0.0, 1.0)
    return np.sqrt((u - x0 - t * dx) ** 2 + (v - y0 - t * dy) ** 2)


def polyline_distance(u, v, points: np.ndarray) -> np.ndarray:
    """Distance to a polyline; ``points`` is ``[n, K, 2]`` (K >= 2 vertices per image)."""
    dist = None
    for k in range(points.shape[1] - 1):
        d = segment_distance(u, v, col(points[:, k, 0]), col(points[:, k, 1]),
                             col(points[:, k + 1, 0]), col(points[:, k + 1, 1]))
        dist = d if dist is None else np.minimum(dist, d)
    return dist


@functools.lru_cache(maxsize=16)
def _catmull_rom_weights(num_control: int, samples: int) -> np.ndarray:
    """Weights ``[samples, K + 2]`` mapping end-padded control points to curve samples."""
    segs = num_control - 1
    weights = np.zeros((samples, num_control + 2))
    for i, t in enumerate(np.linspace(0, segs, samples)):
        k = min(int(t), segs - 1)
        s = t - k
        weights[i, k:k + 4] = 0.5 * np.array([-s + 2 * s * s - s ** 3, 2 - 5 * s * s + 3 * s ** 3,
                                              s + 4 * s * s - 3 * s ** 3, -s * s + s ** 3])
    return weights


def catmull_rom(control: np.ndarray, samples: int) -> np.ndarray:
    """Smooth curve through the control points ``[K, 2]`` sampled at ``samples`` points."""
    control = np.asarray(control, dtype=np.float64)
    padded = np.concatenate([control[:1], control, control[-1:]], axis=0)
    return _catmull_rom_weights(len(control), samples) @ padded


@functools.lru_cache(maxsize=64)
def _interp_matrix(size: int, grid: int) -> np.ndarray:
    """Gaussian-RBF interpolation matrix ``[size, grid]`` (rows sum to 1), resolution-free."""
    centres = (np.arange(grid) + 0.5) / grid
    pixels = (np.arange(size) + 0.5) / size
    sigma = 0.75 / grid
    w = np.exp(-0.5 * ((pixels[:, None] - centres[None, :]) / sigma) ** 2)
    w /= w.sum(axis=1, keepdims=True)
    return w.astype(F32)


def smooth_fields(coarse: np.ndarray, size: int) -> np.ndarray:
    """Upsample coarse random grids ``[n, g, g]`` to smooth fields ``[n, S, S]``.

    Each field is standardised to zero mean and unit std per image, so its structure (and the
    image drawn from it) is the same at every output resolution.
    """
    w = _interp_matrix(size, coarse.shape[-1])
    fields = w @ coarse.astype(F32) @ w.T
    fields -= fields.mean(axis=(1, 2), keepdims=True)
    fields /= fields.std(axis=(1, 2), keepdims=True) + 1e-6
    return fields


def box_from_map(delta: np.ndarray, rel_threshold: float = 0.3) -> np.ndarray:
    """Bounding boxes ``[n, 4]`` (x, y, w, h in pixels) of ``|delta| > t * max|delta|``.

    A map without any signal gives a zero-size box at the origin; callers treat ``w = 0`` as
    "not visible in this image".
    """
    mag = np.abs(delta)
    peak = mag.reshape(len(mag), -1).max(axis=1)
    mask = mag > (rel_threshold * peak)[:, None, None]
    mask &= (peak > 1e-6)[:, None, None]
    rows, cols = mask.any(axis=2), mask.any(axis=1)
    boxes = np.zeros((len(delta), 4), dtype=F32)
    for i in range(len(delta)):
        r, c = np.flatnonzero(rows[i]), np.flatnonzero(cols[i])
        if len(r):
            boxes[i] = (c[0], r[0], c[-1] - c[0] + 1, r[-1] - r[0] + 1)
    return boxes


# --------------------------------------------------------------------------------------------
# A 3x5 bitmap font for the corner text markers ("L", "R", "PORTABLE", "AP", "PA", "UPRIGHT").
_FONT_3X5: Dict[str, Tuple[str, ...]] = {
    'A': ('010', '101', '111', '101', '101'),
    'B': ('110', '101', '110', '101', '110'),
    'E': ('111', '100', '110', '100', '111'),
    'G': ('011', '100', '101', '101', '011'),
    'H': ('101', '101', '111', '101', '101'),
    'I': ('111', '010', '010', '010', '111'),
    'L': ('100', '100', '100', '100', '111'),
    'O': ('010', '101', '101', '101', '010'),
    'P': ('110', '101', '110', '100', '100'),
    'R': ('110', '101', '110', '101', '101'),
    'T': ('111', '010', '010', '010', '010'),
    'U': ('101', '101', '101', '101', '111'),
    ' ': ('000', '000', '000', '000', '000'),
}


@functools.lru_cache(maxsize=256)
def text_mask(text: str, height_px: float) -> np.ndarray:
    """Anti-aliased mask ``[h, w]`` in [0, 1] of ``text`` drawn ``height_px`` pixels high.

    The 3x5 glyphs (1 column of spacing) are rasterised with 4x4 supersampling, so small
    markers blur into blobs as they would on a down-sampled radiograph.
    """
    unknown = sorted(set(text) - set(_FONT_3X5))
    if unknown:
        raise ValueError(f'text_mask: no glyph for {unknown} in {text!r}; '
                         f'available: {"".join(sorted(_FONT_3X5))}.')
    rows = []
    for r in range(5):
        line = []
        for ch in text:
            line.extend(int(b) for b in _FONT_3X5[ch][r])
            line.append(0)
        rows.append(line[:-1])
    bitmap = np.asarray(rows, dtype=F32)  # [5, 4 * len - 1]
    unit = height_px / 5.0
    out_h = max(1, int(round(5 * unit)))
    out_w = max(1, int(round(bitmap.shape[1] * unit)))
    ss = 4
    yy = ((np.arange(out_h * ss) + 0.5) / (out_h * ss) * 5).astype(int).clip(0, 4)
    xx = ((np.arange(out_w * ss) + 0.5) / (out_w * ss) * bitmap.shape[1]).astype(int)
    xx = xx.clip(0, bitmap.shape[1] - 1)
    hi = bitmap[yy][:, xx]
    return hi.reshape(out_h, ss, out_w, ss).mean(axis=(1, 3))
