"""The 8 localized findings: how a study's findings are drawn at random and how each is painted.

A *finding* (study level) is a dict::

    dict(category='pleural_effusion', side='right'|'left'|'bilateral', severity='mild'|...,
         zone='upper'|'mid'|'lower'|None, pattern='focal'|'peripheral',
         geo={'right': {...}, 'left': {...}})        # one geometry per painted side

Each image of the study re-draws a small jitter of ``geo`` (a different rendering of the same
finding). Painters are vectorised over all images that carry the category on one side and
return, per image, some of:

* ``op``: opacity fraction in [0, 1] -- the share of lung air that the finding replaces
  (Eq. A1: ``clear = prod_i (1 - op_i)``), used by every lung opacity and the effusion;
* ``keep``: multiplier of the lung markings (pneumothorax removes them);
* ``delta``: extra additive density (pneumothorax: darker pleural air + visceral pleural line);
* ``heart``: the replaced heart mask (cardiomegaly);
* ``box_map``: the finding's visible footprint; its box is ``|box_map| > 0.3 max`` (pixels).

Signatures (severity index ``s`` = 0 / 1 / 2 for mild / moderate / large, ``g`` = signal
strength):

===================  ==========================================================================
atelectasis          thin oblique plate-like band above the diaphragm (length and thickness grow
                     with ``s``) plus a basal wedge haze from ``s >= 1``
cardiomegaly         heart shadow widened by ``1 + g * (0.16, 0.27, 0.38)[s]``, mostly towards
                     the patient's left (Eq. F1)
consolidation        dense focal blob (op 0.8 g) with an irregular edge and dark branching air
                     bronchograms
edema                bilateral perihilar (bat-wing) haze, plus Kerley-B lines laterally at the
                     bases from ``s >= 1``
lung_opacity         smooth ground-glass haze (op 0.36-0.55 g), no texture
pleural_effusion     basal fluid with a meniscus rising laterally; blunts the costophrenic angle
                     and hides the hemidiaphragm (height 0.045 / 0.09 / 0.15)
pneumonia            patchy (textured) focal opacity; ``pattern='peripheral'`` = bilateral
                     peripheral lower-zone patchy opacities (the COVID-like class)
pneumothorax         apical / lateral rim without lung markings, darker than the lung, with a
                     thin bright visceral pleural line
===================  ==========================================================================
"""
from typing import Dict, List, Optional

import numpy as np

from .anatomy import dome_height, heart_from_params, lung_radius
from .config import FINDING_KEYS, SEVERITIES
from .drawing import F32, col, ellipse_radius, segment_distance, sigmoid, soft_inside
from .rng import categorical

#: Zone probabilities per category (None: the category has a fixed place).
ZONE_PROBS: Dict[str, Optional[Dict[str, float]]] = dict(
    atelectasis=dict(lower=1.0),
    cardiomegaly=None,
    consolidation=dict(lower=0.5, mid=0.3, upper=0.2),
    edema=dict(mid=1.0),
    lung_opacity=dict(lower=0.4, mid=0.35, upper=0.25),
    pleural_effusion=dict(lower=1.0),
    pneumonia=dict(lower=0.55, mid=0.3, upper=0.15),
    pneumothorax=dict(upper=1.0),
)

#: How a category may be lateralised: 'central' (one central instance), 'both' (always
#: bilateral), 'uni' (never bilateral) or a factor on ``bilateral_rate``.
LATERALITY = dict(atelectasis=1.0, cardiomegaly='central', consolidation=0.4, edema='both',
                  lung_opacity=0.7, pleural_effusion=1.0, pneumonia=0.6, pneumothorax='uni')

#: Vertical position (in lung half-heights from the lung centre) of each zone.
ZONE_B = dict(upper=(-0.7, -0.35), mid=(-0.15, 0.2), lower=(0.3, 0.6))


def _side_geo(category: str, zone: Optional[str], pattern: str,
              rng: np.random.Generator) -> Dict[str, float]:
    """Random geometry of one painted side, in units of the lung frame."""
    u = rng.uniform
    if category in ('consolidation', 'pneumonia', 'lung_opacity'):
        geo = dict(a=u(-0.1, 0.55), b=u(*ZONE_B[zone]), size=u(0.85, 1.15),
                   aspect=u(0.75, 1.3), angle=u(-0.6, 0.6), twist=u(-0.5, 0.5))
    elif category == 'atelectasis':
        geo = dict(a=u(-0.05, 0.55), rise=u(0.035, 0.075), angle=u(-0.3, 0.3), size=u(0.85, 1.15))
    elif category == 'pleural_effusion':
        geo = dict(size=u(0.85, 1.15), meniscus=u(0.6, 1.0))
    elif category == 'pneumothorax':
        geo = dict(size=u(0.85, 1.15), extent=u(0.05, 0.45))
    elif category == 'edema':
        geo = dict(size=u(0.9, 1.1), phase=u(0, 1))
    elif category == 'cardiomegaly':
        geo = dict(size=u(-0.03, 0.03))
    else:
        raise KeyError(f'unknown finding category {category!r}; use one of {FINDING_KEYS}')
    if pattern == 'peripheral':
        geo.update(a=0.0, b=0.3)
    return geo


