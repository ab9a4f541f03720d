"""Train-step time and peak memory of every method at the same backbone, batch and resolution.

This file is the one place that defines the shared encoders (:data:`SETTINGS`,
:data:`TEXT_ENCODER`), the shared batch (:func:`make_batch`) and the method configs
(:data:`METHODS`); ``bench_lgdea_step.py`` is the LGDEA-vs-CLIP-on-evidence entry point to it.

One train step = ``model.train_step(batch, optim_wrapper)`` as the mmengine runner calls it:
data preprocessing, forward of every loss term, backward, AdamW step. Every method gets the same
image backbone (a ViT; GLoRIA through its ``GLoRIAImageEncoder`` ViT path: CLS = global, patch
tokens = regions), the same trainable text encoder (the offline MiniLM, eager attention so that
the attention-weighted methods can run; GLoRIA wraps it in its ``GLoRIATextEncoder``) and the
same batch of ``--batch`` studies (``--paired-fraction`` of them paired; one image and one report
with its rule-extracted evidence phrases per study).

Timing is interleaved: all models of a setting are built, then ``--rounds`` rounds each run
``--steps`` timed steps of every method (the order rotates every round), so that a slow phase of
a shared machine hits every method alike. Reported: the median step time, images/s, the ratio of
each method to its reference measured in the same run, and the target where there is one:

- ``lgdea`` vs ``clip_ev`` (CLIP on the same evidence phrases): <= 1.10x;
- ``gloria`` and ``mgca`` vs ``clip`` (CLIP on the raw report, max 112 tokens): <= 1.3x.

Peak memory of a method is its own training state (parameters + optimizer state, counted from
the tensors) plus the largest increase during one of its steps: on CUDA the increase of
``torch.cuda.max_memory_allocated`` over the allocation before the step (exact); on CPU the
increase of the process resident set size, sampled every millisecond by a thread (an
approximation, labelled ``rss_sampled``). So the models that sit idle between their turns do
not count against the one being measured.

FLOPs of one step (forward + backward, matmul/conv/attention only) are counted once per method
with ``torch.utils.flop_counter.FlopCounterMode`` in an untimed step; achieved FLOP/s and, on a
GPU in the ``ThroughputHook`` peak table, MFU follow from the median step time.

Settings (``--settings``): ``tiny64`` (the demo-size ViT, 128-d, 4 layers, patch 8, 64 px,
1 channel), ``vits224`` (ViT-S/16, DeiT-small) and ``vitb224`` (ViT-B/16), both 224 px,
3 channels (the preprocessor repeats the grayscale channel).

Speed options (docs/get_started.md, "Speed options"), each the config switch it names:
``--amp`` (bf16 autocast, ``AutocastOptimWrapper`` as ``tools/train.py --amp``; also on the
CPU), ``--grad-checkpointing`` (``image_encoder.gradient_checkpointing``), ``--compile
[BACKEND]`` (``torch_compile`` of the image and text encoders; inductor by default; the
compilation happens in the warm-up steps, so give ``--warmup`` >= 2) and
``--attention-impl`` (LGDEA's ``neck.attention_impl``, default ``sdpa``).

Usage::

    PYTHONPATH=. python benchmarks/bench_baselines_step.py                      # CPU, tiny64
    PYTHONPATH=. python benchmarks/bench_baselines_step.py --device cuda --amp \\
        --settings vitb224 --batch 128 --out step.json
    PYTHONPATH=. python benchmarks/bench_baselines_step.py --methods clip mgca --settings tiny64
"""
import argparse
import importlib
import json
import os
import statistics
import sys
import threading
import time
from typing import Callable, Dict, List, Optional

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
    vitb224=dict(img_size=224, in_channels=3,
                 backbone=dict(type='mmpretrain.VisionTransformer', arch='b',
                               img_size=224, patch_size=16, in_channels=3, out_type='raw')),
)

TEXT_ENCODER = dict(type='HFTextEncoder', name_or_path='builtin:all-MiniLM-L6-v2',
                    pooling='mean', attn_implementation='eager')

