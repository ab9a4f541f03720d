"""Evidence graph: LGDEA's in-batch graph vs a dataset-scale faiss kNN graph (flat vs IVF).

LGDEA builds its propagation graph inside each batch (``EvidencePropagation.build_graph``: the
dense B x B cosine, a top-k mask and a row softmax, every step). A dataset-scale graph would
instead index all N evidence features with faiss and refresh the k-nearest-neighbour lists
every ``--refresh-every`` steps. This benchmark times both on synthetic L2-normalised features
(d = ``--dims``) and prints one table:

- ``in_batch``: ``build_graph`` at each batch size of ``--batch-sizes`` (median of
  ``--repeats``, and the fastest repeat: on a busy CPU the median is mostly waiting for a
  core), on ``--device``; the cost is paid every step.
- ``faiss_flat``: ``IndexFlatIP`` (exact) add of N vectors, then a k-NN query.
- ``faiss_ivf``: ``IndexIVFFlat`` with ``nlist = --nlist-factor * sqrt(N)`` lists (at most
  N / 39), trained on at most ``--train-points`` vectors, queried with ``nprobe = --nprobe``;
  its recall@k against the flat result on the same queries is reported.

A refresh queries every one of the N vectors. On a CPU that is too slow for large N with the
flat index, so each size queries ``min(N, --queries)`` vectors and the full refresh time is
extrapolated linearly (``refresh_s``; ``refresh_extrapolated`` says when). ``per_step_ms`` is
the refresh (build + all N queries) divided by the refresh interval, the figure to compare
with the in-batch graph's per-step time. Memory: the index's own bytes and the peak increase
of the resident set during build + query (sampled; the in-batch graph on CUDA reports
``torch.cuda.max_memory_allocated`` growth). faiss runs on the CPU (faiss-cpu).

Usage::

    PYTHONPATH=. python benchmarks/bench_evidence_graph.py                      # 10k, 100k
    PYTHONPATH=. python benchmarks/bench_evidence_graph.py --sizes 10000 100000 400000 \\
        --queries 20000 --out graph.json
"""
import argparse
import json
import math
import os.path as osp
import statistics
import sys
import time
from typing import List, Optional

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from bench_baselines_step import RSSPeak  # noqa: E402


