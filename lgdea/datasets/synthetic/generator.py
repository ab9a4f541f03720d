"""Study sampling per split, rendering and the on-disk cache of the synthetic benchmark.

Seeding: every random quantity comes from its own ``SeedSequence(seed, spawn_key=...)``:

==================================  ==========================================================
``(split, 0, subject)``             the subject's anatomy (shared by all their images)
``(split, 1, study)``               view, findings and devices of the study
``(split, 2, study, image)``        pose, exposure, finding jitter, marker, noise of one image
``(split, 3)``                      the split plan (subjects, classes, subsets, fractions)
``(split, 4, study)``               the report text (text knobs never change the images)
==================================  ==========================================================

Cache layout (``root = <cache_dir>/synthetic_cxr_<config hash>``)::

    root/<split>.json                 index: config, classes, one entry per study
    root/images/<split>/<study_id>_<k>.png

A split is generated on first use (with a tqdm bar) and found again afterwards; the index is
written last and atomically, under a file lock, so parallel ranks never see half a cache.
"""
import collections
import concurrent.futures
import contextlib
import json
import math
import os
import os.path as osp
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from .anatomy import sample_image_jitter, sample_subject_anatomy
from .config import (CLS_BINARY_CLASSES, CLS_MULTICLASS_CLASSES, CLS_SPLITS, FINDING_KEYS,
                     GENERATOR_VERSION, KEY_TO_CLASS, RETRIEVAL_CLASSES, SPLIT_CODES, SPLITS,
                     SYNTHETIC_CLASSES, CLASS_TO_KEY, SyntheticCXRConfig, source_fingerprint)
from .confounders import device_probability, jitter_devices, sample_devices, sample_marker
from .findings import jitter_geometry, sample_finding
from .render import default_workers, render_images
from .report import grounding_phrase, write_report
from .rng import categorical, make_rng as _rng, sample_without_replacement

#: How many times each split was rendered in this process (tests check cache reuse with it).
GENERATION_COUNT: collections.Counter = collections.Counter()

#: Classes (``metainfo['classes']``) of each split.
SPLIT_CLASSES: Dict[str, Tuple[str, ...]] = dict(
    pretrain=SYNTHETIC_CLASSES, retrieval=RETRIEVAL_CLASSES, grounding=SYNTHETIC_CLASSES,
    cls_binary=CLS_BINARY_CLASSES, cls_multiclass=CLS_MULTICLASS_CLASSES,
    cls_multilabel=SYNTHETIC_CLASSES)

#: Non-pneumonia findings that may appear in the negatives of the binary set.
_BINARY_NEGATIVE_FINDINGS = ('atelectasis', 'cardiomegaly', 'edema', 'pleural_effusion',
                             'pneumothorax')


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f'synthetic CXR: unknown split {split!r}; use one of {list(SPLITS)}.')


