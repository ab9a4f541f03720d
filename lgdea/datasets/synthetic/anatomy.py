"""Normal chest anatomy: random parameters per subject / image and the vectorised painter.

The image is painted as an attenuation ("density") map: bright = dense (bone, heart, fluid),
dark = air (lungs, outside the body), as a radiograph is displayed. Anatomy coordinates
``(u, v)`` run over ``[0, 1]`` left -> right and top -> bottom of the image; the patient's
**right** lung is on the image **left** (radiological convention). Side ``'right'`` therefore
has lateral direction ``-1`` along ``u`` and side ``'left'`` has ``+1``.

Density model (per pixel, Eq. A1)::

    D = 0.52 body + bones + 0.05 heart + hila + trachea
        + clear * (vessels - air)          (lung fields; ``clear`` = 1 - opacity fraction)

where ``air = 0.40 * lung * (1 - 0.8 heart) * (1 - 0.2 base)`` is the lung air (less behind
the heart shadow and towards the bases, ``base = clip((v - 0.35) / 0.4, 0, 1)``) and ``vessels``
are the lung markings. Lung opacities (findings) fill air: ``clear < 1``.
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
VESSEL_DENSITY = 0.15
#: Number of radial vessel ridges around each hilum (over 360 degrees).
VESSEL_COUNT = 30


#: (mean, std) of every subject-level anatomy parameter (anatomy units / radians).
SUBJECT_ANATOMY = dict(
    body_rx=(0.47, 0.02), body_ry=(0.60, 0.02), body_cy=(0.62, 0.01),
    lung_cy=(0.45, 0.012), lung_ry=(0.275, 0.012), lung_rx=(0.18, 0.01), lung_gap=(0.215, 0.008),
    lung_asym=(0.0, 0.006), dome_r=(0.715, 0.015), dome_l_drop=(0.025, 0.008),
    dome_k=(2.4, 0.25), heart_cx=(0.55, 0.008), heart_cy=(0.655, 0.01), heart_rx=(0.165, 0.007),
    heart_ry=(0.12, 0.006), heart_angle=(0.25, 0.06), rib_spacing=(0.07, 0.003),
    clav_y=(0.17, 0.01))


def sample_subject_anatomy(rng: np.random.Generator, jitter: float = 1.0) -> Dict[str, float]:
    """Anatomy of one subject (shared by all of their images), anatomy units."""
    z = np.clip(rng.standard_normal(len(SUBJECT_ANATOMY)), -2.5, 2.5) * jitter
    out = {name: float(mean + std * zi) for (name, (mean, std)), zi in zip(SUBJECT_ANATOMY.items(),
                                                                          z)}
    out['rib_phase'] = float(rng.uniform(0, 1))
    return out


def sample_image_jitter(anatomy: Dict[str, float], rng: np.random.Generator, view: str,
                        pose_jitter: float = 1.0, contrast_jitter: float = 1.0) -> Dict[str, float]:
    """One image of a subject: small breathing/positioning changes, pose and exposure."""
    z = np.clip(rng.standard_normal(11), -2.5, 2.5).tolist()
    params = dict(anatomy)
    params['lung_cy'] += 0.004 * z[0]
    params['heart_cx'] += 0.003 * z[1]
    inspiration = 0.01 * z[2]
    params['dome_r'] += inspiration
    params['lung_ry'] += 0.5 * inspiration
    scale = 1.0 + 0.03 * z[3] * pose_jitter
    if view == 'AP':  # portable film: patient closer to the tube, shallower inspiration
        scale *= 1.04
        params['dome_r'] -= 0.015
    params.update(
        tx=0.025 * z[4] * pose_jitter, ty=0.02 * z[5] * pose_jitter, scale=scale,
        rot=0.035 * z[6] * pose_jitter,
        contrast=float(np.exp(0.12 * z[7] * contrast_jitter)) * (0.9 if view == 'AP' else 1.0),
        brightness=0.05 * z[8] * contrast_jitter,
        gamma=float(np.exp(0.15 * z[9] * contrast_jitter)),
        illum=abs(0.03 * z[10]) * contrast_jitter,
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

    Upper half: an ellipse narrowed towards the apex; lower half: a squarer super-ellipse
    (exponent 4) that reaches below the diaphragm, so the dome and the lateral wall form the
    costophrenic angle. To stay cheap, ``r^2`` / ``r^4`` are linearised around the outline:
    ``1 + (r^p - 1) / p`` (exact on the outline, monotone inside).
    """
    a = (u - frame['cx']) / frame['rx']
    b = (v - frame['cy']) / frame['ry']
    upper = (b < 0).astype(F32)
    a = a * (1.0 + 0.3 * upper * -b)
    a2 = a * a
    b2 = b * b
    r_up = 0.5 * (a2 + b2) + 0.5
    b2 *= 1.0 / (1.45 * 1.45)
    r_low = 0.25 * (a2 * a2 + b2 * b2) + 0.75
    return r_low + (r_up - r_low) * upper


