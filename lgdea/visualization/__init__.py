# mmpretrain's visualizers register on import; the lgdea child registry reaches them through
# its parent once they are registered (configs use ``UniversalVisualizer``).
import mmpretrain.visualization  # noqa: F401

# Figures of the paper (docs/visualization.md), built on the shared inference interface.
from .grounding import (GROUNDING_LAYOUT, SINGLE_LAYOUT, grounding_figure,
                        grounding_image_figure, grounding_maps, select_grounding_records,
                        single_image_layout)
from .inference import (build_eval_dataset, build_metric, check_runs, eval_pipeline,
                        eval_sets, find_eval_set, image_results, init_model, load_config,
                        report_results)
from .layout import (DPI, GridLayout, draw_grounding_overlay, normalize_map,
                     read_display_image, save_figure)
from .retrieval import RETRIEVAL_LAYOUT, retrieval_figure, retrieve_reports, select_queries
from .sensitivity import SENSITIVITY_LAYOUT, sensitivity_figure

__all__ = [
    'grounding_figure', 'retrieval_figure', 'sensitivity_figure', 'grounding_maps',
    'retrieve_reports', 'grounding_image_figure', 'single_image_layout',
    'select_grounding_records', 'select_queries', 'init_model',
    'load_config', 'eval_sets', 'find_eval_set', 'build_eval_dataset', 'eval_pipeline',
    'build_metric', 'image_results', 'report_results', 'check_runs', 'GridLayout',
    'draw_grounding_overlay', 'normalize_map', 'read_display_image', 'save_figure', 'DPI',
    'GROUNDING_LAYOUT', 'SINGLE_LAYOUT', 'RETRIEVAL_LAYOUT', 'SENSITIVITY_LAYOUT'
]