#: method -> (reference method, target ratio of method / reference). The reference runs in the
#: same process and the same rounds.
TARGETS = dict(lgdea=('clip_ev', 1.10), gloria=('clip', 1.3), mgca=('clip', 1.3))
#: methods that refuse unpaired studies in a batch.
PAIRED_ONLY = ('gloria', 'mgca')
#: method -> reference without a target (printed for context only).
REFERENCES = dict(clip_ev='clip')


def _preprocessor(setting: dict) -> dict:
    return dict(type='VLDataPreprocessor', mean=[127.5], std=[127.5],
                channels=setting['in_channels'])


def clip_cfg(image_encoder: dict, text_encoder: dict, setting: dict) -> dict:
    """CLIP on the raw report (max 112 tokens)."""
    return dict(type='CLIPBaseline', image_encoder=image_encoder, text_encoder=text_encoder,
                embed_dims=128, projection='mlp', max_text_length=112,
                data_preprocessor=_preprocessor(setting))


def clip_ev_cfg(image_encoder: dict, text_encoder: dict, setting: dict) -> dict:
    """CLIP on the report's evidence phrases (mean of the phrase embeddings)."""
    cfg = clip_cfg(image_encoder, text_encoder, setting)
    cfg.update(text_source='evidence', max_phrase_length=32)
    return cfg


def lgdea_cfg(image_encoder: dict, text_encoder: dict, setting: dict) -> dict:
    """LGDEA as configs/_base_/models/lgdea_vitb.py (64 queries, 64 prototypes, d = 256)."""
    return dict(
        type='LGDEA', image_encoder=image_encoder, text_encoder=text_encoder,
        neck=dict(type='LesionQueryNeck', num_queries=64, num_layers=1, num_heads=8),
        head=dict(type='DiagnosticPrototypeHead', num_prototypes=64, tau_t=0.1, tau_p=0.1),
        propagation=dict(type='EvidencePropagation', steps=2, tau_g=0.1, min_mass=1e-3),
        lesion_loss=dict(type='LesionConsistencyLoss', knn_k=5, tau_w=0.1),
        embed_dims=256, max_phrases=8, max_phrase_length=32,
        data_preprocessor=_preprocessor(setting))


def gloria_cfg(image_encoder: dict, text_encoder: dict, setting: dict) -> dict:
    """GLoRIA (official variant) on the shared ViT: CLS = global, patch tokens = regions."""
    importlib.import_module('projects.gloria.gloria')
    return dict(
        type='GLoRIA',
        image_encoder=dict(type='GLoRIAImageEncoder', backbone=image_encoder['backbone'],
                           embed_dims=128, input_size=None,
                           **{k: v for k, v in image_encoder.items()
                              if k in ('gradient_checkpointing', 'torch_compile')}),
        text_encoder=dict(type='GLoRIATextEncoder', encoder=text_encoder, last_n_layers=4,
                          embed_dims=128),
        variant='official', max_text_length=97, max_phrase_length=97,
        data_preprocessor=_preprocessor(setting))


def mgca_cfg(image_encoder: dict, text_encoder: dict, setting: dict) -> dict:
    """MGCA (projects/mgca)."""
    importlib.import_module('projects.mgca.mgca')
    return dict(type='MGCA', image_encoder=image_encoder, text_encoder=text_encoder,
                embed_dims=128, hidden_dims=2048, max_text_length=112,
                data_preprocessor=_preprocessor(setting))


#: method name -> model config builder ``(image_encoder, text_encoder, setting) -> config``.
METHODS: Dict[str, Callable[[dict, dict, dict], dict]] = dict(
    clip=clip_cfg, clip_ev=clip_ev_cfg, lgdea=lgdea_cfg, gloria=gloria_cfg, mgca=mgca_cfg)

_FINDINGS = ['small left pleural effusion', 'mild cardiomegaly', 'right basal atelectasis',
             'patchy consolidation in the right lower lobe', 'mild pulmonary edema',
             'no pneumothorax', 'stable mediastinal contours', 'left apical opacity']


