"""Data loading: decoded + augmented images/s per worker, raw vs pre-resized MIMIC-size JPEGs.

The benchmark writes ``--num-images`` synthetic grayscale JPEGs of MIMIC-CXR-JPG size
(``--height`` x ``--width``, default 3056 x 2544, quality 95: smooth anatomy-like intensity
plus noise, so the files have the size of real radiographs) into a temporary folder, makes a
pre-resized copy with the project's real ``tools/preprocess_images.py`` (``--max-size``; its
wall time is reported as the one-off cost), and runs the training image pipeline of
``configs/_base_/datasets/mimic_cxr.py`` on both (``LoadCXRImage`` -> ``ResizeCXR(256)`` ->
``RandomCropCXR(224)`` -> ``PackVLInputs``, built from the registry) in one process, which is
the work of one DataLoader worker. Each variant is timed ``--repeats`` times, alternating
raw and pre-resized, and the median is reported:

- ``decode_ms``: ``LoadCXRImage`` alone per image; ``pipeline_ms``: the whole pipeline;
- ``images_per_s_per_worker`` = 1000 / ``pipeline_ms``;
- ``workers_to_keep_up`` = ceil(batch / (step_time x images/s per worker)): the DataLoader
  workers that deliver one batch per model step, for ``--step-time`` seconds per step of
  ``--batch`` images (or the step time and batch of ``--step-method`` in a
  ``bench_baselines_step.py --out`` file, ``--step-json``).

Workers are assumed to scale linearly (separate processes, one core each); a machine with fewer
free cores than that number cannot keep up.

Usage::

    PYTHONPATH=. python benchmarks/bench_data_loading.py --step-time 0.25 --batch 128
    PYTHONPATH=. python benchmarks/bench_data_loading.py --step-json step.json --out data.json
"""
import argparse
import csv
import json
import math
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List, Optional, Tuple

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PIPELINE = [dict(type='LoadCXRImage'), dict(type='ResizeCXR', scale=(256, 256)),
            dict(type='RandomCropCXR', size=224), dict(type='PackVLInputs')]


def write_jpegs(folder: str, n: int, height: int, width: int, seed: int = 0) -> List[str]:
    """``n`` grayscale JPEGs (quality 95) of ``height`` x ``width``; returns their paths."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    paths = []
    for i in range(n):
        cy, cx = height * rng.uniform(0.4, 0.6), width * rng.uniform(0.4, 0.6)
        body = np.exp(-(((yy - cy) / (0.45 * height)) ** 2 + ((xx - cx) / (0.4 * width)) ** 2))
        lungs = sum(np.exp(-(((yy - cy) / (0.25 * height)) ** 2 +
                             ((xx - cx - s * 0.18 * width) / (0.1 * width)) ** 2))
                    for s in (-1, 1))
        img = 40 + 170 * body - 90 * lungs + rng.normal(0, 12, (height, width))
        path = osp.join(folder, 'p10', f'study{i}', f'img{i}.jpg')
        os.makedirs(osp.dirname(path), exist_ok=True)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode='L').save(path, quality=95)
        paths.append(path)
    return paths


def preprocess(src: str, dst: str, max_size: int) -> float:
    """Run ``tools/preprocess_images.py src dst --max-size``; returns its wall time."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'preprocess_images.py'), src, dst,
                    '--max-size', str(max_size), '--no-progress', '--strict'], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def records(root: str, paths: List[str], sizes_csv: Optional[str]) -> List[dict]:
    """Dataset records of the images under ``root``; with a ``sizes.csv`` the original size
    becomes ``ori_shape`` (as ``MIMICCXRDataset(preprocessed_root=...)`` gives it)."""
    ori = {}
    if sizes_csv is not None:
        with open(sizes_csv, newline='') as f:
            for row in csv.DictReader(f):
                ori[row['path']] = (int(row['height']), int(row['width']))
    out = []
    for i, p in enumerate(paths):
        rel = osp.relpath(p, root).replace(os.sep, '/')
        rec = dict(img_path=p, study_id=str(i), kind='image')
        if rel in ori:
            rec['ori_shape'] = ori[rel]
        out.append(rec)
    return out


def time_pipeline(recs: List[dict]) -> Tuple[float, float]:
    """(decode ms, pipeline ms) per image over ``recs``, in this process."""
    from mmengine.dataset import Compose

    from lgdea.registry import TRANSFORMS
    load = TRANSFORMS.build(PIPELINE[0])
    pipeline = Compose([TRANSFORMS.build(t) for t in PIPELINE])
    t0 = time.perf_counter()
    for r in recs:
        load(dict(r))
    decode = time.perf_counter() - t0
    t0 = time.perf_counter()
    for r in recs:
        out = pipeline(dict(r))
        if out is None or tuple(out['inputs'].shape[-2:]) != (224, 224):
            raise RuntimeError(f'pipeline gave {None if out is None else out["inputs"].shape} '
                               f'for {r["img_path"]}; expected a 224 x 224 image')
    return 1000 * decode / len(recs), 1000 * (time.perf_counter() - t0) / len(recs)


