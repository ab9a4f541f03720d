"""Normal chest anatomy: random parameters per subject / image and the vectorised painter.

The image is painted as an attenuation ("density") map: bright = dense (bone, heart, fluid),
dark = air (lungs, outside the body), as a radiograph is displayed. Anatomy coordinates
``(u, v)`` run over ``[0, 1]`` left -> right and top -> bottom of the image; the patient's
**right** lung is on the image **left** (radiological convention). Side ``'right'`` therefore
has lateral direction ``-1`` along ``u`` and side ``'left'`` has ``+1``.

Density model (per pixel, Eq. A1)::

    D = 0.52 body + bones + 0.05 heart + hila + trachea
        + clear * (vessels - air)          (lung fields; ``clear`` = 1 - opacity fraction)

where ``air = 0.40 * lung * (1 - 0.8 heart)`` is the lung air removed by the heart shadow and
``vessels`` are the lung markings. Lung opacities (findings) fill air: ``clear < 1``.
"""
from typing import Dict

import numpy as np

from .drawing import (F32, col, ellipse_radius, segment_distance, sigmoid, smooth_fields,
                      soft_inside)

#: Lateral direction of each side along ``u`` (radiological convention).
LATERAL_SIGN = dict(right=-1.0, left=1.0)

#: Coarse grid sizes of the random fields of one image.
FIELD_GRIDS = dict(vessel_a=9, vessel_b=14, patch=11, illum=3)

AIR_DENSITY = 0.40
VESSEL_DENSITY = 0.075


def sample_subject_anatomy(rng: np.random.Generator, jitter: float = 1.0) -> Dict[str, float]:
    """Anatomy of one subject (shared by all of their images), anatomy units."""
    n = lambda s: float(s * jitter * np.clip(rng.standard_normal(), -2.5, 2.5))  # noqa: E731
    return dict(
        body_rx=0.47 + n(0.02), body_ry=0.60 + n(0.02), body_cy=0.62 + n(0.01),
        lung_cy=0.45 + n(0.012), lung_ry=0.27 + n(0.012), lung_rx=0.165 + n(0.01),
        lung_gap=0.205 + n(0.008), lung_asym=n(0.006),
        dome_r=0.715 + n(0.015), dome_l_drop=0.025 + n(0.008), dome_k=2.4 + n(0.25),
        heart_cx=0.535 + n(0.008), heart_cy=0.655 + n(0.01), heart_rx=0.14 + n(0.007),
        heart_ry=0.115 + n(0.006), heart_angle=0.35 + n(0.06),
        rib_spacing=0.07 + n(0.003), rib_phase=float(rng.uniform(0, 1)),
        clav_y=0.17 + n(0.01),
    )


def sample_image_jitter(anatomy: Dict[str, float], rng: np.random.Generator, view: str,
                        pose_jitter: float = 1.0, contrast_jitter: float = 1.0) -> Dict[str, float]:
    """One image of a subject: small breathing/positioning changes, pose and exposure."""
    n = lambda s: float(s * np.clip(rng.standard_normal(), -2.5, 2.5))  # noqa: E731
    params = dict(anatomy)
    params['lung_cy'] += n(0.004)
    params['heart_cx'] += n(0.003)
    inspiration = n(0.01)
    params['dome_r'] += inspiration
    params['lung_ry'] += 0.5 * inspiration
    scale = 1.0 + n(0.03) * pose_jitter
    if view == 'AP':  # portable film: patient closer to the tube, shallower inspiration
        scale *= 1.04
        params['dome_r'] -= 0.015
    params.update(
        tx=n(0.025) * pose_jitter, ty=n(0.02) * pose_jitter, scale=scale,
        rot=n(0.035) * pose_jitter,
        contrast=float(np.exp(n(0.12) * contrast_jitter)) * (0.9 if view == 'AP' else 1.0),
        brightness=n(0.05) * contrast_jitter,
        gamma=float(np.exp(n(0.15) * contrast_jitter)),
        illum=abs(n(0.03)) * contrast_jitter,
    )
    return params