def sample_finding(category: str, rng: np.random.Generator, severity_probs, bilateral_rate: float,
                   severity: Optional[str] = None, side: Optional[str] = None,
                   pattern: str = 'focal') -> dict:
    """Draw one study-level finding of ``category`` (severity / side / pattern may be forced)."""
    if category not in FINDING_KEYS:
        raise KeyError(f'unknown finding category {category!r}; use one of {FINDING_KEYS}')
    if severity is None:
        severity = SEVERITIES[categorical(rng, severity_probs)]
    lat = LATERALITY[category]
    if pattern == 'peripheral':
        if category != 'pneumonia':
            raise ValueError('pattern="peripheral" exists only for pneumonia.')
        side = 'bilateral'
    if side is None:
        if lat == 'central' or lat == 'both':
            side = 'bilateral'
        else:
            p_bi = 0.0 if lat == 'uni' else min(1.0, bilateral_rate * float(lat))
            side = 'bilateral' if rng.random() < p_bi else ('right' if rng.random() < 0.5
                                                              else 'left')
    zone = None
    if ZONE_PROBS[category] is not None:
        zones = list(ZONE_PROBS[category])
        zone = zones[categorical(rng, list(ZONE_PROBS[category].values()))]
    if pattern == 'peripheral':
        zone = 'lower'
    if lat == 'central':
        geo = dict(center=_side_geo(category, zone, pattern, rng))
    else:
        painted = ('right', 'left') if side == 'bilateral' else (side, )
        base = _side_geo(category, zone, pattern, rng)
        geo = {}
        for s in painted:
            g = dict(base)
            if side == 'bilateral':  # the two sides are similar, not mirror images
                for key in ('a', 'b', 'size', 'angle', 'rise'):
                    if key in g:
                        g[key] += float(rng.normal(0, 0.05))
            geo[s] = g
    return dict(category=category, side=side, severity=severity, zone=zone, pattern=pattern,
                geo=geo)


def jitter_geometry(finding: dict, rng: np.random.Generator) -> dict:
    """The same finding on another image of the study: small independent jitter of ``geo``."""
    scale = dict(a=0.04, b=0.03, size=0.03, angle=0.08, rise=0.004, extent=0.03, aspect=0.04,
                 meniscus=0.03, twist=0.05, phase=0.05)
    geo = {}
    for side, g in finding['geo'].items():
        geo[side] = {k: float(val + rng.normal(0, scale.get(k, 0.0))) for k, val in g.items()}
    out = dict(finding)
    out['geo'] = geo
    return out


# --------------------------------------------------------------------------------------------
# painters
class PaintContext:
    """Everything a painter may read, for the whole batch (index with ``rows``)."""

    def __init__(self, u, v, params, anatomy, fields, size, strength):
        self.u, self.v, self.params, self.anatomy = u, v, params, anatomy
        self.fields, self.size, self.strength = fields, size, float(strength)

    def frame(self, side, rows):
        return {k: (val[rows] if isinstance(val, np.ndarray) and val.shape[0] > 1 else val)
                for k, val in self.anatomy['frames'][side].items()}


def _geo(geos: List[dict], key: str) -> np.ndarray:
    return col([g[key] for g in geos])


def _sev(sev_idx: np.ndarray, table) -> np.ndarray:
    return col(np.asarray(table, dtype=F32)[sev_idx])


def _focal_centre(ctx, rows, side, geos):
    f = ctx.frame(side, rows)
    x0 = f['cx'] + f['sign'] * _geo(geos, 'a') * f['rx']
    y0 = f['cy'] + _geo(geos, 'b') * f['ry']
    return f, x0, y0


