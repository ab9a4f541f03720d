"""Batch renderer: image specs -> uint8 images and the ground-truth box(es) of every finding.

An *image spec* is a plain dict::

    dict(params={...anatomy + pose + exposure floats...}, field_seed=int, view='PA'|'AP',
         findings=[finding dicts with per-image geometry], devices=[...], marker=dict|None)

Rendering (Eq. A1 of :mod:`.anatomy`, then exposure)::

    I = clip(contrast * (D - 0.3) + 0.3 + brightness, 0, 1) ** gamma
        + illum * smooth_field + noise_std * white_noise,      then markers, then uint8.

Images are rendered in batches; every operation is per pixel or per image, so an image renders
the same whatever batch it is in.
"""
import collections
import concurrent.futures
import os
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np

from . import findings as fnd
from .anatomy import AIR_DENSITY, heart_from_params, paint_anatomy, pixel_grid, random_fields
from .confounders import paint_devices, paint_marker
from .config import SEVERITIES
from .drawing import F32, box_from_map, col

_SEV_INDEX = {s: i for i, s in enumerate(SEVERITIES)}
_SIDE_ORDER = dict(right=0, center=1, left=2)
_PAINTERS = dict(atelectasis=fnd.paint_atelectasis, consolidation=fnd.paint_consolidation,
                 edema=fnd.paint_edema, lung_opacity=fnd.paint_lung_opacity,
                 pleural_effusion=fnd.paint_pleural_effusion,
                 pneumothorax=fnd.paint_pneumothorax)


def _batch_size(size: int) -> int:
    return int(max(2, min(32, 32 * (64 / size) ** 2)))


def default_workers() -> int:
    """Rendering threads: numpy releases the GIL in its array loops, so batches run in parallel."""
    return max(1, min(4, os.cpu_count() or 1))


def render_batch(specs: Sequence[dict], size: int, signal_strength: float = 1.0,
                 noise_std: float = 0.03, with_findings: bool = True,
                 return_density: bool = False) -> Tuple[np.ndarray, List[List[np.ndarray]]]:
    """Render ``specs`` at ``size`` x ``size``.

    Returns:
        images: uint8 ``[n, S, S]``.
        boxes: per image, per finding, float32 ``[k, 4]`` boxes ``(x, y, w, h)`` in pixels
            (k = 2 for a bilateral finding painted on both lungs: right lung first). Empty
            lists when ``with_findings`` is False.
    """
    n = len(specs)
    keys = specs[0]['params'].keys()
    params = {k: np.asarray([s['params'][k] for s in specs], dtype=F32) for k in keys}
    fields = random_fields([s['field_seed'] for s in specs], size)
    u, v = pixel_grid(params, size)
    anat = paint_anatomy(u, v, params, fields, size)
    ctx = fnd.PaintContext(u, v, params, anat, fields, size, signal_strength)
    heart = heart_from_params(u, v, params)
    clear = np.ones_like(u)
    keep = np.ones_like(u)
    extra = np.zeros_like(u)
    boxes: List[List[np.ndarray]] = [[] for _ in specs]
    if with_findings:
        groups: Dict[Tuple[str, str], list] = {}
        for i, spec in enumerate(specs):
            boxes[i] = [[] for _ in spec['findings']]
            for j, finding in enumerate(spec['findings']):
                for side, geo in finding['geo'].items():
                    groups.setdefault((finding['category'], side), []).append(
                        (i, j, geo, _SEV_INDEX[finding['severity']], finding.get('pattern',
                                                                                 'focal')))
        for (category, side), inst in sorted(groups.items()):
            rows = np.asarray([e[0] for e in inst])
            geos = [e[2] for e in inst]
            sev = np.asarray([e[3] for e in inst])
            if category == 'cardiomegaly':
                res = fnd.paint_cardiomegaly(ctx, rows, geos, sev)
                heart[rows] = res['heart']
            elif category == 'pneumonia':
                res = fnd.paint_pneumonia(ctx, rows, side, geos, sev, [e[4] for e in inst])
            else:
                res = _PAINTERS[category](ctx, rows, side, geos, sev)
            if 'op' in res:
                clear[rows] *= 1.0 - res['op']
            if 'keep' in res:
                keep[rows] *= res['keep']
            if 'delta' in res:
                extra[rows] += res['delta']
            for (i, j, *_), box in zip(inst, box_from_map(res['box_map'])):
                boxes[i][j].append((_SIDE_ORDER.get(side, 1), box))
        for i in range(n):
            boxes[i] = [np.stack([b for _, b in sorted(parts, key=lambda p: p[0])]).astype(F32)
                        for parts in boxes[i]]
    base = np.clip((v - 0.35) / 0.4, 0.0, 1.0)
    air = AIR_DENSITY * anat['lung'] * (1.0 - 0.8 * heart) * (1.0 - 0.2 * base)
    density = anat['body_bones'] + 0.05 * heart + clear * (anat['vessels'] * keep - air) + extra
    density += paint_devices(u, v, [s.get('devices', []) for s in specs], size)
    if return_density:
        return density, boxes
    img = np.clip(col(params['contrast']) * (density - 0.3) + 0.3 + col(params['brightness']),
                  0.0, 1.0) ** col(params['gamma'])
    img = img + col(params['illum']) * fields['illum'] + noise_std * fields['noise']
    img = np.clip(img, 0.0, 1.0)
    for i, spec in enumerate(specs):
        paint_marker(img[i], spec.get('marker'))
    return np.round(img * 255.0).astype(np.uint8), boxes


def render_images(specs: Sequence[dict], size: int, signal_strength: float = 1.0,
                  noise_std: float = 0.03, with_findings: bool = True, batch_size: int = None,
                  workers: int = None) -> Iterator[Tuple[int, np.ndarray, list]]:
    """Yield ``(start_index, images, boxes)`` for consecutive batches of ``specs``, in order.

    Batches are rendered by ``workers`` threads (default :func:`default_workers`); the output
    does not depend on the batch size or the number of workers.
    """
    batch_size = batch_size or _batch_size(size)
    workers = workers or default_workers()
    starts = list(range(0, len(specs), batch_size))

    def job(start):
        images, boxes = render_batch(specs[start:start + batch_size], size, signal_strength,
                                     noise_std, with_findings)
        return start, images, boxes

    if workers == 1 or len(starts) <= 1:
        for start in starts:
            yield job(start)
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        pending = collections.deque()
        for start in starts:
            pending.append(pool.submit(job, start))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