def pixel_grid(params: Dict[str, np.ndarray], size: int):
    """Anatomy coordinates ``(u, v)`` ``[n, S, S]`` of every pixel after the pose transform."""
    p = (np.arange(size, dtype=F32) + 0.5) / size - 0.5
    x, y = p[None, None, :], p[None, :, None]
    tx, ty, s, rot = col(params['tx']), col(params['ty']), col(params['scale']), col(params['rot'])
    xc, yc = x - tx, y - ty
    cr, sr = np.cos(rot), np.sin(rot)
    u = 0.5 + (cr * xc + sr * yc) / s
    v = 0.5 + (-sr * xc + cr * yc) / s
    return u.astype(F32), v.astype(F32)


def lung_frame(params: Dict[str, np.ndarray], side: str) -> Dict[str, np.ndarray]:
    """Centre / radii / lateral sign / hilum / dome of one lung, ``[n, 1, 1]`` each."""
    sign = LATERAL_SIGN[side]
    cx = 0.5 + sign * col(params['lung_gap']) + col(params['lung_asym'])
    dome = col(params['dome_r']) + (col(params['dome_l_drop']) if side == 'left' else 0.0)
    rx = col(params['lung_rx']) * (1.04 if side == 'right' else 1.0)
    return dict(cx=cx, cy=col(params['lung_cy']), rx=rx, ry=col(params['lung_ry']), sign=sign,
                dome=dome, dome_k=col(params['dome_k']),
                hilum_x=cx - sign * 0.45 * rx, hilum_y=col(params['lung_cy']) + 0.03)


def lung_radius(u, v, frame) -> np.ndarray:
    """Normalised radius of the lung outline (1 on the outline, without the diaphragm cut).

    Upper half: an ellipse narrowed towards the apex; lower half: a squarer super-ellipse that
    reaches below the diaphragm, so the dome and the lateral wall form the costophrenic angle.
    """
    a = (u - frame['cx']) / frame['rx']
    b_up = (v - frame['cy']) / frame['ry']
    a = a * (1.0 + 0.45 * np.maximum(-b_up, 0.0))
    b_low = (v - frame['cy']) / (1.45 * frame['ry'])
    r_up = np.sqrt(a * a + b_up * b_up)
    r_low = (np.abs(a) ** 4 + np.abs(b_low) ** 4) ** 0.25
    return np.where(b_up < 0, r_up, r_low)


def dome_height(u, frame) -> np.ndarray:
    """Diaphragm line ``y_d(u)``: highest under the lung centre, lower laterally (Eq. A2)."""
    return frame['dome'] + frame['dome_k'] * (u - frame['cx'] + frame['sign'] * 0.02) ** 2


def heart_mask(u, v, cx, cy, rx, ry, angle) -> np.ndarray:
    """Soft heart shadow (a tilted ellipse)."""
    return soft_inside(ellipse_radius(u, v, cx, cy, rx, ry, angle), 0.035)


