"""Phrase grounding figures (paper Fig. 4-5): heatmaps over the image with the ground-truth
boxes, one row per method, one column per class, the same images for every method."""
import textwrap
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .inference import (build_eval_dataset, build_metric, check_runs, eval_pipeline,
                        find_eval_set, image_results, init_model, load_config)
from .layout import GridLayout, draw_grounding_overlay, read_display_image, save_figure

__all__ = ['grounding_figure', 'select_grounding_records', 'grounding_maps',
           'grounding_image_figure', 'single_image_layout', 'GROUNDING_LAYOUT', 'SINGLE_LAYOUT']

#: Pixel layout of :func:`grounding_figure`: square panels of ``panel`` px, ``left`` for the
#: row labels (method names), ``top`` for the column titles (class and phrase), ``bottom``
#: for the legend line.
GROUNDING_LAYOUT = dict(panel=200, left=30, right=10, top=50, bottom=20, gap=6)


def _category(record: dict, classes: Sequence[str]) -> Optional[str]:
    if record.get('category') is not None:
        return str(record['category'])
    label = record.get('gt_label')
    if label is not None and classes and 0 <= int(label) < len(classes):
        return str(classes[int(label)])
    return None


def select_grounding_records(dataset, per_class: int = 1,
                             classes: Optional[Sequence[str]] = None) -> List[dict]:
    """The records of a grounding figure, class-major: the first ``per_class`` records of each
    class in dataset order (deterministic).

    Args:
        dataset: a grounding dataset (records with ``phrase``, ``boxes``, ``category``).
        per_class: examples per class.
        classes: class names in column order; None = the dataset's classes that have records
            (``metainfo['classes']`` order, then any other category sorted).

    Returns:
        ``per_class * len(classes)`` data infos (``dataset.get_data_info``), with
        ``category`` filled.
    """
    if int(per_class) < 1:
        raise ValueError(f'per_class must be >= 1, got {per_class}')
    meta_classes = list((getattr(dataset, 'metainfo', None) or {}).get('classes') or [])
    by_class: Dict[str, List[int]] = {}
    for i in range(len(dataset)):
        cat = _category(dataset.get_data_info(i), meta_classes)
        if cat is not None:
            by_class.setdefault(cat, []).append(i)
    if classes is None:
        classes = [c for c in meta_classes if c in by_class]
        classes += sorted(c for c in by_class if c not in classes)
    classes = [str(c) for c in classes]
    if not classes:
        raise ValueError('the grounding dataset has no record with a category')
    missing = [c for c in classes if len(by_class.get(c, [])) < per_class]
    if missing:
        have = {c: len(by_class.get(c, [])) for c in missing}
        raise ValueError(f'not enough grounding records for {have} (per_class={per_class}); '
                         f'classes with records: {sorted(by_class)}')
    out = []
    for c in classes:
        for i in by_class[c][:per_class]:
            out.append(dict(dataset.get_data_info(i), category=c))
    return out


@torch.no_grad()
def grounding_maps(model, cfg, records: Sequence[dict], dataset_meta: Optional[dict] = None,
                   fallback_pipeline: Optional[Sequence[dict]] = None,
                   ) -> List[Tuple[dict, np.ndarray, float]]:
    """Grounding maps of ``records`` in original pixels, exactly as ``GroundingCNR`` scores
    them.

    The records are packed by the method's own test pipeline, encoded through the test step
    and handed to the config's ``GroundingCNR`` (its ``smooth_sigma`` etc.), whose
    :meth:`~lgdea.evaluation.GroundingCNR.original_maps` computes ``model.grounding_map``
    and maps it back with ``invert_map``.

    Args:
        model: the (eval mode) model.
        cfg: its config (test pipeline and metric settings).
        records: grounding data infos (``img_path``, ``phrase``, ``boxes``, ...).
        dataset_meta: metainfo given to the metric.
        fallback_pipeline: pipeline used when the config has no test pipeline.

    Returns:
        ``[(result, map [H, W] float64 with NaN outside the field of view, cnr)]`` per
        record; ``result`` holds the packed fields (``ori_shape``, ``boxes``, ``phrase``,
        ``img_path``, ``category``, ``geometry``).
    """
    pipeline = eval_pipeline(cfg, 'GroundingCNR', 'grounding', fallback_pipeline)
    _, metric_cfg = find_eval_set(cfg, 'GroundingCNR', 'grounding')
    metric = build_metric(metric_cfg, model, dataset_meta)
    results = image_results(model, metric, list(records), pipeline, metric.batch_size)
    out = []
    for result, full in metric.original_maps(results):
        out.append((result, full, metric.score_map(full, result)['cnr']))
    metric.results.clear()
    return out


def _column_title(category: str, phrase: str, width: int = 34) -> str:
    lines = textwrap.wrap(f'"{phrase}"', width=width) or ['']
    if len(lines) > 2:
        lines = lines[:2]
        lines[1] = lines[1][:width - 3].rstrip() + '..."'
    return '\n'.join([category] + lines)