def step_from_json(path: str, method: str) -> Tuple[float, int]:
    """(median step seconds, batch) of ``method`` in a ``bench_baselines_step.py`` JSON."""
    with open(path) as f:
        data = json.load(f)
    rows = [r for r in data.get('rows', []) if r['method'] == method]
    if not rows:
        raise SystemExit(f'--step-json {path}: no row of method {method!r} (has '
                         f'{sorted({r["method"] for r in data.get("rows", [])})}); pass '
                         '--step-method')
    return float(rows[-1]['median_s']), int(rows[-1]['batch'])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--num-images', type=int, default=8)
    p.add_argument('--height', type=int, default=3056)
    p.add_argument('--width', type=int, default=2544)
    p.add_argument('--max-size', type=int, default=512, help='preprocess_images.py --max-size')
    p.add_argument('--repeats', type=int, default=3, help='alternating passes (median)')
    p.add_argument('--step-time', type=float, default=None,
                   help='model seconds per step to keep up with')
    p.add_argument('--batch', type=int, default=128, help='images per model step')
    p.add_argument('--step-json', default=None,
                   help='take --step-time and --batch from a bench_baselines_step.py --out file')
    p.add_argument('--step-method', default='lgdea', help='row of --step-json to use')
    p.add_argument('--workdir', default=None,
                   help='folder for the generated images (default: a temporary one, removed)')
    p.add_argument('--out', help='write the results as JSON here')
    args = p.parse_args(argv)
    for opt in ('num_images', 'height', 'width', 'max_size', 'repeats', 'batch'):
        if getattr(args, opt) < 1:
            raise SystemExit(f'--{opt.replace("_", "-")} must be >= 1, got {getattr(args, opt)}')
    if args.step_json and args.step_time is not None:
        raise SystemExit('give --step-time or --step-json, not both')
    step_time, batch = args.step_time, args.batch
    if args.step_json:
        step_time, batch = step_from_json(args.step_json, args.step_method)
    if step_time is not None and step_time <= 0:
        raise SystemExit(f'--step-time must be > 0, got {step_time}')
    from lgdea.utils import register_all_modules
    register_all_modules()

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix='lgdea_bench_data_')
        work = tmp.name
    else:
        work = args.workdir
    try:
        raw_root, pre_root = osp.join(work, 'raw'), osp.join(work, 'preprocessed')
        os.makedirs(raw_root, exist_ok=True)
        raw_paths = write_jpegs(raw_root, args.num_images, args.height, args.width)
        prep_s = preprocess(raw_root, pre_root, args.max_size)
        pre_paths = [osp.join(pre_root, osp.relpath(q, raw_root)) for q in raw_paths]
        variants = dict(raw=(raw_paths, records(raw_root, raw_paths, None)),
                        preprocessed=(pre_paths, records(pre_root, pre_paths,
                                                         osp.join(pre_root, 'sizes.csv'))))
        times = {k: [] for k in variants}
        for _ in range(args.repeats):
            for name, (_, recs) in variants.items():
                times[name].append(time_pipeline(recs))
        rows = []
        for name, (paths, _) in variants.items():
            from PIL import Image
            with Image.open(paths[0]) as im:
                w, h = im.size
            decode = statistics.median(t[0] for t in times[name])
            pipe = statistics.median(t[1] for t in times[name])
            rate = 1000.0 / pipe
            rows.append(dict(
                variant=name, images=len(paths), height=h, width=w,
                file_mb=statistics.mean(osp.getsize(q) for q in paths) / 2**20,
                decode_ms=decode, pipeline_ms=pipe, images_per_s_per_worker=rate,
                workers_to_keep_up=(math.ceil(batch / (step_time * rate))
                                    if step_time is not None else None)))
    finally:
        if tmp is not None:
            tmp.cleanup()
    ratio = rows[0]['pipeline_ms'] / rows[1]['pipeline_ms']
    print(f'\ndata loading, {args.num_images} JPEGs {args.height}x{args.width}, pipeline '
          f'{" -> ".join(t["type"] for t in PIPELINE)}, one process = one worker, median of '
          f'{args.repeats}; preprocess_images.py --max-size {args.max_size}: {prep_s:.2f} s '
          f'({1000 * prep_s / args.num_images:.0f} ms/image, once)')
    keep = (f'workers for {batch} images / {step_time * 1000:.0f} ms step'
            if step_time is not None else 'workers (give --step-time)')
    print(f'{"variant":<13} {"size":>11} {"file MB":>8} {"decode ms":>10} {"pipeline ms":>12} '
          f'{"img/s/worker":>13}  {keep}')
    for r in rows:
        print(f'{r["variant"]:<13} {r["height"]:>5}x{r["width"]:<5} {r["file_mb"]:>8.2f} '
              f'{r["decode_ms"]:>10.1f} {r["pipeline_ms"]:>12.1f} '
              f'{r["images_per_s_per_worker"]:>13.1f}  {r["workers_to_keep_up"] or ""}')
    print(f'raw / preprocessed pipeline time: {ratio:.1f}x')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(benchmark='data_loading', step_time_s=step_time, batch=batch,
                           preprocess_s=prep_s, max_size=args.max_size,
                           raw_over_preprocessed=ratio, rows=rows), f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