def make_batch(setting: dict, n: int = BATCH, paired_fraction: float = 1.0,
               seed: int = 0) -> dict:
    """``vl_collate``-style batch of ``n`` studies: random uint8 grayscale images, ~60-token
    reports and their evidence phrases (``RuleEvidenceExtractor``); the first
    ``round(paired_fraction * n)`` studies are paired, the others unpaired."""
    from mmpretrain.structures import DataSample

    from lgdea.evidence import RuleEvidenceExtractor
    g = torch.Generator().manual_seed(seed)
    size = setting['img_size']
    images = torch.randint(0, 256, (n, 1, size, size), generator=g, dtype=torch.uint8)
    extractor = RuleEvidenceExtractor()
    n_paired = int(round(paired_fraction * n))
    samples = []
    for i in range(n):
        idx = torch.randperm(len(_FINDINGS), generator=g)[:4].tolist()
        ds = DataSample()
        ds.study_id, ds.paired = f's{i}', i < n_paired
        ds.text = ('FINDINGS: ' + '. '.join(_FINDINGS[j] for j in idx) +
                   '. IMPRESSION: ' + _FINDINGS[idx[0]] + ', compared with the prior study.')
        ds.evidence = list(extractor.extract(ds.text).phrases)
        samples.append(ds)
    return dict(inputs=images, data_samples=samples, reports=samples)


def check_device(device: str, amp: bool) -> None:
    """Refuse option combinations that cannot run here, naming the option to change."""
    if device not in ('cpu', 'cuda'):
        raise SystemExit(f'--device must be cpu or cuda, got {device!r}')
    if device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: torch sees no CUDA device here; run on a GPU machine '
                         'or pass --device cpu')
    if amp and device == 'cuda' and not torch.cuda.is_bf16_supported():
        raise SystemExit(f'--amp: {torch.cuda.get_device_name()} does not support bf16; '
                         'drop --amp')


def speed_options(args) -> dict:
    """The speed options of the command line as config values: ``image`` / ``text`` encoder
    keys and the LGDEA neck's ``attention_impl``."""
    if args.compile is None:
        compile_cfg = False
    elif args.compile == 'inductor':
        compile_cfg = True
    else:
        compile_cfg = dict(backend=args.compile)
    image = dict(gradient_checkpointing=args.grad_checkpointing, torch_compile=compile_cfg)
    return dict(image=image, text=dict(torch_compile=compile_cfg),
                attention_impl=args.attention_impl)


def build_method_cfg(name: str, setting_name: str, options: Optional[dict] = None) -> dict:
    """The model config of ``name`` at a setting, with the speed ``options``
    (:func:`speed_options`; None = all off)."""
    setting = SETTINGS[setting_name]
    options = options or dict(image={}, text={}, attention_impl='sdpa')
    image_encoder = dict(type='CXRImageEncoder', backbone=dict(setting['backbone']),
                         **options['image'])
    cfg = METHODS[name](image_encoder, dict(TEXT_ENCODER, **options['text']), setting)
    if 'neck' in cfg:
        cfg['neck'] = dict(cfg['neck'], attention_impl=options['attention_impl'])
    return cfg


def device_name(device: str) -> str:
    """GPU name, or ``cpu xN`` (torch threads)."""
    return (torch.cuda.get_device_name() if device == 'cuda' else
            f'cpu x{torch.get_num_threads()}')


