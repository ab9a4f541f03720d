"""Non-diagnostic confounders: support devices (lines / tubes / ECG leads) and corner markers.

Devices belong to the study (both images show them, each with a small jitter) and the report
describes them ("right PICC line terminates in the SVC"); markers belong to one image and the
report never mentions them. With ``confounder_correlation > 0`` devices, AP views and the
``PORTABLE`` marker are more frequent in abnormal studies -- a spurious cue, as in ICU films.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np

from .drawing import F32, catmull_rom, col, polyline_distance, text_mask
from .rng import categorical, sample_without_replacement

#: Control points (anatomy coordinates) of each line / tube; tips last.
DEVICE_PATHS: Dict[str, Sequence] = dict(
    picc_right=((0.0, 0.28), (0.12, 0.24), (0.28, 0.25), (0.4, 0.29), (0.46, 0.36), (0.47, 0.43)),
    picc_left=((1.0, 0.28), (0.88, 0.24), (0.72, 0.25), (0.58, 0.29), (0.5, 0.34), (0.47, 0.42)),
    ij_right=((0.41, 0.0), (0.43, 0.12), (0.455, 0.24), (0.465, 0.34), (0.47, 0.42)),
    ett=((0.5, 0.0), (0.5, 0.12), (0.5, 0.27)),
    ng=((0.52, 0.0), (0.505, 0.2), (0.51, 0.5), (0.56, 0.75), (0.64, 0.84)),
)
#: Relative frequency of each device type.
DEVICE_PROBS: Dict[str, float] = dict(picc_right=0.25, picc_left=0.12, ij_right=0.18, ett=0.15,
                                      ng=0.15, ecg=0.15)
#: (line half-thickness in anatomy units, density) per device type.
DEVICE_STYLE = dict(picc_right=(0.005, 0.45), picc_left=(0.005, 0.45), ij_right=(0.006, 0.5),
                    ett=(0.011, 0.3), ng=(0.006, 0.45))

MARKER_TEXTS = dict(AP=(('PORTABLE', 0.5), ('AP', 0.2), ('L', 0.15), ('R', 0.15)),
                    PA=(('L', 0.45), ('R', 0.4), ('PA', 0.15)))


def _choice(rng, options):
    return options[categorical(rng, [o[1] for o in options])][0]


def device_probability(rate: float, correlation: float, abnormal: bool) -> float:
    """``rate * (1 +/- correlation / 2)`` for abnormal / normal studies (capped at 1)."""
    factor = 1.0 + 0.5 * correlation if abnormal else 1.0 - 0.5 * correlation
    return float(min(1.0, rate * factor))


def sample_devices(rng: np.random.Generator, rate: float, correlation: float,
                   abnormal: bool) -> List[dict]:
    """0, 1 or 2 devices of one study, each ``dict(type=..., points=[[x, y], ...])``."""
    devices = []
    if rng.random() >= device_probability(rate, correlation, abnormal):
        return devices
    n = 2 if rng.random() < 0.25 else 1
    names = list(DEVICE_PROBS)
    for idx in sample_without_replacement(rng, [DEVICE_PROBS[k] for k in names], n):
        kind = names[idx]
        if kind == 'ecg':
            pts = [[0.25, 0.1], [0.75, 0.1], [0.72, 0.86]]
            pts = [[x + rng.normal(0, 0.04), y + rng.normal(0, 0.03)] for x, y in pts]
        else:
            pts = [list(p) for p in DEVICE_PATHS[kind]]
            tip_shift = rng.normal(0, 0.02)
            for k, p in enumerate(pts):
                w = k / (len(pts) - 1)
                p[0] += rng.normal(0, 0.008)
                p[1] += rng.normal(0, 0.008) + w * tip_shift
        devices.append(dict(type=kind, points=[[float(x), float(y)] for x, y in pts]))
    return devices


def jitter_devices(devices: List[dict], rng: np.random.Generator) -> List[dict]:
    """The study's devices on another image: a small jitter of every control point."""
    return [dict(type=d['type'], points=[[x + float(rng.normal(0, 0.004)),
                                          y + float(rng.normal(0, 0.004))]
                                         for x, y in d['points']]) for d in devices]


def sample_marker(rng: np.random.Generator, view: str, marker_rate: float) -> Optional[dict]:
    """Corner text marker of one image (or None): text, corner, offset and height (image units)."""
    if rng.random() >= marker_rate:
        return None
    text = _choice(rng, MARKER_TEXTS[view])
    corner = _choice(rng, (('tl', 0.4), ('tr', 0.4), ('bl', 0.1), ('br', 0.1)))
    height = 0.075 if len(text) == 1 else 0.05
    return dict(text=text, corner=corner, dx=float(rng.uniform(0.03, 0.09)),
                dy=float(rng.uniform(0.03, 0.07)), height=height)


def paint_devices(u, v, devices_per_image: List[List[dict]], size: int) -> np.ndarray:
    """Additive density ``[n, S, S]`` of every device of every image (vectorised per type)."""
    out = np.zeros(u.shape, dtype=F32)
    by_type: Dict[str, List] = {}
    for i, devices in enumerate(devices_per_image):
        for d in devices:
            by_type.setdefault(d['type'], []).append((i, d['points']))
    for kind, entries in by_type.items():
        rows = np.asarray([e[0] for e in entries])
        uu, vv = u[rows], v[rows]
        if kind == 'ecg':
            dens = np.zeros(uu.shape, dtype=F32)
            pts = np.asarray([e[1] for e in entries], dtype=F32)  # [m, 3, 2]
            ring_w = max(0.005, 0.6 / size)
            for k in range(pts.shape[1]):
                d = np.sqrt((uu - col(pts[:, k, 0])) ** 2 + (vv - col(pts[:, k, 1])) ** 2)
                dens += 0.4 * np.exp(-((d - 0.018) / ring_w) ** 2) + 0.3 * np.exp(
                    -(d / 0.008) ** 2)
        else:
            curves = np.stack([catmull_rom(np.asarray(e[1]), 10) for e in entries]).astype(F32)
            d = polyline_distance(uu, vv, curves)
            thick, density = DEVICE_STYLE[kind]
            thick = max(thick, 0.55 / size)
            dens = density * np.exp(-(d / thick) ** 2)
            if kind == 'ett':  # radiopaque stripe along the tube
                dens += 0.25 * np.exp(-(d / max(0.003, 0.4 / size)) ** 2)
        np.add.at(out, rows, dens)
    return out


def paint_marker(image: np.ndarray, marker: Optional[dict]) -> None:
    """Burn ``marker`` into one intensity image ``[S, S]`` in place (bright text)."""
    if marker is None:
        return
    size = image.shape[0]
    mask = text_mask(marker['text'], max(3.0, marker['height'] * size))
    h, w = mask.shape
    if w >= size or h >= size:
        return
    x = int(round(marker['dx'] * size))
    y = int(round(marker['dy'] * size))
    x = min(x, size - w) if marker['corner'] in ('tl', 'bl') else max(0, size - w - x)
    y = min(y, size - h) if marker['corner'] in ('tl', 'tr') else max(0, size - h - y)
    region = image[y:y + h, x:x + w]
    np.maximum(region, 0.96 * mask, out=region)
