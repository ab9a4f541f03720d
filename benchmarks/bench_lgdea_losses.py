"""Time and peak memory of L_u^evid (chunked vs dense) and of the evidence propagation.

Each (term, implementation, size) runs in its own subprocess so that the peak-memory reading
(``resource.getrusage(...).ru_maxrss`` growth on CPU, ``torch.cuda.max_memory_allocated`` on
CUDA) belongs to that measurement only. The inputs are allocated and a tiny warm-up runs before
the baseline reading, so the reported delta is the working memory of the computation.

- ``lu``: ``LesionConsistencyLoss`` (neighbour search in chunks of ``--chunk`` rows,
  O(N_L (k + K)) memory) forward + backward, against a dense reference that materialises the
  N_L x N_L similarity and the [N_L, k, K] pairwise KL tensor.
- ``prop``: ``EvidencePropagation`` forward (no_grad) with B_I = B_R = N_L / L (the batch that
  gives N_L lesions) and, as a stress case, B_I = B_R = N_L.

Usage::

    PYTHONPATH=. python benchmarks/bench_lgdea_losses.py                 # CPU, 1 thread
    PYTHONPATH=. python benchmarks/bench_lgdea_losses.py --device cuda
"""
import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------- dense reference
def dense_lu(v: torch.Tensor, q: torch.Tensor, log_q: torch.Tensor, k: int,
             tau_w: float) -> torch.Tensor:
    """Eq. 10 the direct way: full similarity matrix and explicit pairwise KL."""
    with torch.no_grad():
        vn = F.normalize(v.float(), dim=-1)
        sim = vn @ vn.t()                                   # [N_L, N_L]
        sim.fill_diagonal_(float('-inf'))
        vals, idx = sim.topk(k, dim=1)
        w = (vals / tau_w).softmax(1)
    log_qj = log_q.detach()[idx]                            # [N_L, k, K]
    kl = (q[:, None] * (log_q[:, None] - log_qj)).sum(-1)    # [N_L, k]
    return (w * kl).sum(1).mean()


# ----------------------------------------------------------------------------- measurement
class Peak:
    """Peak working memory (MiB) of a block, after the inputs exist."""

    def __init__(self, device: str):
        self.device = device

    def __enter__(self):
        gc.collect()
        if self.device == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        return self

    def __exit__(self, *exc):
        if self.device == 'cuda':
            torch.cuda.synchronize()
            self.mib = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        else:
            self.mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self.base) / 1024
        return False