class SyntheticCXRGenerator:
    """Deterministic generator (and cache) of the synthetic CXR benchmark.

    Args:
        config: a :class:`SyntheticCXRConfig`, a dict of its fields, or None (defaults).
        cache_dir: directory holding ``synthetic_cxr_<hash>/``; None renders in memory only
            (:meth:`iter_split`), and :meth:`load_index` then raises.
        show_progress: show a tqdm bar while rendering.
        **overrides: config fields (``num_studies=40, image_size=32``).

    Example::

        gen = SyntheticCXRGenerator(dict(num_studies=200), cache_dir='data/synthetic_cxr')
        index = gen.load_index('pretrain')          # renders once, then reads the cache
        for study, images, boxes in gen.iter_split('retrieval'):   # in memory, no files
            ...
    """

    def __init__(self, config: Union[SyntheticCXRConfig, dict, None] = None,
                 cache_dir: Optional[str] = None, show_progress: bool = True, **overrides):
        if isinstance(config, SyntheticCXRConfig):
            cfg = config.to_dict()
        elif config is None:
            cfg = {}
        elif isinstance(config, dict):
            cfg = dict(config)
        else:
            raise TypeError('SyntheticCXRGenerator: config must be a SyntheticCXRConfig, a dict '
                            f'or None, got {type(config).__name__}.')
        cfg.update(overrides)
        unknown = set(cfg) - set(SyntheticCXRConfig.field_names())
        if unknown:
            raise ValueError(f'SyntheticCXRGenerator: unknown generator options {sorted(unknown)}; '
                             f'valid: {list(SyntheticCXRConfig.field_names())}.')
        self.cfg = SyntheticCXRConfig(**cfg)
        self.config_hash = self.cfg.config_hash()
        self.cache_dir = cache_dir
        self.show_progress = show_progress
        self._anatomy_cache: Dict[Tuple[int, int], dict] = {}

    # ------------------------------------------------------------------ paths
    @property
    def root(self) -> str:
        if self.cache_dir is None:
            raise ValueError('SyntheticCXRGenerator: no cache_dir given; pass cache_dir= to '
                             'write / read the cache, or use iter_split() for in-memory images.')
        return osp.join(self.cache_dir, f'synthetic_cxr_{self.config_hash}')

    def index_path(self, split: str) -> str:
        return osp.join(self.root, f'{split}.json')

    # ------------------------------------------------------------------ plans
    def _random_findings(self, rng, exclude=()) -> List[dict]:
        cfg = self.cfg
        n = categorical(rng, cfg.findings_count_probs)
        keys = [k for k in FINDING_KEYS if k not in exclude]
        out = []
        for c in sample_without_replacement(rng, cfg.class_probabilities(keys), n):
            pattern = 'peripheral' if keys[c] == 'pneumonia' and rng.random() < 0.15 else 'focal'
            out.append(dict(category=keys[c], pattern=pattern))
        return out

    def plan(self, split: str) -> List[dict]:
        """Study plans of ``split``: subject index, forced findings, images and label fields.

        ``forced`` is a list of ``dict(category, severity=None, side=None, pattern)`` or None
        (findings drawn from ``findings_count_probs`` / ``class_weights`` in the study rng).
        """
        _check_split(split)
        cfg = self.cfg
        code = SPLIT_CODES[split]
        rng = _rng(cfg.seed, code, 3)
        plans: List[dict] = []
        if split == 'pretrain':
            subject = 0
            while len(plans) < cfg.num_studies:
                for _ in range(int(rng.integers(1, cfg.max_studies_per_subject + 1))):
                    if len(plans) < cfg.num_studies:
                        plans.append(dict(subject=subject, forced=None, images=categorical(
                            rng, cfg.images_per_study_probs) + 1))
                subject += 1
            return self._number(plans)
        if split == 'retrieval':
            for label, name in enumerate(RETRIEVAL_CLASSES):
                for _ in range(cfg.retrieval_per_class):
                    plans.append(dict(forced=[dict(category=CLASS_TO_KEY[name])], gt_label=label))
        elif split == 'grounding':
            for key in FINDING_KEYS:
                for _ in range(cfg.grounding_per_class):
                    forced = [dict(category=key)]
                    if rng.random() < 0.3:
                        others = [k for k in FINDING_KEYS if k != key]
                        forced.append(dict(category=others[int(rng.integers(len(others)))]))
                    plans.append(dict(forced=sorted(forced, key=lambda f: f['category'])))
        elif split == 'cls_binary':
            n_pos = cfg.cls_binary_size // 2
            for k in range(cfg.cls_binary_size):
                if k < n_pos:
                    forced = [dict(category='pneumonia')]
                    if rng.random() < 0.3:
                        forced.append(dict(category=_BINARY_NEGATIVE_FINDINGS[int(rng.integers(
                            len(_BINARY_NEGATIVE_FINDINGS)))]))
                    label = 1
                else:
                    forced = []
                    if rng.random() < 0.3:
                        forced.append(dict(category=_BINARY_NEGATIVE_FINDINGS[int(rng.integers(
                            len(_BINARY_NEGATIVE_FINDINGS)))]))
                    label = 0
                plans.append(dict(forced=sorted(forced, key=lambda f: f['category']),
                                  gt_label=label))
        elif split == 'cls_multiclass':
            for k in range(cfg.cls_multiclass_size):
                label = k % 3
                forced = [[], [dict(category='pneumonia', side=('right', 'left')[
                    int(rng.integers(2))])], [dict(category='pneumonia',
                                                   pattern='peripheral')]][label]
                plans.append(dict(forced=forced, gt_label=label))
        elif split == 'cls_multilabel':
            plans = [dict(forced=None) for _ in range(cfg.cls_multilabel_size)]
        order = rng.permutation(len(plans))
        plans = [plans[i] for i in order]
        subject = 0
        k = 0
        while k < len(plans):  # classification sets: 1-2 studies per subject; others: 1
            take = int(rng.integers(1, 3)) if split in CLS_SPLITS else 1
            for plan in plans[k:k + take]:
                plan['subject'] = subject
                plan['images'] = 1
            k += take
            subject += 1
        if split in CLS_SPLITS:
            self._assign_subsets(plans, rng, subject)
        return self._number(plans)

    @staticmethod
    def _number(plans: List[dict]) -> List[dict]:
        for i, plan in enumerate(plans):
            plan['study'] = i
        return plans

    def _assign_subsets(self, plans: List[dict], rng, num_subjects: int) -> None:
        """Patient-level train/val/test split and nested train-fraction order."""
        fractions = self.cfg.cls_split_fractions
        subjects = rng.permutation(num_subjects)
        n_train = int(round(fractions[0] * num_subjects))
        n_val = int(round(fractions[1] * num_subjects))
        subset_of = {}
        for rank, s in enumerate(subjects):
            subset_of[int(s)] = ('train' if rank < n_train else
                                 'val' if rank < n_train + n_val else 'test')
        for plan in plans:
            plan['subset'] = subset_of[plan['subject']]
        groups: Dict[int, List[dict]] = collections.defaultdict(list)
        for plan in plans:
            if plan['subset'] == 'train':
                groups[plan.get('gt_label', -1)].append(plan)
        for members in groups.values():
            for rank, idx in enumerate(rng.permutation(len(members))):
                members[int(idx)]['train_order'] = rank
                members[int(idx)]['train_group_size'] = len(members)

    # ------------------------------------------------------------------ studies
    def _anatomy(self, code: int, subject: int) -> dict:
        key = (code, subject)
        if key not in self._anatomy_cache:
            self._anatomy_cache[key] = sample_subject_anatomy(
                _rng(self.cfg.seed, code, 0, subject), self.cfg.anatomy_jitter)
        return self._anatomy_cache[key]

    def build_study(self, split: str, plan: dict) -> dict:
        """Everything about one study except its pixels (``specs`` are the image specs)."""
        cfg = self.cfg
        code = SPLIT_CODES[split]
        rng = _rng(cfg.seed, code, 1, plan['study'])
        if plan['forced'] is None:
            forced = self._random_findings(rng)
        else:
            forced = plan['forced']
        findings = [sample_finding(f['category'], rng, cfg.severity_probs, cfg.bilateral_rate,
                                   severity=f.get('severity'), side=f.get('side'),
                                   pattern=f.get('pattern', 'focal')) for f in forced]
        abnormal = bool(findings)
        corr = cfg.confounder_correlation
        view = 'AP' if rng.random() < device_probability(cfg.ap_view_rate, corr, abnormal) \
            else 'PA'
        devices = sample_devices(rng, cfg.device_rate, corr, abnormal)
        text_rng = _rng(cfg.seed, code, 4, plan['study'])
        report = write_report(findings, view, devices, text_rng, cfg,
                              allow_uncertain=split != 'retrieval')
        for finding, mention in zip(findings, report['mentions']):
            finding.update(mention)
            finding['grounding_phrase'] = grounding_phrase(finding, text_rng)
        subject_id = f'p{code}{plan["subject"]:07d}'
        study_id = f's{code}{plan["study"]:07d}'
        anatomy = self._anatomy(code, plan['subject'])
        specs, images = [], []
        for k in range(plan['images']):
            irng = _rng(cfg.seed, code, 2, plan['study'], k)
            params = sample_image_jitter(anatomy, irng, view, cfg.pose_jitter,
                                         cfg.contrast_jitter)
            spec = dict(params=params, field_seed=int(irng.integers(2**62)), view=view,
                        findings=[jitter_geometry(f, irng) for f in findings],
                        devices=jitter_devices(devices, irng),
                        marker=sample_marker(irng, view, cfg.marker_rate))
            specs.append(spec)
            images.append(dict(image_id=f'{study_id}_{k}',
                               img_path=osp.join('images', split, f'{study_id}_{k}.png'),
                               marker=spec['marker']['text'] if spec['marker'] else None))
        labels = [int(any(f['category'] == key for f in findings)) for key in FINDING_KEYS]
        study = dict(study_id=study_id, subject_id=subject_id, view=view,
                     report=report['text'], labels=labels,
                     findings=[{k: v for k, v in f.items() if k != 'geo'} for f in findings],
                     negated=report['negated'], hedged_absent=report['hedged_absent'],
                     devices=[d['type'] for d in devices], images=images, specs=specs)
        for key in ('gt_label', 'subset', 'train_order', 'train_group_size'):
            if key in plan:
                study[key] = plan[key]
        return study

    def studies(self, split: str) -> List[dict]:
        """All studies of ``split`` (no pixels), in study-id order."""
        return [self.build_study(split, plan) for plan in self.plan(split)]

    def render_study(self, study: dict, with_findings: bool = True):
        """Images (uint8 ``[k, S, S]``) and per-finding boxes of one study, in memory."""
        (_, images, boxes), = render_images(study['specs'], self.cfg.image_size,
                                            self.cfg.signal_strength, self.cfg.noise_std,
                                            with_findings, batch_size=len(study['specs']))
        return images, boxes

    def iter_split(self, split: str, studies: Optional[List[dict]] = None
                   ) -> Iterator[Tuple[dict, np.ndarray, List[List[np.ndarray]]]]:
        """Yield ``(study, images [k, S, S], boxes)`` for every study, rendered in memory."""
        studies = self.studies(split) if studies is None else studies
        flat = [(si, k) for si, s in enumerate(studies) for k in range(len(s['specs']))]
        specs = [studies[si]['specs'][k] for si, k in flat]
        pending: Dict[int, list] = collections.defaultdict(list)
        bar = self._progress(len(specs), split)
        next_study = 0
        for start, images, boxes in render_images(specs, self.cfg.image_size,
                                                  self.cfg.signal_strength, self.cfg.noise_std):
            for offset in range(len(images)):
                si, k = flat[start + offset]
                pending[si].append((images[offset], boxes[offset]))
            bar.update(len(images))
            while next_study < len(studies) and len(pending[next_study]) == len(
                    studies[next_study]['specs']):
                parts = pending.pop(next_study)
                yield studies[next_study], np.stack([p[0] for p in parts]), [p[1] for p in parts]
                next_study += 1
        bar.close()

    def _progress(self, total: int, split: str):
        from tqdm import tqdm
        return tqdm(total=total, desc=f'synthetic CXR [{split}]', unit='img',
                    disable=not self.show_progress, leave=False)

    # ------------------------------------------------------------------ cache
    def is_cached(self, split: str) -> bool:
        """True when the split's index exists for this config and all its images are on disk."""
        return self._valid_index(split) is not None

    def _valid_index(self, split: str) -> Optional[dict]:
        """The cached index of ``split`` when it is complete and matches this config."""
        path = self.index_path(split)
        if not osp.isfile(path):
            return None
        try:
            with open(path, 'r', encoding='utf-8') as f:
                index = json.load(f)
        except (OSError, json.JSONDecodeError):
            return None
        if index.get('config_hash') != self.config_hash or not index.get('complete'):
            return None
        root = self.root
        if not all(osp.isfile(osp.join(root, img['img_path']))
                   for study in index['studies'] for img in study['images']):
            return None
        return index

    def generate(self, split: str, force: bool = False) -> dict:
        """Render ``split`` into the cache unless it is already there; returns the index."""
        _check_split(split)
        os.makedirs(self.root, exist_ok=True)
        with _file_lock(osp.join(self.root, f'.{split}.lock')):
            index = None if force else self._valid_index(split)
            if index is not None:
                return index
            from PIL import Image
            GENERATION_COUNT[split] += 1
            os.makedirs(osp.join(self.root, 'images', split), exist_ok=True)
            studies = self.studies(split)
            entries = []

            def write(items):  # PIL's encoder releases the GIL: PNGs are written in threads
                for path, img in items:
                    Image.fromarray(img).save(path, format='PNG', compress_level=4)

            # the index is written last: a crash before it leaves no index and the split is
            # rendered again, so the PNGs need no atomic rename
            with concurrent.futures.ThreadPoolExecutor(default_workers()) as pool:
                jobs, chunk = [], []
                for study, images, boxes in self.iter_split(split, studies):
                    for img, img_boxes, meta in zip(images, boxes, study['images']):
                        meta['boxes'] = [b.round(2).tolist() for b in img_boxes]
                        chunk.append((osp.join(self.root, meta['img_path']), img))
                    if len(chunk) >= 64:
                        jobs.append(pool.submit(write, chunk))
                        chunk = []
                    entries.append({k: v for k, v in study.items() if k != 'specs'})
                jobs.append(pool.submit(write, chunk))
                for job in jobs:
                    job.result()
            index = dict(version=GENERATOR_VERSION, source=source_fingerprint(),
                         config_hash=self.config_hash,
                         config=self.cfg.to_dict(), split=split,
                         classes=list(SPLIT_CLASSES[split]), image_size=self.cfg.image_size,
                         num_images=sum(len(s['images']) for s in entries), complete=True,
                         studies=entries)
            tmp = self.index_path(split) + '.tmp'
            with open(tmp, 'w', encoding='utf-8') as f:
                json.dump(index, f)
            os.replace(tmp, self.index_path(split))
            return index

    def load_index(self, split: str) -> dict:
        """The split's index (generating the split first when it is not cached)."""
        return self.generate(split, force=False)


@contextlib.contextmanager
def _file_lock(path: str):
    """Exclusive inter-process lock (POSIX ``flock``; a no-op where unavailable)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(path, 'a+') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def train_fraction_keep(study: dict, fraction: float) -> bool:
    """Whether a train study belongs to the nested ``fraction`` subset (1 % ⊂ 10 % ⊂ 100 %).

    Within each class (single-label sets) or overall (multi-label), the first
    ``max(1, ceil(fraction * n))`` studies of a fixed random order are kept.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f'train_fraction must be in (0, 1], got {fraction}.')
    n = study['train_group_size']
    return study['train_order'] < max(1, int(math.ceil(fraction * n - 1e-9)))


__all__ = ['SyntheticCXRGenerator', 'GENERATION_COUNT', 'SPLIT_CLASSES', 'KEY_TO_CLASS',
           'train_fraction_keep']