def paint_consolidation(ctx, rows, side, geos, sev_idx):
    u, v = ctx.u[rows], ctx.v[rows]
    f, x0, y0 = _focal_centre(ctx, rows, side, geos)
    radius = _sev(sev_idx, (0.05, 0.068, 0.088)) * _geo(geos, 'size')
    aspect = _geo(geos, 'aspect')
    r = ellipse_radius(u, v, x0, y0, radius * aspect, radius / aspect, _geo(geos, 'angle'))
    r = r * (1.0 + 0.15 * ctx.fields['patch'][rows])
    blob = soft_inside(r, 0.12)
    # air bronchograms: a trunk pointing away from the hilum and one side branch
    dx, dy = x0 - f['hilum_x'], y0 - f['hilum_y']
    norm = np.sqrt(dx * dx + dy * dy) + 1e-6
    dx, dy = dx / norm, dy / norm
    twist = _geo(geos, 'twist') + 0.6
    bx, by = dx * np.cos(twist) - dy * np.sin(twist), dx * np.sin(twist) + dy * np.cos(twist)
    thick = max(0.006, 0.6 / ctx.size)
    d = np.minimum(
        segment_distance(u, v, x0 - 0.8 * radius * dx, y0 - 0.8 * radius * dy,
                         x0 + 0.6 * radius * dx, y0 + 0.6 * radius * dy),
        segment_distance(u, v, x0, y0, x0 + 0.6 * radius * bx, y0 + 0.6 * radius * by))
    bronch = np.exp(-(d / thick) ** 2) * soft_inside(r / 0.75, 0.1)
    lung = ctx.anatomy[f'lung_{side}'][rows]
    op = np.clip(ctx.strength * 0.8 * blob * (1.0 - 0.75 * bronch), 0.0, 0.97)
    return dict(op=op, box_map=blob * lung)


def paint_pneumonia(ctx, rows, side, geos, sev_idx, patterns):
    u, v = ctx.u[rows], ctx.v[rows]
    f, x0, y0 = _focal_centre(ctx, rows, side, geos)
    lung = ctx.anatomy[f'lung_{side}'][rows]
    patch = np.clip(0.6 + 0.45 * ctx.fields['patch'][rows], 0.25, 1.0)  # patchy, never empty
    radius = _sev(sev_idx, (0.065, 0.085, 0.11)) * _geo(geos, 'size')
    aspect = _geo(geos, 'aspect')
    env_focal = soft_inside(ellipse_radius(u, v, x0, y0, radius * aspect, radius / aspect,
                                           _geo(geos, 'angle')), 0.3)
    # peripheral (COVID-like): a band along the lateral lung edge of the mid / lower zones
    r_lung = lung_radius(u, v, f)
    band = np.exp(-((r_lung - 0.8) / 0.17) ** 2)
    lower = sigmoid((v - (f['cy'] - 0.1 * f['ry'])) / 0.04)
    lateral = sigmoid((f['sign'] * (u - f['cx']) / f['rx'] + 0.1) / 0.15)
    env_periph = band * lower * lateral * (0.8 + 0.2 * _geo(geos, 'size'))
    periph = col([p == 'peripheral' for p in patterns])
    env = env_focal + (env_periph - env_focal) * periph
    amp = _sev(sev_idx, (0.55, 0.62, 0.7)) + periph * (_sev(sev_idx, (0.4, 0.48, 0.56))
                                                       - _sev(sev_idx, (0.55, 0.62, 0.7)))
    op = np.clip(ctx.strength * amp * env * patch, 0.0, 0.97)
    return dict(op=op, box_map=env * lung)


def paint_lung_opacity(ctx, rows, side, geos, sev_idx):
    u, v = ctx.u[rows], ctx.v[rows]
    f, x0, y0 = _focal_centre(ctx, rows, side, geos)
    radius = _sev(sev_idx, (0.075, 0.1, 0.13)) * _geo(geos, 'size')
    aspect = _geo(geos, 'aspect')
    r = ellipse_radius(u, v, x0, y0, radius * aspect, radius / aspect, _geo(geos, 'angle'))
    env = np.exp(-1.5 * r * r)
    lung = ctx.anatomy[f'lung_{side}'][rows]
    op = np.clip(ctx.strength * _sev(sev_idx, (0.36, 0.45, 0.55)) * env, 0.0, 0.97)
    return dict(op=op, box_map=env * lung)


def paint_edema(ctx, rows, side, geos, sev_idx):
    u, v = ctx.u[rows], ctx.v[rows]
    f = ctx.frame(side, rows)
    spread = _sev(sev_idx, (0.1, 0.125, 0.15)) * _geo(geos, 'size')
    cx = f['hilum_x'] + f['sign'] * 0.25 * f['rx']
    r = ellipse_radius(u, v, cx, f['hilum_y'] - 0.01, 1.1 * spread, 1.45 * spread)
    env = np.exp(-r * r)
    haze = ctx.strength * _sev(sev_idx, (0.28, 0.36, 0.46)) * env
    lat = f['sign'] * (u - f['cx']) / f['rx']
    b = (v - f['cy']) / f['ry']
    strip = sigmoid((lat - 0.72) / 0.06) * sigmoid((b - 0.25) / 0.08)
    lines = (0.5 + 0.5 * np.cos(2 * np.pi * (v / 0.024 + _geo(geos, 'phase')))) ** 8
    kerley = ctx.strength * 0.35 * strip * lines * (col(sev_idx) >= 1)
    op = np.clip(1.0 - (1.0 - haze) * (1.0 - kerley), 0.0, 0.97)
    lung = ctx.anatomy[f'lung_{side}'][rows]
    return dict(op=op, box_map=env * lung)