class RSSPeak:
    """Peak resident set size (bytes) of this process while the context is open, sampled by a
    thread every ``interval`` seconds from ``/proc/self/statm`` (Linux); ``peak`` stays None
    where that file does not exist."""

    def __init__(self, interval: float = 1e-3):
        self.interval = interval
        self.peak: Optional[int] = None
        self._page = os.sysconf('SC_PAGE_SIZE') if hasattr(os, 'sysconf') else 4096

    def _rss(self) -> Optional[int]:
        try:
            with open('/proc/self/statm') as f:
                return int(f.read().split()[1]) * self._page
        except OSError:
            return None

    def __enter__(self):
        self.start = self._rss()
        self.peak = self.start
        self._stop = threading.Event()
        if self.start is not None:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self):
        while not self._stop.wait(self.interval):
            rss = self._rss()
            if rss is not None and rss > self.peak:
                self.peak = rss

    def __exit__(self, *exc):
        self._stop.set()
        if self.start is not None:
            self._thread.join()
            rss = self._rss()
            if rss is not None and rss > self.peak:
                self.peak = rss


def _state_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Bytes of parameters, buffers and optimizer state (gradients are freed by zero_grad)."""
    seen, total = set(), 0
    tensors = list(model.parameters()) + list(model.buffers())
    for state in optimizer.state.values():
        tensors += [v for v in state.values() if torch.is_tensor(v)]
    for t in tensors:
        key = t.data_ptr()
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    return total


class Runner:
    """One method built for timing: model, optim wrapper, the shared batch."""

    def __init__(self, name: str, setting_name: str, device: str, amp: bool, batch: dict,
                 options: Optional[dict] = None):
        from mmengine.optim import OptimWrapper

        from lgdea.engine.optimizers import AutocastOptimWrapper
        from lgdea.registry import MODELS
        cfg = build_method_cfg(name, setting_name, options)
        torch.manual_seed(0)
        self.name, self.device, self.batch = name, device, batch
        self.model = MODELS.build(cfg).to(device)
        self.model.train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-5)
        self.wrapper = (AutocastOptimWrapper(optimizer=self.optimizer, dtype='bfloat16') if amp
                        else OptimWrapper(optimizer=self.optimizer))
        self.times: List[float] = []
        self.peak_step_bytes = 0
        self.loss = float('nan')
        self.flops: Optional[float] = None

    def _sync(self):
        if self.device == 'cuda':
            torch.cuda.synchronize()

    def step(self, timed: bool) -> None:
        """One train step; timed steps record their time and the memory increase."""
        self._sync()
        if self.device == 'cuda':
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            log_vars = self.model.train_step(self.batch, self.wrapper)
            self._sync()
            dt = time.perf_counter() - t0
            increase = torch.cuda.max_memory_allocated() - before
        else:
            with RSSPeak() as rss:
                t0 = time.perf_counter()
                log_vars = self.model.train_step(self.batch, self.wrapper)
                dt = time.perf_counter() - t0
            increase = (rss.peak - rss.start) if rss.start is not None else 0
        loss = log_vars['loss']
        self.loss = float(loss.detach() if torch.is_tensor(loss) else loss)
        if timed:
            self.times.append(dt)
            self.peak_step_bytes = max(self.peak_step_bytes, increase)

    def count_flops(self) -> None:
        """FLOPs of one (untimed) train step, forward + backward."""
        from torch.utils.flop_counter import FlopCounterMode
        counter = FlopCounterMode(display=False)
        with counter:
            self.model.train_step(self.batch, self.wrapper)
        self.flops = float(counter.get_total_flops())

    def row(self, setting: str, peak_flops: Optional[float]) -> dict:
        """The result row of this method."""
        median = statistics.median(self.times)
        n = len(self.batch['inputs'])
        peak_mb = (_state_bytes(self.model, self.optimizer) + self.peak_step_bytes) / 2**20
        row = dict(method=self.name, setting=setting, batch=n, steps=len(self.times),
                   median_s=median, min_s=min(self.times), images_per_s=n / median,
                   peak_mem_mb=peak_mb,
                   peak_mem_kind=('cuda_allocated' if self.device == 'cuda' else 'rss_sampled'),
                   loss=self.loss,
                   params_m=sum(p.numel() for p in self.model.parameters()) / 1e6,
                   flops_per_step=self.flops, achieved_tflops=None, mfu=None)
        if self.flops is not None:
            row['achieved_tflops'] = self.flops / median / 1e12
            if peak_flops:
                row['mfu'] = self.flops / median / peak_flops
        return row


def _import_ok(name: str, setting: str) -> Optional[str]:
    """None when the method's config builds its imports, else the reason."""
    try:
        build_method_cfg(name, setting)
    except ImportError as e:
        return str(e)
    return None