def grounding_figure(runs: Sequence[dict], out_file: str, per_class: int = 1,
                     classes: Optional[Sequence[str]] = None, dataset_cfg: Optional[dict] = None,
                     device: str = 'cpu', alpha: float = 0.5) -> str:
    """Grounding heatmaps of several methods on the same images (paper Fig. 4-5).

    Rows are methods (``runs`` order, row label = ``name``), columns are classes (``per_class``
    examples each; title = class and phrase). Each panel shows the image in its original
    pixels, the method's grounding map of the phrase mapped back to those pixels exactly as
    :class:`~lgdea.evaluation.GroundingCNR` does (min-max scaled per panel, jet colormap with
    ``alpha``; NaN outside the field of view is transparent), the ground-truth boxes in red and
    the pair's CNR.

    The records come from ``dataset_cfg`` or else from the grounding test set of the first run
    (the ``test_cfg`` set whose prefix contains ``'grounding'``, else the one evaluated by
    ``GroundingCNR``); every method packs them with its own test pipeline.

    Figure size (px): ``W = 30 + C * 200 + (C - 1) * 6 + 10``,
    ``H = 50 + M * 200 + (M - 1) * 6 + 20`` for ``C = per_class * num_classes`` columns and
    ``M = len(runs)`` rows (:data:`GROUNDING_LAYOUT`, 100 dpi).

    Args:
        runs: ``[dict(name=str, config=str, checkpoint=str), ...]``.
        out_file: output PNG path.
        per_class: examples per class.
        classes: class names in column order (None: every class with records).
        dataset_cfg: dataset config of the records (overrides the first run's set).
        device: device of the models (one model is loaded at a time).
        alpha: opacity of the heatmap.

    Returns:
        ``out_file``.
    """
    runs = check_runs(runs)
    cfgs = [load_config(r['config']) for r in runs]
    dataset = build_eval_dataset(cfgs[0], 'GroundingCNR', 'grounding', dataset_cfg)
    records = select_grounding_records(dataset, per_class, classes)
    fallback = (dataset_cfg or {}).get('pipeline')

    lay = GROUNDING_LAYOUT
    layout = GridLayout([lay['panel']] * len(records), [lay['panel']] * len(runs),
                        left=lay['left'], right=lay['right'], top=lay['top'],
                        bottom=lay['bottom'], wgap=lay['gap'], hgap=lay['gap'])
    fig = layout.figure()
    images: Dict[int, np.ndarray] = {}
    for row, (run, cfg) in enumerate(zip(runs, cfgs)):
        model = init_model(cfg, run['checkpoint'], device=device)
        maps = grounding_maps(model, cfg, records, dataset.metainfo, fallback)
        del model
        for col, (result, full, cnr) in enumerate(maps):
            if col not in images:
                images[col] = read_display_image(result['img_path'], full.shape)
            ax = layout.add_axes(fig, row, col)
            draw_grounding_overlay(ax, images[col], full, result.get('boxes'), alpha=alpha)
            ax.text(0.02, 0.02, 'CNR n/a' if not np.isfinite(cnr) else f'CNR {cnr:.2f}',
                    transform=ax.transAxes, fontsize=6, color='white', va='bottom',
                    bbox=dict(facecolor='black', alpha=0.6, pad=1.5, linewidth=0))
            if row == 0:
                ax.set_title(_column_title(records[col]['category'], str(result['phrase'])),
                             fontsize=7)
            if col == 0:
                ax.set_ylabel(run['name'], fontsize=9)
        del maps
    fig.text(0.5, 0.5 * lay['bottom'] / layout.size_px[1],
             'red: ground-truth boxes; map: grounding_map in original pixels, min-max scaled '
             'per panel; CNR as GroundingCNR', ha='center', va='center', fontsize=6)
    return save_figure(fig, out_file)


#: Pixel layout of :func:`grounding_image_figure`: two panels (image, overlay) whose longest
#: side is ``long_side`` px and whose aspect is the image's; ``top`` holds the phrase.
SINGLE_LAYOUT = dict(long_side=400, left=5, right=5, top=40, bottom=5, gap=10)


def single_image_layout(shape: Sequence[int]) -> GridLayout:
    """Layout of :func:`grounding_image_figure` for an image of ``shape`` (H, W): two panels of
    ``(ph, pw)`` px with ``pw / ph = W / H`` (up to rounding) and ``max(ph, pw) = 400``."""
    h, w = int(shape[0]), int(shape[1])
    side = SINGLE_LAYOUT['long_side']
    ph, pw = (side, max(1, int(round(side * w / h)))) if h >= w else (
        max(1, int(round(side * h / w))), side)
    lay = SINGLE_LAYOUT
    return GridLayout([pw, pw], [ph], left=lay['left'], right=lay['right'], top=lay['top'],
                      bottom=lay['bottom'], wgap=lay['gap'])


def grounding_image_figure(image: np.ndarray, full_map: np.ndarray, out_file: str,
                           phrase: str = '', boxes: Optional[np.ndarray] = None,
                           cnr: Optional[float] = None, alpha: float = 0.5) -> str:
    """One image and its grounding overlay side by side, each panel with the image's aspect
    (``tools/visualize_grounding.py``).

    Args:
        image: [H, W] uint8 original image.
        full_map: [H, W] grounding map in the same pixels.
        out_file: output PNG path.
        phrase: shown above the panels (with ``cnr`` when given and finite).
        boxes: optional [N, 4] ``x, y, w, h`` boxes in original pixels (drawn on both panels).
        alpha: opacity of the heatmap.

    Returns:
        ``out_file`` (size: :func:`single_image_layout`).
    """
    layout = single_image_layout(image.shape)
    fig = layout.figure()
    draw_grounding_overlay(layout.add_axes(fig, 0, 0), image, None, boxes, aspect='auto')
    draw_grounding_overlay(layout.add_axes(fig, 0, 1), image, full_map, boxes, alpha=alpha,
                           aspect='auto')
    h, w = image.shape[:2]
    parts = [textwrap.shorten(f'"{phrase}"', width=80)]
    if cnr is not None and np.isfinite(cnr):
        parts.append(f'CNR {cnr:.2f}')
    parts.append(f'{w} x {h} px')
    H = layout.size_px[1]
    fig.text(0.5, 1.0 - 0.5 * SINGLE_LAYOUT['top'] / H, ' | '.join(parts), ha='center',
             va='center', fontsize=9)
    return save_figure(fig, out_file)
