"""Image-to-text retrieval case study (paper Fig. 6): query images with the top-k retrieved
reports of every method, wrong categories marked."""
import re
import textwrap
from typing import Dict, List, Optional, Sequence

import torch
from matplotlib.patches import Rectangle

from lgdea.evaluation.functional import rank_candidates
from lgdea.evaluation.metrics.base import label_of
from .inference import (build_eval_dataset, build_metric, check_runs, eval_pipeline,
                        find_eval_set, image_results, init_model, load_config, report_results)
from .layout import GridLayout, draw_grounding_overlay, read_display_image, save_figure

__all__ = ['retrieval_figure', 'select_queries', 'retrieve_reports', 'RETRIEVAL_LAYOUT']

#: Pixel layout of :func:`retrieval_figure`: the query image column (``image`` px wide), one
#: text column per method (``text`` px wide), rows of ``max(image, topk * entry)`` px.
RETRIEVAL_LAYOUT = dict(image=200, text=340, entry=100, left=10, right=10, top=30, bottom=20,
                        gap=8)

CORRECT_COLOR = '#1a9641'
WRONG_COLOR = '#d7191c'


def select_queries(dataset, num_queries: int = 3) -> List[dict]:
    """One query image per class (the first record of each class, class order of
    ``metainfo['classes']``), at most ``num_queries``."""
    if int(num_queries) < 1:
        raise ValueError(f'num_queries must be >= 1, got {num_queries}')
    first: Dict[int, int] = {}
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        if info.get('img_path') is None or info.get('gt_label') is None:
            continue
        first.setdefault(label_of(info['gt_label'], info['img_path']), i)
    if not first:
        raise ValueError('the retrieval dataset has no record with an image and a gt_label')
    labels = sorted(first)[:int(num_queries)]
    return [dataset.get_data_info(first[c]) for c in labels]


@torch.no_grad()
def retrieve_reports(model, cfg, queries: Sequence[dict], candidates: Sequence[dict],
                     topk: int = 2, dataset_meta: Optional[dict] = None,
                     fallback_pipeline: Optional[Sequence[dict]] = None) -> List[List[dict]]:
    """Top-``topk`` reports of each query image, ranked exactly as ``RetrievalPrecisionAtK``
    ranks them.

    The candidate pool is built by the config's ``RetrievalPrecisionAtK``
    (:meth:`~lgdea.evaluation.RetrievalPrecisionAtK.build_candidates`: one report per study of
    ``candidates``, or its configured ``candidates``), encoded by its
    :meth:`encode_candidates`, scored by :meth:`similarity_matrix` (``model.similarity``) and
    ranked by :func:`~lgdea.evaluation.functional.rank_candidates` (ties by candidate index,
    own study excluded when the metric says so).

    Args:
        model: the (eval mode) model.
        cfg: its config (test pipeline, metric settings).
        queries: data infos of the query images (``img_path``, ``gt_label``).
        candidates: data infos whose reports form the pool (the whole retrieval split).
        topk: reports per query.
        dataset_meta: metainfo (``classes``) given to the metric.
        fallback_pipeline: pipeline used when the config has no test pipeline.

    Returns:
        Per query, ``topk`` dicts ``(rank, text, label, study_id, score)`` plus the query's
        ``query_label``.
    """
    pipeline = eval_pipeline(cfg, 'RetrievalPrecisionAtK', None, fallback_pipeline)
    _, metric_cfg = find_eval_set(cfg, 'RetrievalPrecisionAtK')
    metric = build_metric(metric_cfg, model, dataset_meta)
    cands = metric.build_candidates(report_results(candidates, pipeline, metric.record_keys))
    if topk > len(cands):
        raise ValueError(f'topk={topk} exceeds the {len(cands)} candidate reports')
    q_results = image_results(model, metric, list(queries), pipeline, metric.batch_size)
    sim = metric.similarity_matrix(q_results, metric.encode_candidates(cands))
    order = rank_candidates(sim, metric.exclusion_mask(q_results, cands))
    out = []
    for qi, result in enumerate(q_results):
        q_label = label_of(result['gt_label'], f'image {result.get("img_path")}')
        out.append([dict(rank=k + 1, text=cands[j]['text'], label=int(cands[j]['label']),
                         study_id=cands[j]['study_id'], score=float(sim[qi, j]),
                         query_label=q_label)
                    for k, j in enumerate(order[qi, :topk])])
    metric.results.clear()
    return out


def _class_name(label: int, classes: Sequence[str]) -> str:
    return str(classes[label]) if 0 <= label < len(classes) else f'class {label}'


def _entry_text(text: str, width: int, max_lines: int) -> str:
    """Report text on one line per paragraph, wrapped to ``width`` characters and truncated
    to ``max_lines`` lines (``...``)."""
    flat = re.sub(r'\s+', ' ', str(text)).strip()
    lines = textwrap.wrap(flat, width=width) or ['']
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][:max(0, width - 3)].rstrip() + '...'
    return '\n'.join(lines)