def paint_atelectasis(ctx, rows, side, geos, sev_idx):
    u, v = ctx.u[rows], ctx.v[rows]
    f = ctx.frame(side, rows)
    x0 = f['cx'] + f['sign'] * _geo(geos, 'a') * f['rx']
    y0 = dome_height(x0, f) - _geo(geos, 'rise')
    length = _sev(sev_idx, (0.09, 0.13, 0.17)) * _geo(geos, 'size')
    thick = np.maximum(_sev(sev_idx, (0.009, 0.013, 0.02)), 0.7 / ctx.size)
    ang = _geo(geos, 'angle') * f['sign']
    ca, sa = np.cos(ang), np.sin(ang)
    along = (u - x0) * ca + (v - y0) * sa
    perp = -(u - x0) * sa + (v - y0) * ca
    band = np.exp(-(perp / thick) ** 2) * sigmoid((0.5 * length - np.abs(along)) / 0.008)
    wedge_env = np.exp(-(((u - x0) / (0.55 * length)) ** 2 + ((v - y0 - 0.02) / 0.035) ** 2))
    wedge = _sev(sev_idx, (0.0, 0.3, 0.45)) * wedge_env
    op = np.clip(ctx.strength * (1.0 - (1.0 - 0.85 * band) * (1.0 - wedge)), 0.0, 0.97)
    lung = ctx.anatomy[f'lung_{side}'][rows]
    box = np.maximum(band, wedge_env * (col(sev_idx) >= 1))
    return dict(op=op, box_map=box * lung)


def paint_pleural_effusion(ctx, rows, side, geos, sev_idx):
    u, v = ctx.u[rows], ctx.v[rows]
    f = ctx.frame(side, rows)
    height = _sev(sev_idx, (0.045, 0.09, 0.15)) * _geo(geos, 'size')
    lat = np.clip((f['sign'] * (u - f['cx']) / f['rx'] + 1.0) / 2.0, 0.0, 1.2)
    surface = f['dome'] + 0.015 - height * (0.6 + 0.8 * _geo(geos, 'meniscus') * lat * lat)
    fluid = sigmoid((v - surface) / 0.01) * ctx.anatomy[f'lung_open_{side}'][rows]
    op = np.clip(ctx.strength * 0.92 * fluid, 0.0, 0.97)
    return dict(op=op, box_map=fluid * ctx.anatomy[f'lung_{side}'][rows])


def paint_pneumothorax(ctx, rows, side, geos, sev_idx):
    u, v = ctx.u[rows], ctx.v[rows]
    f = ctx.frame(side, rows)
    width = _sev(sev_idx, (0.14, 0.24, 0.36)) * _geo(geos, 'size')
    r = ctx.anatomy[f'radius_{side}'][rows]
    lung = ctx.anatomy[f'lung_{side}'][rows]
    upper = sigmoid((f['cy'] + _geo(geos, 'extent') * f['ry'] - v) / 0.03)
    not_medial = sigmoid((f['sign'] * (u - f['cx']) / f['rx'] + 0.35) / 0.1)
    zone = lung * upper * not_medial
    rim = sigmoid((r - (1.0 - width)) / 0.025) * zone
    thick = np.maximum(0.025, 0.8 / (ctx.size * f['rx']))
    line = np.exp(-((r - (1.0 - width)) / thick) ** 2) * zone
    g = ctx.strength
    keep = 1.0 - min(1.0, g) * rim
    delta = -0.1 * g * rim + 0.12 * g * line
    return dict(keep=keep, delta=delta, box_map=rim)


def paint_cardiomegaly(ctx, rows, geos, sev_idx):
    params = {k: val[rows] for k, val in ctx.params.items()}
    g = ctx.strength
    enlarge = 1.0 + g * (np.asarray((0.16, 0.27, 0.38), dtype=F32)[sev_idx]
                         + np.asarray([gg['size'] for gg in geos], dtype=F32))
    u, v = ctx.u[rows], ctx.v[rows]
    heart = heart_from_params(u, v, params, enlarge)
    above_diaphragm = sigmoid((dome_height(u, ctx.frame('left', rows)) + 0.01 - v) / 0.008)
    return dict(heart=heart, box_map=heart * above_diaphragm)