def dome_height(u, frame) -> np.ndarray:
    """Diaphragm line ``y_d(u)``: highest under the lung centre, lower laterally (Eq. A2)."""
    return frame['dome'] + frame['dome_k'] * (u - frame['cx'] + frame['sign'] * 0.02) ** 2


def heart_mask(u, v, cx, cy, rx, ry, angle) -> np.ndarray:
    """Soft heart shadow: a tilted ellipse whose lower half reaches down into the diaphragm."""
    du, dv = u - cx, v - cy
    ca, sa = np.cos(angle), np.sin(angle)
    a = (ca * du + sa * dv) / rx
    b = (-sa * du + ca * dv) / ry
    b *= 1.0 - (1.0 - 1.0 / 1.7) * (dv > 0)
    return soft_inside(np.sqrt(a * a + b * b), 0.035)


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
    shoulders = 0.8 * soft_inside(ellipse_radius(u, v, 0.5, 0.2, 0.5, 0.13), 0.25)
    body = np.maximum(body, shoulders)
    # neck, clavicles and trachea lie in the upper part (v < 0.45): painted on the top rows only
    # (their values below are < 1e-4 for any pose the jitter allows)
    top = slice(0, int(np.ceil(0.6 * size)))
    ut, vt = u[:, top], v[:, top]
    neck = sigmoid((0.09 - np.abs(ut - 0.5)) / 0.01) * sigmoid((0.25 - vt) / 0.02)
    np.maximum(body[:, top], neck, out=body[:, top])

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
    aorta = soft_inside(ellipse_radius(u, v, 0.555, col(params['lung_cy']) - 0.12, 0.05, 0.035),
                        0.3)
    out['lung'] = lungs * (1.0 - aorta)

    # bones: posterior ribs (rising slightly then falling laterally), faint anterior ribs,
    # clavicles and the spine
    w = np.abs(u - 0.5)
    t = v + 0.2 * w - 1.2 * w * w
    phase = (t - col(params['rib_phase']) * col(params['rib_spacing'])) / col(params['rib_spacing'])
    ribs = 0.5 + 0.5 * np.cos(2 * np.pi * phase)
    ribs *= ribs
    ribs = ribs * ribs * ribs
    anterior = 0.5 + 0.5 * np.cos(2 * np.pi * (v - 0.35 * w) / (1.3 * col(params['rib_spacing'])))
    anterior *= anterior
    rib_zone = wall * sigmoid((w - 0.06) / 0.01)
    bones = rib_zone * (0.04 * ribs + 0.015 * anterior * anterior)
    clav_y = col(params['clav_y'])
    for sign in (-1.0, 1.0):
        d = segment_distance(ut, vt, 0.5 + sign * 0.05, clav_y + 0.035, 0.5 + sign * 0.34,
                             clav_y - 0.03)
        bones[:, top] += 0.11 * np.exp(-(d / 0.017) ** 2)
    spine = sigmoid((0.042 - w) / 0.006) * sigmoid((v - 0.03) / 0.02)
    vertebrae = 0.5 + 0.5 * np.cos(2 * np.pi * v / 0.055)
    vertebrae = 0.6 + 0.4 * vertebrae * vertebrae
    bones = bones + 0.085 * spine * vertebrae
    trachea = (sigmoid((0.016 - np.abs(ut - 0.5 + 0.004 * (vt - 0.2) / 0.2)) / 0.004)
               * sigmoid((col(params['lung_cy']) - 0.1 - vt) / 0.01)
               * sigmoid((vt - 0.04) / 0.02))

    # lung markings: vessels radiating from each hilum (angular ridges, wiggled and broken up
    # by the smooth random fields), denser and thicker centrally
    hila = 0.0
    vessels = 0.0
    broken = np.clip(0.55 + 0.6 * fields['vessel_b'], 0.0, 1.0)
    for frame in out['frames'].values():
        dx, dy = (u - frame['hilum_x']) * frame['sign'], v - frame['hilum_y']
        rho = np.sqrt(dx * dx + dy * dy)
        theta = np.arctan2(dy, dx) + 0.22 * fields['vessel_a']
        width = 0.16 + 0.25 * np.exp(-rho / 0.06)
        ridges = np.exp(-(np.sin(0.5 * VESSEL_COUNT * theta) / width) ** 2)
        vessels = vessels + ridges * broken * np.exp(-rho / 0.17)
        hila = hila + 0.07 * np.exp(-(rho / 0.035) ** 2)
    out['vessels'] = (VESSEL_DENSITY * vessels + hila) * out['lung']
    body_bones = 0.52 * body + bones * body
    body_bones[:, top] -= 0.12 * trachea
    out['body_bones'] = body_bones
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
