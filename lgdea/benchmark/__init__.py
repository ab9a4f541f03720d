"""Benchmarks: train and evaluate methods x pairing ratios x seeds, and write the paper's
comparison tables (docs/benchmark.md).

- :mod:`.spec`: the benchmark spec (a config file) and the runs it expands to;
- :mod:`.runs`: one run (overrides, state on disk, train / test subprocesses);
- :mod:`.results`: finished runs as records, mean / std over seeds;
- :mod:`.tables`: table layouts (paper Tables II-VII, X, XI) as markdown and CSV;
- :mod:`.figures`: figures through :mod:`lgdea.visualization`;
- :mod:`.runner`: sequential / parallel / printed dispatch and the output files.
"""
from .figures import FiguresUnavailableError, make_figures
from .results import WALL_TIME_KEY, RunRecord, collect_run, summarize
from .runner import BenchmarkFailedError, BenchmarkRunner
from .runs import (RunExecutor, RunFailedError, iters_cfg_options, run_cfg_options, run_state,
                   thread_env)
from .spec import DATASET_PRESETS, BenchmarkSpec, RunSpec, SettingSpec, load_spec
from .tables import (Column, Table, TableLayout, build_layouts, build_table, format_csv,
                     format_markdown, format_markdown_grid)

__all__ = [
    'BenchmarkSpec', 'SettingSpec', 'RunSpec', 'load_spec', 'DATASET_PRESETS', 'RunExecutor',
    'RunFailedError', 'iters_cfg_options', 'run_cfg_options', 'run_state', 'thread_env',
    'RunRecord',
    'collect_run', 'summarize', 'WALL_TIME_KEY', 'Column', 'TableLayout', 'Table',
    'build_layouts', 'build_table', 'format_markdown', 'format_markdown_grid', 'format_csv',
    'BenchmarkRunner', 'BenchmarkFailedError', 'make_figures', 'FiguresUnavailableError'
]