def synthetic_features(n: int, dims: int, clusters: int = 64, seed: int = 0) -> np.ndarray:
    """``n`` L2-normalised float32 vectors around ``clusters`` random centres (so that
    neighbourhoods exist, as for evidence embeddings of recurring findings)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dims)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.5 * rng.standard_normal((n, dims),
                                                                          dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def time_in_batch(batch: int, dims: int, topk: Optional[int], repeats: int,
                  device: str) -> dict:
    """Median time and memory of ``EvidencePropagation.build_graph`` on a batch of features."""
    from lgdea.models.heads.evidence_propagation import EvidencePropagation
    prop = EvidencePropagation(topk=topk)
    h = torch.from_numpy(synthetic_features(batch, dims, seed=batch)).to(device)
    prop.build_graph(h)  # warm-up
    times, mem = [], 0
    for _ in range(repeats):
        if device == 'cuda':
            torch.cuda.synchronize()
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            s = prop.build_graph(h)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            mem = max(mem, torch.cuda.max_memory_allocated() - before)
        else:
            with RSSPeak() as rss:
                t0 = time.perf_counter()
                s = prop.build_graph(h)
                times.append(time.perf_counter() - t0)
            if rss.start is not None:
                mem = max(mem, rss.peak - rss.start)
        del s
    return dict(kind='in_batch', n=batch, per_step_ms=1000 * statistics.median(times),
                min_ms=1000 * min(times),
                build_s=None, query_s=None, refresh_s=None, refresh_extrapolated=False,
                index_mb=None, peak_mem_mb=mem / 2**20,
                peak_mem_kind='cuda_allocated' if device == 'cuda' else 'rss_sampled',
                recall_at_k=None, nlist=None, nprobe=None, queries=None, device=device,
                refresh_every=None)


def time_faiss(kind: str, x: np.ndarray, k: int, queries: int, refresh_every: int,
               nlist_factor: float, nprobe: int, train_points: int,
               flat_result: Optional[np.ndarray] = None) -> dict:
    """Build a flat or IVF inner-product index of ``x`` and query ``queries`` of its rows."""
    import faiss
    n, dims = x.shape
    q = x[:min(n, queries)]
    nlist = None
    with RSSPeak() as rss:
        t0 = time.perf_counter()
        if kind == 'faiss_flat':
            index = faiss.IndexFlatIP(dims)
        else:
            # faiss wants >= 39 training points per list
            nlist = max(1, min(int(round(nlist_factor * math.sqrt(n))), n // 39))
            quantizer = faiss.IndexFlatIP(dims)
            index = faiss.IndexIVFFlat(quantizer, dims, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(1)
            sample = x[rng.choice(n, min(n, max(train_points, nlist)), replace=False)]
            index.train(sample)
            index.nprobe = nprobe
        index.add(x)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, ids = index.search(q, k + 1)  # +1: the query itself
        query = time.perf_counter() - t0
    index_bytes = n * dims * 4 + (nlist * dims * 4 if nlist else 0)
    refresh = build + query * n / len(q)
    recall = None
    if flat_result is not None:
        hits = [len(set(a[1:]) & set(b[1:])) for a, b in zip(ids, flat_result)]
        recall = float(np.mean(hits)) / k
    mem = (rss.peak - rss.start) if rss.start is not None else 0
    return dict(kind=kind, n=n, per_step_ms=1000 * refresh / refresh_every, min_ms=None,
                build_s=build,
                query_s=query, refresh_s=refresh, refresh_extrapolated=len(q) < n,
                index_mb=index_bytes / 2**20, peak_mem_mb=mem / 2**20,
                peak_mem_kind='rss_sampled', recall_at_k=recall, nlist=nlist,
                nprobe=nprobe if nlist else None, queries=len(q), device='cpu',
                ids=ids)


def format_table(rows: List[dict], k: int) -> str:
    """Printed table of all rows."""
    def f(v, fmt):
        return '' if v is None else format(v, fmt)
    lines = [f'{"kind":<11} {"N":>8} {"build s":>8} {"query s":>8} {"queries":>8} '
             f'{"refresh s":>10} {"ms/step":>9} {"index MB":>9} {"peak MB":>8} '
             f'{"recall@" + str(k):>9} {"min ms":>7}']
    for r in rows:
        refresh = f(r['refresh_s'], '.2f') + ('*' if r['refresh_extrapolated'] else '')
        lines.append(f'{r["kind"]:<11} {r["n"]:>8} {f(r["build_s"], ".3f"):>8} '
                     f'{f(r["query_s"], ".3f"):>8} {f(r["queries"], "d"):>8} {refresh:>10} '
                     f'{r["per_step_ms"]:>9.2f} {f(r["index_mb"], ".1f"):>9} '
                     f'{r["peak_mem_mb"]:>8.1f} {f(r["recall_at_k"], ".3f"):>9} '
                     f'{f(r.get("min_ms"), ".2f"):>7}')
    return '\n'.join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--sizes', type=int, nargs='+', default=[10000, 100000],
                   help='dataset sizes N of the faiss graph (the issue: 10000 100000 400000)')
    p.add_argument('--batch-sizes', type=int, nargs='+', default=[128, 1024],
                   help='batch sizes of the in-batch graph')
    p.add_argument('--dims', type=int, default=256, help='feature width d')
    p.add_argument('--k', type=int, default=10, help='neighbours per node (in-batch: topk)')
    p.add_argument('--queries', type=int, default=2000,
                   help='vectors queried per size; the full refresh is extrapolated above it')
    p.add_argument('--refresh-every', type=int, default=None,
                   help='steps between dataset-graph refreshes (default: one epoch, N / the '
                   'largest --batch-sizes)')
    p.add_argument('--nlist-factor', type=float, default=4.0, help='IVF lists = factor*sqrt(N)')
    p.add_argument('--nprobe', type=int, default=16, help='IVF lists searched per query')
    p.add_argument('--train-points', type=int, default=50000, help='IVF training sample cap')
    p.add_argument('--repeats', type=int, default=20, help='in-batch repeats (median, min)')
    p.add_argument('--device', default='cpu', help='cpu or cuda, for the in-batch graph')
    p.add_argument('--threads', type=int, default=None, help='torch and faiss CPU threads')
    p.add_argument('--out', help='write the results as JSON here')
    args = p.parse_args(argv)
    if args.device not in ('cpu', 'cuda'):
        raise SystemExit(f'--device must be cpu or cuda, got {args.device!r}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: torch sees no CUDA device; pass --device cpu')
    for opt in ('k', 'queries', 'repeats', 'nprobe', 'dims'):
        if getattr(args, opt) < 1:
            raise SystemExit(f'--{opt} must be >= 1, got {getattr(args, opt)}')
    if min(args.sizes) <= args.k:
        raise SystemExit(f'--sizes must all exceed --k ({args.k}), got {args.sizes}')
    try:
        import faiss
    except ImportError as e:
        raise SystemExit(f'faiss is not installed ({e}); pip install faiss-cpu') from e
    if args.threads:
        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)

    rows = [time_in_batch(b, args.dims, args.k if args.k < b - 1 else None, args.repeats,
                          args.device) for b in args.batch_sizes]
    for n in args.sizes:
        x = synthetic_features(n, args.dims, seed=n)
        every = args.refresh_every or max(1, n // max(args.batch_sizes))
        flat = time_faiss('faiss_flat', x, args.k, args.queries, every, args.nlist_factor,
                          args.nprobe, args.train_points)
        ivf = time_faiss('faiss_ivf', x, args.k, args.queries, every, args.nlist_factor,
                         args.nprobe, args.train_points, flat_result=flat['ids'])
        for r in (flat, ivf):
            r.pop('ids')
            r['refresh_every'] = every
            rows.append(r)
        del x
    print(f'\nevidence graph, d={args.dims}, k={args.k}, torch threads '
          f'{torch.get_num_threads()}, faiss threads {faiss.omp_get_max_threads()} '
          f'(in-batch on {args.device}, faiss on cpu); ms/step = per-step cost (in-batch) or '
          'refresh / refresh interval (faiss); * = extrapolated from the queried subset')
    print(format_table(rows, args.k))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(benchmark='evidence_graph', dims=args.dims, k=args.k,
                           device=args.device, rows=rows), f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
