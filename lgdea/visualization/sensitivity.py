"""Hyper-parameter sensitivity curves (paper Fig. 7): the metric against K (diagnostic
prototypes) and L (lesion queries), mean +- std over seeds."""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .layout import GridLayout, save_figure

__all__ = ['sensitivity_figure', 'SENSITIVITY_LAYOUT', 'PARAM_LABELS']

#: Pixel layout of :func:`sensitivity_figure`: one ``plot_w x plot_h`` plot area per
#: parameter; the margins and the gap hold tick labels, axis labels and the titles.
SENSITIVITY_LAYOUT = dict(plot_w=320, plot_h=240, left=60, right=20, top=30, bottom=50,
                          gap=80)

#: x-axis labels of the parameters the paper sweeps (others are labelled by their key).
PARAM_LABELS = {'K': 'number of diagnostic prototypes K', 'L': 'number of lesion queries L'}

Point = Tuple[float, float, Optional[float]]


def _points(name: str, values: Sequence) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``[(value, mean, std), ...]`` -> sorted arrays (std None / NaN -> 0)."""
    rows: List[Tuple[float, float, float]] = []
    for i, p in enumerate(values):
        if len(p) != 3:
            raise ValueError(f'sweep[{name!r}][{i}] must be (value, mean, std), got {p!r}')
        value, mean, std = p
        std = 0.0 if std is None or not math.isfinite(float(std)) else float(std)
        rows.append((float(value), float(mean), std))
    if not rows:
        raise ValueError(f'sweep[{name!r}] has no point')
    rows.sort(key=lambda r: r[0])
    arr = np.asarray(rows, dtype=np.float64)
    return arr[:, 0], arr[:, 1], arr[:, 2]


def sensitivity_figure(sweep: Dict[str, Sequence[Point]], out_file: str,
                       metric_label: str = 'CNR') -> str:
    """Sensitivity of a metric to K and L (paper Fig. 7): one subplot per parameter (``sweep``
    order), mean with +- std error bars at each swept value.

    Figure size (px): ``W = 60 + P * 320 + (P - 1) * 80 + 20``, ``H = 30 + 240 + 50`` for
    ``P = len(sweep)`` parameters (:data:`SENSITIVITY_LAYOUT`, 100 dpi).

    Args:
        sweep: ``{'K': [(value, mean, std), ...], 'L': [...]}``; std may be None (one seed).
        out_file: output PNG path.
        metric_label: y-axis label (e.g. ``'CNR'``, ``'ACC (%)'``).

    Returns:
        ``out_file``.
    """
    if not sweep:
        raise ValueError('sweep is empty; give {"K": [(value, mean, std), ...], ...}')
    lay = SENSITIVITY_LAYOUT
    layout = GridLayout([lay['plot_w']] * len(sweep), [lay['plot_h']], left=lay['left'],
                        right=lay['right'], top=lay['top'], bottom=lay['bottom'],
                        wgap=lay['gap'])
    fig = layout.figure()
    for col, (name, values) in enumerate(sweep.items()):
        x, mean, std = _points(name, values)
        ax = fig.add_axes(layout.rect(0, col))
        ax.errorbar(x, mean, yerr=std, marker='o', markersize=4, capsize=3, linewidth=1.5,
                    color='#2b83ba', ecolor='#404040')
        ax.set_xticks(x)
        ax.set_xticklabels([f'{v:g}' for v in x], fontsize=8)
        ax.tick_params(axis='y', labelsize=8)
        ax.set_xlabel(PARAM_LABELS.get(name, name), fontsize=9)
        ax.set_ylabel(metric_label, fontsize=9)
        ax.set_title(f'({chr(ord("a") + col)}) effect of {name}', fontsize=9)
        ax.grid(True, linewidth=0.4, alpha=0.5)
        if len(x) > 1:
            pad = 0.08 * (x[-1] - x[0])
            ax.set_xlim(x[0] - pad, x[-1] + pad)
    return save_figure(fig, out_file)
