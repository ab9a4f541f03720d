"""LesionQueryNeck forward + backward: fused attention (SDPA) vs the explicit path.

Both variants share their weights and input and are timed interleaved (``--repeats`` rounds,
the first ``--warmup`` dropped); reported per variant: median and fastest time of one
forward + backward of the neck alone (``v``, ``phi``, ``H_I``, no attention map: the training
path) and, on CUDA, the peak memory increase of one step. ``--attn`` times the path with the
head-mean attention map asked for (``return_attn=True``, the grounding path) as a third row.

Usage::

    PYTHONPATH=. python benchmarks/bench_lesion_neck.py                        # CPU, ViT-B size
    PYTHONPATH=. python benchmarks/bench_lesion_neck.py --device cuda --amp --batch 128 \\
        --out neck.json
"""
import argparse
import json
import statistics
import sys
import time
from typing import List

import torch


def _variants(args) -> dict:
    from lgdea.models.necks import LesionQueryNeck
    cfg = dict(in_dims=args.dims, embed_dims=256, num_queries=args.queries, num_layers=1,
               num_heads=8)
    torch.manual_seed(0)
    sdpa = LesionQueryNeck(attention_impl='sdpa', **cfg).to(args.device)
    explicit = LesionQueryNeck(attention_impl='explicit', **cfg).to(args.device)
    explicit.load_state_dict(sdpa.state_dict())
    out = dict(sdpa=(sdpa, False), explicit=(explicit, False))
    if args.attn:
        out['sdpa_with_map'] = (sdpa, True)
    return out


def _step(neck, x, with_map: bool, device: str, amp: bool) -> float:
    if device == 'cuda':
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
        out = neck(x, return_attn=with_map)
    (out['H_I'].float().sum() + out['v'].float().mean()).backward()
    if device == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def run(args) -> List[dict]:
    variants = _variants(args)
    x = torch.randn(args.batch, args.patches, args.dims, device=args.device, requires_grad=True)
    times = {name: [] for name in variants}
    peak = {name: None for name in variants}
    for r in range(args.warmup + args.repeats):
        for name, (neck, with_map) in variants.items():
            if args.device == 'cuda':
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated()
            dt = _step(neck, x, with_map, args.device, args.amp)
            if r >= args.warmup:
                times[name].append(dt)
                if args.device == 'cuda':
                    peak[name] = (torch.cuda.max_memory_allocated() - before) / 2**20
    ref = statistics.median(times['explicit'])
    return [dict(variant=name, median_ms=1000 * statistics.median(t), min_ms=1000 * min(t),
                 ratio_to_explicit=statistics.median(t) / ref, peak_mem_mb=peak[name])
            for name, t in times.items()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--patches', type=int, default=196, help='P (196 = ViT-B/16 at 224 px)')
    p.add_argument('--dims', type=int, default=768, help='patch width d_v')
    p.add_argument('--queries', type=int, default=64, help='lesion queries L')
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument('--amp', action='store_true', help='bf16 autocast')
    p.add_argument('--attn', action='store_true', help='also time return_attn=True')
    p.add_argument('--repeats', type=int, default=10)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--out', help='write the rows as JSON here')
    args = p.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: torch sees no CUDA device; pass --device cpu')
    if args.repeats < 1 or args.batch < 1:
        raise SystemExit('--repeats and --batch must be >= 1')
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = run(args)
    dev = torch.cuda.get_device_name() if args.device == 'cuda' else \
        f'cpu x{torch.get_num_threads()}'
    print(f'LesionQueryNeck fwd+bwd, B={args.batch} P={args.patches} d_v={args.dims} '
          f'L={args.queries}, device {dev}, amp={args.amp}, median of {args.repeats}')
    print(f'{"variant":<14} {"median ms":>10} {"min ms":>8} {"vs explicit":>12} {"peak MB":>8}')
    for r in rows:
        mem = '' if r['peak_mem_mb'] is None else f'{r["peak_mem_mb"]:.0f}'
        print(f'{r["variant"]:<14} {r["median_ms"]:>10.1f} {r["min_ms"]:>8.1f} '
              f'{r["ratio_to_explicit"]:>11.2f}x {mem:>8}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(benchmark='lesion_neck', device=dev, amp=args.amp,
                           batch=args.batch, patches=args.patches, dims=args.dims,
                           queries=args.queries, rows=rows), f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