def _sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def worker(args) -> dict:
    from lgdea.models.heads import EvidencePropagation
    from lgdea.models.losses import LesionConsistencyLoss

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    n, l, d, k_proto = args.n, args.lesions, args.dims, args.prototypes

    if args.term == 'lu':
        loss = LesionConsistencyLoss(knn_k=args.knn_k, chunk_size=args.chunk)

        def make(nn_):
            v = torch.randn(nn_ // l, l, d, device=dev)
            logits = torch.randn(nn_ // l, l, k_proto, device=dev, requires_grad=True)
            return v, logits

        def run(v, logits, backward=True):
            log_q = F.log_softmax(logits, -1)
            q = log_q.exp()
            if args.impl == 'chunked':
                val = loss(q, log_q, v)['loss_u']
            else:
                val = dense_lu(v.reshape(-1, d), q.reshape(-1, k_proto),
                               log_q.reshape(-1, k_proto), args.knn_k, 0.1)
            if backward:
                val.backward()
                logits.grad = None
            return val

        run(*make(2 * l))                                    # warm-up: kernels, allocator
        v, logits = make(n)
        with Peak(args.device) as pk:
            value = run(v, logits).item()
        times_f, times_fb = [], []
        for _ in range(args.repeats):
            _sync(args.device)
            t0 = time.perf_counter()
            run(v, logits, backward=False)
            _sync(args.device)
            t1 = time.perf_counter()
            run(v, logits, backward=True)
            _sync(args.device)
            t2 = time.perf_counter()
            times_f.append(t1 - t0)
            times_fb.append(t2 - t1)
        return dict(value=value, fwd_ms=1e3 * min(times_f), fwd_bwd_ms=1e3 * min(times_fb),
                    peak_mib=pk.mib)

    # propagation
    prop = EvidencePropagation(steps=2)
    b = n // l if args.impl == 'batch' else n

    def make_p(bb):
        h_i = F.normalize(torch.randn(bb, d, device=dev), dim=-1)
        h_r = F.normalize(torch.randn(bb, d, device=dev), dim=-1)
        y = torch.zeros(bb, bb, device=dev)
        idx = torch.arange(0, bb, 2, device=dev)
        y[idx, idx] = 1.0                                    # half of the batch paired
        return h_i, h_r, y, y.sum(1) > 0, y.sum(0) > 0

    prop(*make_p(8))
    h_i, h_r, y, paired_i, paired_r = make_p(b)
    with Peak(args.device) as pk:
        prop(h_i, h_r, y, paired_i, paired_r)
    times = []
    for _ in range(args.repeats):
        _sync(args.device)
        t0 = time.perf_counter()
        prop(h_i, h_r, y, paired_i, paired_r)
        _sync(args.device)
        times.append(time.perf_counter() - t0)
    return dict(batch=b, fwd_ms=1e3 * min(times), peak_mib=pk.mib)


# ----------------------------------------------------------------------------- driver
def spawn(args, term, impl, n) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', '--term', term, '--impl', impl,
           '--n', str(n), '--threads', str(args.threads), '--device', args.device,
           '--repeats', str(args.repeats), '--chunk', str(args.chunk),
           '--lesions', str(args.lesions), '--dims', str(args.dims),
           '--prototypes', str(args.prototypes), '--knn-k', str(args.knn_k)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        return dict(error=(res.stderr.strip().splitlines() or ['?'])[-1])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--sizes', type=int, nargs='+', default=[1024, 4096, 8192],
                    help='N_L = B * L values')
    ap.add_argument('--lesions', type=int, default=64, help='L')
    ap.add_argument('--dims', type=int, default=256, help='d (lesion / evidence width)')
    ap.add_argument('--prototypes', type=int, default=64, help='K')
    ap.add_argument('--knn-k', type=int, default=5)
    ap.add_argument('--chunk', type=int, default=1024, help='rows per kNN chunk')
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    ap.add_argument('--max-dense-gib', type=float, default=4.0,
                    help='skip the dense reference when its N_L^2 buffers would exceed this')
    ap.add_argument('--prop-stress-max', type=int, default=4096,
                    help='largest B of the B_I = B_R = N_L propagation stress case '
                    '(O(B^3) time: B=8192 takes about a minute on one CPU thread)')
    ap.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--term', default='lu', help=argparse.SUPPRESS)
    ap.add_argument('--impl', default='chunked', help=argparse.SUPPRESS)
    ap.add_argument('--n', type=int, default=1024, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    print(f'# device={args.device} threads={args.threads} L={args.lesions} d={args.dims} '
          f'K={args.prototypes} k={args.knn_k} chunk={args.chunk} repeats={args.repeats} '
          f'torch={torch.__version__}')
    print('\n## L_u^evid (forward; forward+backward; peak working memory)')
    print(f'{"N_L":>6} {"impl":>8} {"fwd ms":>9} {"fwd+bwd ms":>11} {"peak MiB":>9} '
          f'{"value":>10}')
    for n in args.sizes:
        rows = {}
        for impl in ('chunked', 'dense'):
            dense_gib = 3 * n * n * 4 / 2**30
            if impl == 'dense' and dense_gib > args.max_dense_gib:
                print(f'{n:>6} {impl:>8}  skipped (needs ~{dense_gib:.1f} GiB)')
                continue
            r = spawn(args, 'lu', impl, n)
            rows[impl] = r
            if 'error' in r:
                print(f'{n:>6} {impl:>8}  failed: {r["error"]}')
                continue
            print(f'{n:>6} {impl:>8} {r["fwd_ms"]:>9.1f} {r["fwd_bwd_ms"]:>11.1f} '
                  f'{r["peak_mib"]:>9.1f} {r["value"]:>10.6f}')
        c, dn = rows.get('chunked', {}), rows.get('dense', {})
        if 'fwd_ms' in c and 'fwd_ms' in dn:
            mem = (f'{dn["peak_mib"] / c["peak_mib"]:.1f}x' if c['peak_mib'] > 0.5
                   else f'{dn["peak_mib"]:.0f} vs {c["peak_mib"]:.1f} MiB')
            print(f'{n:>6}   ratio dense/chunked: time {dn["fwd_bwd_ms"] / c["fwd_bwd_ms"]:.2f}x, '
                  f'peak memory {mem}, |value diff| {abs(dn["value"] - c["value"]):.2e}')

    print('\n## EvidencePropagation (forward, no_grad, steps=2)')
    print(f'{"N_L":>6} {"case":>8} {"B":>6} {"fwd ms":>9} {"peak MiB":>9}')
    for n in args.sizes:
        for case in ('batch', 'stress'):
            if case == 'stress' and n > args.prop_stress_max:
                print(f'{n:>6} {case:>8} {n:>6}  skipped (> --prop-stress-max)')
                continue
            r = spawn(args, 'prop', case, n)
            if 'error' in r:
                print(f'{n:>6} {case:>8}  failed: {r["error"]}')
                continue
            print(f'{n:>6} {case:>8} {r["batch"]:>6} {r["fwd_ms"]:>9.2f} {r["peak_mib"]:>9.1f}')


if __name__ == '__main__':
    main()
