"""Fixed-pixel figure layouts and the drawing shared by the figures (matplotlib, Agg).

Figures are drawn on a :class:`matplotlib.figure.Figure` with an Agg canvas (no pyplot, no
global backend switch) and saved without ``bbox_inches='tight'``, so the PNG size is a pure
function of the number of rows and columns (:class:`GridLayout`); tests assert it.
"""
import os
import os.path as osp
from typing import Optional, Sequence, Tuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

__all__ = ['DPI', 'DISPLAY_MAX_SIDE', 'GridLayout', 'save_figure', 'normalize_map',
           'draw_grounding_overlay', 'read_display_image']

#: Dots per inch of every saved figure (1 inch = 100 px).
DPI = 100
#: Longest side (px) at which an image and its map are handed to ``imshow``; larger images are
#: area-averaged first (the panels are a few hundred pixels wide; maps of 3000-pixel
#: radiographs would otherwise hold the memory of a many-panel figure).
DISPLAY_MAX_SIDE = 800


class GridLayout:
    """A grid of axes with sizes given in pixels.

    Figure width ``W = left + sum(col_widths) + (ncols - 1) * wgap + right`` and height
    ``H = top + sum(row_heights) + (nrows - 1) * hgap + bottom`` (pixels, at :data:`DPI`).

    Args:
        col_widths: width of each column (px).
        row_heights: height of each row (px).
        left, right, top, bottom: margins (px), e.g. room for row labels and column titles.
        wgap, hgap: gaps between columns / rows (px).
    """

    def __init__(self, col_widths: Sequence[int], row_heights: Sequence[int], left: int = 0,
                 right: int = 0, top: int = 0, bottom: int = 0, wgap: int = 0, hgap: int = 0):
        self.col_widths = [int(w) for w in col_widths]
        self.row_heights = [int(h) for h in row_heights]
        if not self.col_widths or not self.row_heights or min(
                self.col_widths + self.row_heights) <= 0:
            raise ValueError('a layout needs at least one row and one column of positive size')
        self.left, self.right, self.top, self.bottom = int(left), int(right), int(top), int(
            bottom)
        self.wgap, self.hgap = int(wgap), int(hgap)

    @property
    def size_px(self) -> Tuple[int, int]:
        """``(W, H)`` of the saved PNG in pixels."""
        w = self.left + sum(self.col_widths) + (len(self.col_widths) - 1) * self.wgap
        h = self.top + sum(self.row_heights) + (len(self.row_heights) - 1) * self.hgap
        return w + self.right, h + self.bottom

    def figure(self) -> Figure:
        """An empty figure of :attr:`size_px` with an Agg canvas."""
        w, h = self.size_px
        fig = Figure(figsize=(w / DPI, h / DPI), dpi=DPI)
        FigureCanvasAgg(fig)
        return fig

    def rect(self, row: int, col: int) -> Tuple[float, float, float, float]:
        """``(x0, y0, w, h)`` of a cell in figure fractions (matplotlib's origin: bottom)."""
        W, H = self.size_px
        x = self.left + sum(self.col_widths[:col]) + col * self.wgap
        y_top = self.top + sum(self.row_heights[:row]) + row * self.hgap
        w, h = self.col_widths[col], self.row_heights[row]
        return x / W, 1.0 - (y_top + h) / H, w / W, h / H

    def add_axes(self, fig: Figure, row: int, col: int):
        """Axes filling cell ``(row, col)``, without ticks."""
        ax = fig.add_axes(self.rect(row, col))
        ax.set_xticks([])
        ax.set_yticks([])
        return ax


def save_figure(fig: Figure, out_file: str) -> str:
    """Save ``fig`` as PNG at :data:`DPI` (parent folders created); returns the path."""
    out_dir = osp.dirname(osp.abspath(out_file))
    os.makedirs(out_dir, exist_ok=True)
    fig.savefig(out_file, dpi=DPI, format='png')
    return out_file


def normalize_map(full: np.ndarray) -> np.ndarray:
    """Min-max scale the finite values of an [H, W] map to [0, 1] (NaN stays NaN; a constant
    map becomes 0). The CNR is invariant to this affine scaling."""
    full = np.asarray(full, dtype=np.float64)
    finite = np.isfinite(full)
    out = np.full(full.shape, np.nan)
    if not finite.any():
        return out
    lo, hi = full[finite].min(), full[finite].max()
    out[finite] = (full[finite] - lo) / (hi - lo) if hi > lo else 0.0
    return out


def read_display_image(img_path: str, ori_shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """The image as the map is drawn on it: [H, W] uint8 in the frame of ``ori_shape`` (a
    pre-resized file on disk is resized back to the annotation frame, as ``LoadCXRImage``
    records it)."""
    from lgdea.datasets.transforms import read_cxr_image, resize_image
    img = read_cxr_image(img_path)
    if ori_shape is not None:
        shape = tuple(int(s) for s in ori_shape[:2])
        if tuple(img.shape[:2]) != shape:
            img = resize_image(img, shape)
    return img


def _display_arrays(image: np.ndarray, full_map: Optional[np.ndarray],
                    max_side: int) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Downsample image and map together when the longest side exceeds ``max_side``."""
    from lgdea.datasets.transforms import resize_image, resize_nan_aware
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return image, full_map
    shape = (max(1, int(round(h * scale))), max(1, int(round(w * scale))))
    image = resize_image(image, shape)
    if full_map is not None:
        full_map = resize_nan_aware(full_map, shape)
    return image, full_map


def draw_grounding_overlay(ax, image: np.ndarray, full_map: Optional[np.ndarray] = None,
                           boxes: Optional[np.ndarray] = None, alpha: float = 0.5,
                           cmap: str = 'jet', box_color: str = 'red', aspect: str = 'equal',
                           max_side: int = DISPLAY_MAX_SIDE) -> None:
    """Draw a grounding overlay in the original pixel frame of ``image``.

    Args:
        ax: matplotlib axes.
        image: [H, W] uint8 original image (gray).
        full_map: [H, W] map in the same pixels (``GroundingCNR.original_maps``), min-max
            scaled for display (:func:`normalize_map`), drawn with ``cmap`` and ``alpha``;
            NaN (outside the field of view) is transparent.
        boxes: [N, 4] ``x, y, w, h`` in original pixels (pixel ``c`` spans ``[c, c + 1)``,
            as in :func:`lgdea.evaluation.boxes_mask`).
        aspect: ``'equal'`` (letterboxed in the axes) or ``'auto'`` (fill the axes).
        max_side: longest side handed to ``imshow`` (see :data:`DISPLAY_MAX_SIDE`); the
            coordinates stay original pixels.
    """
    h, w = image.shape[:2]
    if full_map is not None and tuple(full_map.shape[:2]) != (h, w):
        raise ValueError(f'map {full_map.shape} and image {image.shape} differ in shape')
    extent = (0, w, h, 0)  # original pixel coordinates, whatever the drawn resolution
    shown, shown_map = _display_arrays(image, full_map, max_side)
    ax.imshow(shown, cmap='gray', vmin=0, vmax=255, extent=extent, aspect=aspect,
              interpolation='antialiased')
    if shown_map is not None:
        scaled = normalize_map(shown_map).astype(np.float32)
        ax.imshow(np.ma.masked_invalid(scaled), cmap=cmap, vmin=0.0, vmax=1.0, alpha=alpha,
                  extent=extent, aspect=aspect, interpolation='antialiased')
    if boxes is not None:
        for x, y, bw, bh in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
            ax.add_patch(Rectangle((x, y), bw, bh, fill=False, edgecolor=box_color,
                                   linewidth=1.5))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