def run_setting(setting: str, methods: List[str], args) -> List[dict]:
    """Build every method of a setting, time them interleaved, return their rows."""
    from lgdea.engine.hooks.throughput_hook import peak_flops_for
    batch = make_batch(SETTINGS[setting], args.batch, args.paired_fraction)
    runners = []
    for name in methods:
        reason = _import_ok(name, setting)
        if reason is not None:  # a plugin that is not in this checkout
            print(f'[skip] {name}: {reason}', file=sys.stderr)
            continue
        runners.append(Runner(name, setting, args.device, args.amp, batch, speed_options(args)))
    for r in runners:
        for _ in range(args.warmup):
            r.step(timed=False)
        if args.flops:
            r.count_flops()
    for k in range(args.rounds):
        order = runners[k % len(runners):] + runners[:k % len(runners)]
        for r in order:
            for _ in range(args.steps):
                r.step(timed=True)
    peak = peak_flops_for(torch.cuda.get_device_name()) if args.device == 'cuda' else None
    rows = [r.row(setting, peak) for r in runners]
    add_ratios(rows)
    del runners
    if args.device == 'cuda':
        torch.cuda.empty_cache()
    return rows


def add_ratios(rows: List[dict]) -> None:
    """Fill ``reference``, ``ratio``, ``target`` and ``meets_target`` of each row from the
    other rows of its setting (same run)."""
    by_name = {r['method']: r for r in rows}
    for r in rows:
        ref, target = TARGETS.get(r['method'], (REFERENCES.get(r['method']), None))
        r.update(reference=None, ratio=None, target=None, meets_target=None)
        if ref is not None and ref in by_name:
            r.update(reference=ref, ratio=r['median_s'] / by_name[ref]['median_s'],
                     target=target)
            if target is not None:
                r['meets_target'] = bool(r['ratio'] <= target)


def with_references(methods: List[str]) -> List[str]:
    """``methods`` plus the references their ratios need, references first."""
    out: List[str] = []
    for m in methods:
        ref = TARGETS.get(m, (REFERENCES.get(m), None))[0]
        for name in ([ref] if ref else []) + [m]:
            if name not in out:
                out.append(name)
    order = ['clip', 'clip_ev']
    return sorted(out, key=lambda n: (order.index(n) if n in order else len(order)))


def format_table(rows: List[dict]) -> str:
    """The printed table (one line per method and setting)."""
    head = (f'{"setting":<8} {"method":<8} {"params(M)":>9} {"step(ms)":>9} {"img/s":>8} '
            f'{"peak MB":>8} {"TFLOP/s":>8} {"MFU":>6}  ratio (target)')
    lines = [head]
    for r in rows:
        ratio = ''
        if r['ratio'] is not None:
            ratio = f'{r["ratio"]:.2f}x {r["reference"]}'
            if r['target'] is not None:
                ok = 'OK' if r['meets_target'] else 'MISSED'
                ratio += f' (<= {r["target"]:.2f}x: {ok})'
        tflops = '' if r['achieved_tflops'] is None else f'{r["achieved_tflops"]:.3f}'
        mfu = '' if r['mfu'] is None else f'{100 * r["mfu"]:.1f}%'
        lines.append(f'{r["setting"]:<8} {r["method"]:<8} {r["params_m"]:>9.1f} '
                     f'{1000 * r["median_s"]:>9.1f} {r["images_per_s"]:>8.1f} '
                     f'{r["peak_mem_mb"]:>8.0f} {tflops:>8} {mfu:>6}  {ratio}')
    return '\n'.join(lines)


