"""Merge the JSON files of ``gpu_suite.sh`` into one ``suite.json`` and one ``suite.md`` table.

    python benchmarks/suite_report.py OUT_DIR [--mode full|dry-run] [--mfu-target 0.40]

Reads ``OUT_DIR/step.json`` (``bench_lgdea_step.py``), ``OUT_DIR/data.json``
(``bench_data_loading.py``) and ``OUT_DIR/graph.json`` (``bench_evidence_graph.py``), all
required; writes ``OUT_DIR/suite.json`` (the three results, the environment and the checks:
each target ratio and, where the GPU's peak is known, LGDEA's MFU against ``--mfu-target``)
and ``OUT_DIR/suite.md``.
"""
import argparse
import json
import os.path as osp
import platform
import sys
from typing import List

PARTS = dict(step='step.json', data='data.json', graph='graph.json')


def _fmt(v, fmt: str) -> str:
    return '' if v is None else format(v, fmt)


def checks(step: dict, mfu_target: float) -> List[dict]:
    """Every target of the run: ratio targets of the step rows, and LGDEA's MFU."""
    out = []
    for r in step['rows']:
        if r.get('target') is not None:
            out.append(dict(name=f'{r["setting"]} {r["method"]} / {r["reference"]}',
                            value=r['ratio'], target=f'<= {r["target"]:.2f}x',
                            ok=r['meets_target']))
        if r['method'] == 'lgdea' and r.get('mfu') is not None:
            out.append(dict(name=f'{r["setting"]} lgdea MFU', value=r['mfu'],
                            target=f'>= {mfu_target:.0%}', ok=bool(r['mfu'] >= mfu_target)))
    return out


def markdown(suite: dict) -> str:
    """The suite as markdown tables."""
    env, step, data, graph = suite['environment'], suite['step'], suite['data'], suite['graph']
    lines = [f'# Benchmark suite ({suite["mode"]})', '',
             f'device: {step["device"]}; amp: {step["amp"]}; torch {env["torch"]}; '
             f'python {env["python"]}', '',
             f'## Train step (batch {step["batch"]}, median of {step["rounds"]} interleaved '
             f'rounds x {step["steps"]} steps)', '',
             '| setting | method | step ms | img/s | peak mem MB | TFLOP/s | MFU | ratio |',
             '|---|---|---:|---:|---:|---:|---:|---|']
    for r in step['rows']:
        ratio = '' if r['ratio'] is None else f'{r["ratio"]:.2f}x {r["reference"]}'
        lines.append(f'| {r["setting"]} | {r["method"]} | {1000 * r["median_s"]:.1f} | '
                     f'{r["images_per_s"]:.1f} | {r["peak_mem_mb"]:.0f} ({r["peak_mem_kind"]}) | '
                     f'{_fmt(r["achieved_tflops"], ".2f")} | '
                     f'{"" if r["mfu"] is None else format(100 * r["mfu"], ".1f") + "%"} | '
                     f'{ratio} |')
    lines += ['', '## Checks', '', '| check | value | target | ok |', '|---|---:|---|---|']
    for c in suite['checks']:
        lines.append(f'| {c["name"]} | {c["value"]:.3f} | {c["target"]} | '
                     f'{"yes" if c["ok"] else "NO"} |')
    step_ms = '' if data['step_time_s'] is None else f'{1000 * data["step_time_s"]:.0f} ms'
    lines += ['', f'## Data loading (batch {data["batch"]}, step {step_ms}; '
              f'preprocess_images.py --max-size {data["max_size"]}: {data["preprocess_s"]:.2f} s)',
              '', '| variant | size | decode ms | pipeline ms | img/s per worker | '
              'workers to keep up |', '|---|---|---:|---:|---:|---:|']
    for r in data['rows']:
        lines.append(f'| {r["variant"]} | {r["height"]}x{r["width"]} | {r["decode_ms"]:.1f} | '
                     f'{r["pipeline_ms"]:.1f} | {r["images_per_s_per_worker"]:.1f} | '
                     f'{_fmt(r["workers_to_keep_up"], "d")} |')
    lines += ['', f'## Evidence graph (d = {graph["dims"]}, k = {graph["k"]})', '',
              '| kind | N | build s | query s (queries) | refresh s | ms/step | index MB | '
              'peak mem MB | recall@k | in-batch min ms |',
              '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for r in graph['rows']:
        refresh = _fmt(r['refresh_s'], '.2f') + (' (extrap.)' if r['refresh_extrapolated']
                                                 else '')
        query = '' if r['query_s'] is None else f'{r["query_s"]:.3f} ({r["queries"]})'
        lines.append(f'| {r["kind"]} | {r["n"]} | {_fmt(r["build_s"], ".3f")} | {query} | '
                     f'{refresh} | {r["per_step_ms"]:.2f} | {_fmt(r["index_mb"], ".1f")} | '
                     f'{r["peak_mem_mb"]:.1f} | {_fmt(r["recall_at_k"], ".3f")} | '
                     f'{_fmt(r.get("min_ms"), ".2f")} |')
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('out_dir')
    p.add_argument('--mode', default='full', choices=['full', 'dry-run'])
    p.add_argument('--mfu-target', type=float, default=0.40, help='LGDEA MFU target (bf16)')
    args = p.parse_args(argv)
    parts = {}
    for key, name in PARTS.items():
        path = osp.join(args.out_dir, name)
        if not osp.isfile(path):
            raise SystemExit(f'{path} is missing: run benchmarks/gpu_suite.sh, which writes it')
        with open(path) as f:
            parts[key] = json.load(f)
    import torch
    suite = dict(mode=args.mode,
                 environment=dict(torch=torch.__version__, python=platform.python_version(),
                                  cuda=torch.version.cuda, machine=platform.machine()),
                 **parts)
    suite['checks'] = checks(parts['step'], args.mfu_target)
    with open(osp.join(args.out_dir, 'suite.json'), 'w') as f:
        json.dump(suite, f, indent=2)
    text = markdown(suite)
    with open(osp.join(args.out_dir, 'suite.md'), 'w') as f:
        f.write(text)
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