def _draw_entries(ax, entries: List[dict], classes: Sequence[str], cell_w: int,
                  entry_h: int) -> None:
    """Stack the retrieved reports in a text cell: header ``#k class (correct | wrong
    category)`` in green / red, the wrapped report below, a frame of the same colour."""
    for spine in ax.spines.values():
        spine.set_visible(False)
    n = len(entries)
    chars = max(20, int(cell_w / 5.2))  # ~5 px per character at 6.5 pt, 100 dpi
    max_lines = max(1, int((entry_h - 26) / 9.5))
    for k, e in enumerate(entries):
        correct = e['label'] == e['query_label']
        color = CORRECT_COLOR if correct else WRONG_COLOR
        top = 1.0 - k / n
        ax.add_patch(Rectangle((0.005, top - 1.0 / n + 0.01), 0.99, 1.0 / n - 0.02,
                               transform=ax.transAxes, fill=False, edgecolor=color,
                               linewidth=1.2))
        name = _class_name(e['label'], classes)
        verdict = 'correct' if correct else 'wrong category'
        ax.text(0.02, top - 0.03, f'#{e["rank"]}  {name}  ({verdict}, s={e["score"]:.2f})',
                transform=ax.transAxes, fontsize=7, fontweight='bold', color=color,
                va='top', ha='left')
        ax.text(0.02, top - 0.03 - 15.0 / (n * entry_h), _entry_text(e['text'], chars,
                                                                     max_lines),
                transform=ax.transAxes, fontsize=6.5, color='black', va='top', ha='left',
                linespacing=1.15)


def retrieval_figure(runs: Sequence[dict], out_file: str, num_queries: int = 3, topk: int = 2,
                     device: str = 'cpu') -> str:
    """Image-to-text retrieval examples of several methods (paper Fig. 6).

    Rows are query images of the first run's retrieval test set (the ``test_cfg`` set
    evaluated by ``RetrievalPrecisionAtK``; one query per class, at most ``num_queries``, the
    same for every method). Column 0 shows the query and its class; then one column per
    method (title = ``name``) with its top-``topk`` reports among the whole set's candidate
    reports, ranked as :class:`~lgdea.evaluation.RetrievalPrecisionAtK` ranks them
    (:func:`retrieve_reports`): the retrieved report's class in green when it equals the
    query's, in red ("wrong category") otherwise, and its wrapped, truncated text.

    Figure size (px): ``W = 10 + 200 + M * (340 + 8) + 10``,
    ``H = 30 + Q * max(200, 100 * topk) + (Q - 1) * 8 + 20`` for ``M = len(runs)`` methods and
    ``Q`` queries (:data:`RETRIEVAL_LAYOUT`, 100 dpi).

    Args:
        runs: ``[dict(name=str, config=str, checkpoint=str), ...]``.
        out_file: output PNG path.
        num_queries: at most this many query images (one per class).
        topk: reports shown per query and method.
        device: device of the models (one model is loaded at a time).

    Returns:
        ``out_file``.
    """
    runs = check_runs(runs)
    if int(topk) < 1:
        raise ValueError(f'topk must be >= 1, got {topk}')
    cfgs = [load_config(r['config']) for r in runs]
    dataset = build_eval_dataset(cfgs[0], 'RetrievalPrecisionAtK')
    classes = list(dataset.metainfo.get('classes') or [])
    queries = select_queries(dataset, num_queries)
    candidates = [dataset.get_data_info(i) for i in range(len(dataset))]

    lay = RETRIEVAL_LAYOUT
    row_h = max(lay['image'], int(topk) * lay['entry'])
    layout = GridLayout([lay['image']] + [lay['text']] * len(runs), [row_h] * len(queries),
                        left=lay['left'], right=lay['right'], top=lay['top'],
                        bottom=lay['bottom'], wgap=lay['gap'], hgap=lay['gap'])
    fig = layout.figure()
    for row, q in enumerate(queries):
        ax = layout.add_axes(fig, row, 0)
        draw_grounding_overlay(ax, read_display_image(q['img_path'], q.get('ori_shape')))
        ax.text(0.02, 0.98, _class_name(label_of(q['gt_label'], q['img_path']), classes),
                transform=ax.transAxes, fontsize=7, color='white', va='top', ha='left',
                bbox=dict(facecolor='black', alpha=0.6, pad=1.5, linewidth=0))
        if row == 0:
            ax.set_title('query image (class)', fontsize=9, pad=3)
    for col, (run, cfg) in enumerate(zip(runs, cfgs), start=1):
        model = init_model(cfg, run['checkpoint'], device=device)
        ranked = retrieve_reports(model, cfg, queries, candidates, int(topk), dataset.metainfo)
        del model
        for row, entries in enumerate(ranked):
            ax = layout.add_axes(fig, row, col)
            _draw_entries(ax, entries, classes, lay['text'], row_h // int(topk))
            if row == 0:
                ax.set_title(run['name'], fontsize=9, pad=3)
    fig.text(0.5, 0.5 * lay['bottom'] / layout.size_px[1],
             f'top-{topk} retrieved reports (RetrievalPrecisionAtK ranking); green: class of '
             'the query, red: wrong category', ha='center', va='center', fontsize=6)
    return save_figure(fig, out_file)