def build_parser(default_methods: List[str], description: str) -> argparse.ArgumentParser:
    """Command line shared with ``bench_lgdea_step.py``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument('--methods', nargs='+', default=default_methods,
                   help=f'methods to time (known: {sorted(METHODS)}); the references of their '
                   'ratios (clip, clip_ev) are added')
    p.add_argument('--settings', nargs='+', default=['tiny64'], choices=list(SETTINGS))
    p.add_argument('--batch', type=int, default=BATCH, help='studies per batch')
    p.add_argument('--paired-fraction', type=float, default=1.0,
                   help='share of the batch that is paired, the rest unpaired (below 1 only for '
                   f'methods that take unpaired studies: not {sorted(PAIRED_ONLY)})')
    p.add_argument('--device', default='cpu', help='cpu or cuda')
    p.add_argument('--amp', action='store_true',
                   help='bf16 autocast, no loss scaling (AutocastOptimWrapper, as tools/train.py '
                   '--amp; CUDA or CPU)')
    p.add_argument('--grad-checkpointing', action='store_true',
                   help='activation checkpointing of the ViT blocks (image_encoder.'
                   'gradient_checkpointing)')
    p.add_argument('--compile', nargs='?', const='inductor', default=None, metavar='BACKEND',
                   help='torch.compile the image and text encoders (encoder torch_compile); '
                   'BACKEND defaults to inductor (e.g. aot_eager)')
    p.add_argument('--attention-impl', choices=['sdpa', 'explicit'], default='sdpa',
                   help="LGDEA's LesionQueryNeck attention (neck.attention_impl; default sdpa)")
    p.add_argument('--steps', type=int, default=3, help='timed steps per method and round')
    p.add_argument('--rounds', type=int, default=3, help='interleaved rounds')
    p.add_argument('--warmup', type=int, default=2, help='untimed steps per method')
    p.add_argument('--no-flops', dest='flops', action='store_false',
                   help='skip the FLOP count (one extra untimed step per method)')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--out', '--json', dest='out', help='write the results as JSON here')
    return p


def main(argv=None, default_methods=('clip', 'clip_ev', 'lgdea', 'gloria', 'mgca'),
         description: str = __doc__.split('\n')[0]) -> int:
    args = build_parser(list(default_methods), description).parse_args(argv)
    check_device(args.device, args.amp)
    for opt in ('batch', 'steps', 'rounds'):
        if getattr(args, opt) < 1:
            raise SystemExit(f'--{opt} must be >= 1, got {getattr(args, opt)}')
    if not 0.0 < args.paired_fraction <= 1.0:
        raise SystemExit(f'--paired-fraction must be in (0, 1], got {args.paired_fraction}')
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        raise SystemExit(f'--methods: unknown {unknown}; known: {sorted(METHODS)}')
    paired_only = [m for m in args.methods if m in PAIRED_ONLY]
    if args.paired_fraction < 1.0 and paired_only:
        raise SystemExit(f'--paired-fraction {args.paired_fraction}: {paired_only} train on '
                         'image-report pairs only; drop them from --methods or use 1.0')
    if args.threads:
        torch.set_num_threads(args.threads)
    from lgdea.utils import register_all_modules
    register_all_modules()
    methods = with_references(args.methods)
    rows = []
    for setting in args.settings:
        rows += run_setting(setting, methods, args)
    dev = device_name(args.device)
    print(f'\ntrain step, batch {args.batch} ({args.paired_fraction:.0%} paired), device {dev}, '
          f'amp={args.amp}, grad_checkpointing={args.grad_checkpointing}, '
          f'compile={args.compile}, attention_impl={args.attention_impl}, '
          f'median of {args.rounds} interleaved rounds x {args.steps} steps')
    print(format_table(rows))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(benchmark='train_step', device=dev, amp=args.amp,
                           grad_checkpointing=args.grad_checkpointing, compile=args.compile,
                           attention_impl=args.attention_impl,
                           batch=args.batch, paired_fraction=args.paired_fraction,
                           rounds=args.rounds, steps=args.steps, rows=rows), f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
