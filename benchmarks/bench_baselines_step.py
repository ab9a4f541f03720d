"""Train-step time of the baselines against the CLIP baseline with the same encoders.

One train step = ``model.train_step(batch, optim_wrapper)`` as the mmengine runner calls it:
data preprocessing, forward of every loss term, backward, AdamW step. Every method gets the
same image backbone, the same text encoder (the offline MiniLM, trainable, eager attention so
that attention-weighted methods can run) and the same batch of 16 image-report pairs; the
time of each method is reported as a ratio to CLIP's in the same setting.

Settings:

- ``tiny64``: the demo ViT (128-d, 4 layers, 4 heads, patch 8) on 64 x 64 grayscale images.
- ``vits224``: a ViT-S/16 (DeiT-small: 384-d, 12 layers, 6 heads) on 224 x 224 images.

Methods (``--methods``): ``clip`` (``CLIPBaseline``), ``mgca`` (``projects/mgca``) and any
method another project adds to :data:`METHODS` (a function ``(image_encoder, text_encoder,
setting) -> model config``; a method whose plugin is missing is skipped with a note).

Usage::

    PYTHONPATH=. python benchmarks/bench_baselines_step.py                      # CPU
    PYTHONPATH=. python benchmarks/bench_baselines_step.py --device cuda --amp
    PYTHONPATH=. python benchmarks/bench_baselines_step.py --methods clip mgca --settings tiny64
"""
import argparse
import importlib
import json
import statistics
import sys
import time
from typing import Callable, Dict, List

import torch

BATCH = 16

SETTINGS = dict(
    tiny64=dict(img_size=64, in_channels=1,
                backbone=dict(type='mmpretrain.VisionTransformer',
                              arch=dict(embed_dims=128, num_layers=4, num_heads=4,
                                        feedforward_channels=256),
                              img_size=64, patch_size=8, in_channels=1, out_type='raw')),
    vits224=dict(img_size=224, in_channels=3,
                 backbone=dict(type='mmpretrain.VisionTransformer', arch='deit-small',
                               img_size=224, patch_size=16, in_channels=3, out_type='raw')),
)

TEXT_ENCODER = dict(type='HFTextEncoder', name_or_path='builtin:all-MiniLM-L6-v2',
                    pooling='mean', attn_implementation='eager')


def _preprocessor(setting: dict) -> dict:
    return dict(type='VLDataPreprocessor', mean=[127.5], std=[127.5],
                channels=setting['in_channels'])


def clip_cfg(image_encoder: dict, text_encoder: dict, setting: dict) -> dict:
    return dict(type='CLIPBaseline', image_encoder=image_encoder, text_encoder=text_encoder,
                embed_dims=128, projection='mlp', max_text_length=112,
                data_preprocessor=_preprocessor(setting))


def mgca_cfg(image_encoder: dict, text_encoder: dict, setting: dict) -> dict:
    importlib.import_module('projects.mgca.mgca')
    return dict(type='MGCA', image_encoder=image_encoder, text_encoder=text_encoder,
                embed_dims=128, hidden_dims=2048, max_text_length=112,
                data_preprocessor=_preprocessor(setting))


#: method name -> model config builder. Other projects add theirs here.
METHODS: Dict[str, Callable[[dict, dict, dict], dict]] = dict(clip=clip_cfg, mgca=mgca_cfg)

_FINDINGS = ['small left pleural effusion', 'mild cardiomegaly', 'right basal atelectasis',
             'patchy consolidation in the right lower lobe', 'mild pulmonary edema',
             'no pneumothorax', 'stable mediastinal contours', 'left apical opacity']


def make_batch(setting: dict, n: int = BATCH, seed: int = 0) -> dict:
    """``vl_collate``-style batch of n pairs: random uint8 images and ~60-token reports."""
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    size, ch = setting['img_size'], setting['in_channels']
    images = torch.randint(0, 256, (n, 1, size, size), generator=g, dtype=torch.uint8)
    samples = []
    for i in range(n):
        idx = torch.randperm(len(_FINDINGS), generator=g)[:4].tolist()
        ds = DataSample()
        ds.study_id, ds.paired = f's{i}', True
        ds.text = ('FINDINGS: ' + '. '.join(_FINDINGS[j] for j in idx) +
                   '. IMPRESSION: ' + _FINDINGS[idx[0]] + ', compared with the prior study.')
        samples.append(ds)
    del ch  # the preprocessor repeats the grayscale channel when the backbone wants 3
    return dict(inputs=images, data_samples=samples, reports=samples)


def time_method(name: str, setting_name: str, device: str, steps: int, warmup: int,
                amp: bool) -> dict:
    from mmengine.optim import AmpOptimWrapper, OptimWrapper

    from lgdea.registry import MODELS
    setting = SETTINGS[setting_name]
    image_encoder = dict(type='CXRImageEncoder', backbone=dict(setting['backbone']))
    cfg = METHODS[name](image_encoder, dict(TEXT_ENCODER), setting)
    torch.manual_seed(0)
    model = MODELS.build(cfg).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    if amp:
        wrapper = AmpOptimWrapper(optimizer=optimizer, dtype='bfloat16')
    else:
        wrapper = OptimWrapper(optimizer=optimizer)
    batch = make_batch(setting)
    times: List[float] = []
    for i in range(warmup + steps):
        if device == 'cuda':
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        log_vars = model.train_step(batch, wrapper)
        if device == 'cuda':
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    loss = float(log_vars['loss'])
    return dict(method=name, setting=setting_name, median_s=statistics.median(times),
                min_s=min(times), loss=loss,
                params_m=sum(p.numel() for p in model.parameters()) / 1e6)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--methods', nargs='+', default=['clip', 'mgca'],
                        help=f'methods to time (known: {sorted(METHODS)}); clip is always the '
                        'reference')
    parser.add_argument('--settings', nargs='+', default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--amp', action='store_true', help='bf16 autocast (AmpOptimWrapper)')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--json', help='also write the rows to this file')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from lgdea.utils import register_all_modules
    register_all_modules()
    methods = ['clip'] + [m for m in args.methods if m != 'clip']
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f'unknown methods {unknown}; known: {sorted(METHODS)}')

    rows = []
    for setting in args.settings:
        ref = None
        for name in methods:
            try:
                row = time_method(name, setting, args.device, args.steps, args.warmup, args.amp)
            except ImportError as e:  # a plugin that is not in this checkout
                print(f'[skip] {name}: {e}', file=sys.stderr)
                continue
            ref = row['median_s'] if name == 'clip' else ref
            row['ratio_vs_clip'] = row['median_s'] / ref
            rows.append(row)
    dev = (torch.cuda.get_device_name() if args.device == 'cuda' else
           f'cpu x{torch.get_num_threads()}')
    print(f'\ntrain step, batch {BATCH} pairs, device {dev}, amp={args.amp}, '
          f'median of {args.steps} steps')
    print(f'{"setting":<9} {"method":<8} {"params(M)":>9} {"step (ms)":>10} {"x CLIP":>7}')
    for r in rows:
        print(f'{r["setting"]:<9} {r["method"]:<8} {r["params_m"]:>9.1f} '
              f'{1000 * r["median_s"]:>10.1f} {r["ratio_vs_clip"]:>7.2f}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(device=dev, amp=args.amp, batch=BATCH, rows=rows), f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