def paint_anatomy(u, v, params: Dict[str, np.ndarray], fields: Dict[str, np.ndarray],
                  size: int) -> Dict[str, np.ndarray]:
    """Every normal component ``[n, S, S]``; findings modify ``heart`` / ``clear`` later.

    Returns a dict with ``body_bones`` (everything outside the lung term of Eq. A1 except the
    heart), ``lung`` (union lung mask), ``lung_<side>`` / ``lung_open_<side>`` (with / without
    the diaphragm cut), ``radius_<side>``, ``vessels`` and the frames.
    """
    out = dict(frames={s: lung_frame(params, s) for s in ('right', 'left')})
    body = soft_inside(ellipse_radius(u, v, col(params.get('body_cx', 0.5)),
                                      col(params['body_cy']), col(params['body_rx']),
                                      col(params['body_ry'])), 0.04)
    shoulders = soft_inside(ellipse_radius(u, v, 0.5, 0.16, 0.52, 0.12), 0.08)
    neck = sigmoid((0.09 - np.abs(u - 0.5)) / 0.01) * sigmoid((0.25 - v) / 0.02)
    body = np.maximum(np.maximum(body, shoulders), neck)

    lungs, wall = 0.0, 0.0
    for side, frame in out['frames'].items():
        r = lung_radius(u, v, frame)
        open_mask = soft_inside(r, 0.05)
        dome_cut = sigmoid((dome_height(u, frame) - v) / 0.006)
        out[f'radius_{side}'] = r
        out[f'lung_open_{side}'] = open_mask
        out[f'lung_{side}'] = open_mask * dome_cut
        lungs = lungs + out[f'lung_{side}']
        # chest wall / rib cage extends a little beyond the lung outline
        wall = np.maximum(wall, soft_inside(r / 1.18, 0.08) * sigmoid((frame['dome'] + 0.08 - v)
                                                                       / 0.02))
    lungs = np.clip(lungs, 0.0, 1.0)
    aorta = soft_inside(ellipse_radius(u, v, 0.575, col(params['lung_cy']) - 0.12, 0.035, 0.03),
                        0.12)
    out['lung'] = lungs * (1.0 - aorta)

    # bones: posterior ribs (rising slightly then falling laterally), faint anterior ribs,
    # clavicles and the spine
    w = np.abs(u - 0.5)
    t = v + 0.12 * w - 0.55 * w * w
    phase = (t - col(params['rib_phase']) * col(params['rib_spacing'])) / col(params['rib_spacing'])
    ribs = (0.5 + 0.5 * np.cos(2 * np.pi * phase)) ** 6
    anterior = (0.5 + 0.5 * np.cos(2 * np.pi * (v - 0.35 * w) / (1.3 * col(params['rib_spacing']))))
    rib_zone = wall * sigmoid((w - 0.06) / 0.01)
    bones = rib_zone * (0.075 * ribs + 0.025 * anterior ** 4)
    clav_y = col(params['clav_y'])
    for sign in (-1.0, 1.0):
        d = segment_distance(u, v, 0.5 + sign * 0.05, clav_y + 0.035, 0.5 + sign * 0.34,
                             clav_y - 0.03)
        bones = bones + 0.11 * np.exp(-(d / 0.017) ** 2)
    spine = sigmoid((0.042 - w) / 0.006) * sigmoid((v - 0.03) / 0.02)
    vertebrae = 0.6 + 0.4 * (0.5 + 0.5 * np.cos(2 * np.pi * v / 0.055)) ** 2
    bones = bones + 0.085 * spine * vertebrae
    trachea = (sigmoid((0.016 - np.abs(u - 0.5 + 0.004 * (v - 0.2) / 0.2)) / 0.004)
               * sigmoid((col(params['lung_cy']) - 0.1 - v) / 0.01) * sigmoid((v - 0.04) / 0.02))

    hila = 0.0
    vessel_weight = 0.0
    for frame in out['frames'].values():
        d_h = np.sqrt((u - frame['hilum_x']) ** 2 + (v - frame['hilum_y']) ** 2)
        hila = hila + 0.07 * np.exp(-(d_h / 0.035) ** 2)
        vessel_weight = vessel_weight + np.exp(-d_h / 0.14)
    ridges = (np.exp(-(fields['vessel_a'] / 0.11) ** 2)
              + 0.7 * np.exp(-(fields['vessel_b'] / 0.09) ** 2))
    out['vessels'] = VESSEL_DENSITY * ridges * (0.3 + vessel_weight) * out['lung'] + hila * out[
        'lung']
    out['body_bones'] = 0.52 * body + bones * body - 0.12 * trachea
    return out


def heart_from_params(u, v, params, enlarge=None) -> np.ndarray:
    """Heart mask, optionally enlarged by factors ``enlarge`` ``[n]`` (cardiomegaly, Eq. F1)."""
    rx, ry = col(params['heart_rx']), col(params['heart_ry'])
    cx = col(params['heart_cx'])
    if enlarge is not None:
        e = col(enlarge)
        cx = cx + 0.45 * (e - 1.0) * rx  # enlarges mostly towards the patient's left
        rx = rx * e
        ry = ry * (1.0 + 0.45 * (e - 1.0))
    cy = col(params['heart_cy'])
    return heart_mask(u, v, cx, cy, rx, ry, col(params['heart_angle']))


def random_fields(seeds, size: int):
    """Per-image random fields: smooth grids for vessels / patchiness / illumination + noise.

    ``seeds``: one integer per image; returns dict of ``[n, S, S]`` arrays (``noise`` is white).
    """
    coarse = {k: [] for k in FIELD_GRIDS}
    noise = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for k, g in FIELD_GRIDS.items():
            coarse[k].append(rng.standard_normal((g, g), dtype=F32))
        noise.append(rng.standard_normal((size, size), dtype=F32))
    out = {k: smooth_fields(np.stack(v), size) for k, v in coarse.items()}
    out['noise'] = np.stack(noise)
    return out
