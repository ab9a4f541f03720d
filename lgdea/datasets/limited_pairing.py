"""The limited-pairing setting: paired studies, unpaired images and unpaired reports.

docs/method.md, "Setting, pools and batches".
"""
import copy
import json
import logging
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset import BaseDataset, Compose
from mmengine.logging import print_log

from lgdea.registry import DATASETS
from lgdea.utils.event_log import EventLog
from .base_cxr import utf8_error

__all__ = ['LimitedPairingDataset', 'DROPPED', 'replacement_stats', 'reset_replacements']

#: ``kind`` of the marker returned for a paired item that neither loads nor has a stand-in of
#: its study; :func:`vl_collate` drops it with one partner of its study.
DROPPED = 'dropped'

# Replacements and drops of skipped items (one JSON line each, appended by the DataLoader
# workers; lgdea/utils/event_log.py).
_REPLACEMENT_LOG = EventLog('lgdea_replaced_items')


def replacement_stats(max_items: int = 5) -> Tuple[int, int, List[dict]]:
    """Skipped items since the last reset: ``(replaced, dropped pairs, first events)``; each
    event is ``dict(outcome='replaced'|'dropped_pair', item, by, kind, paired, study_id)``."""
    _, first, per = _REPLACEMENT_LOG.stats(max_items=max_items, by='outcome')
    return per.get('replaced', 0), per.get('dropped_pair', 0), first


def reset_replacements() -> None:
    """Empty the record of replaced and dropped items."""
    _REPLACEMENT_LOG.reset()


@DATASETS.register_module()
class LimitedPairingDataset(BaseDataset):
    """Splits an image–report corpus into paired studies, unpaired images and unpaired reports.

    The pairing unit is the **study** (one report plus all its frontal images). A fraction
    ``pair_ratio`` of the eligible studies (a usable report and at least one image) keeps its
    links, drawn with ``pair_seed`` (separate from the training seed). The images of the other
    studies (plus any ``extra_image_datasets``) form the unpaired-image pool; their reports form
    the unpaired-report pool. The partner of an unpaired image is never marked as its pair
    (``paired=False`` on both sides, so the pair targets ``Y`` stay 0 for them).

    A study without usable report text leaves the paired and report pools; its images stay in
    the unpaired-image pool (counted). Subjects listed in ``exclude_subjects_file`` (the
    evaluation subjects) are dropped from every pool (counted).

    Index space:

    - ``include_unpaired=True`` (LGDEA): ``[0, num_images)`` are image items (``kind='image'``),
      ``[num_images, num_images + num_reports)`` report items (``kind='report'``); batches are
      composed by :class:`PropagationSampler`.
    - ``include_unpaired=False`` (baselines that cannot use unpaired data): one ``'pair'`` item
      per image of a paired study (image + its report); any sampler works.

    ``pair_ratio=1.0`` gives the ordinary fully paired setting.

    Args:
        dataset: config (or instance) of the source dataset; its records follow
            docs/architecture.md section 1 (``img_path``, ``study_id``, ``subject_id``,
            ``report``).
        pair_ratio: fraction of eligible studies kept paired, in (0, 1].
        pair_seed: seed of the pairing draw.
        disjoint_unpaired: draw unpaired images and unpaired reports from disjoint studies.
        include_unpaired: see "Index space".
        extra_image_datasets: configs of image-only sources (e.g. CheXpert in the cross-domain
            setting), added to the unpaired-image pool.
        exclude_subjects_file: text file with one subject id per line.
        pipeline: image pipeline (for image and pair items), ending with ``PackVLInputs``.
        report_pipeline: pipeline for report items (default: just ``PackVLInputs``).
        evidence: optional dict(extractor=..., cache_dir=..., credentialed=...) to attach the
            evidence phrases of every report (``lgdea.evidence.ensure_evidence``).
        conflicting_reports: what to do when two records of one ``study_id`` carry different
            report text (compared with whitespace collapsed): ``'raise'`` (default; the error
            names the file, the study and both records) or ``'keep_first'`` (keep the first
            text, count the others as ``conflicting_reports`` and warn). Exact duplicate
            records are always kept once and counted as ``duplicate_rows``.
        resample_small_pools: allow a batch larger than its pools (items then repeat within a
            batch, with a logged warning). By default such a batch is an error before
            training that gives the pool sizes and the largest batch size that fits
            (:class:`PropagationSampler`, or ``PairingSplitHook`` for the paired-only mode).
        max_refetch: tries to replace a skipped item by another item of its pool.
    """

    def __init__(self,
                 dataset: Union[dict, BaseDataset],
                 pair_ratio: float = 1.0,
                 pair_seed: int = 0,
                 disjoint_unpaired: bool = False,
                 include_unpaired: bool = True,
                 extra_image_datasets: Sequence[Union[dict, BaseDataset]] = (),
                 exclude_subjects_file: Optional[str] = None,
                 pipeline: Sequence = (),
                 report_pipeline: Optional[Sequence] = None,
                 evidence: Optional[dict] = None,
                 conflicting_reports: str = 'raise',
                 resample_small_pools: bool = False,
                 max_refetch: int = 1000):
        if not 0.0 < pair_ratio <= 1.0:
            raise ValueError(f'pair_ratio must be in (0, 1], got {pair_ratio}')
        if conflicting_reports not in ('raise', 'keep_first'):
            raise ValueError("conflicting_reports must be 'raise' or 'keep_first', got "
                             f'{conflicting_reports!r}')
        self.conflicting_reports = conflicting_reports
        self.resample_small_pools = bool(resample_small_pools)
        self.source = dataset if isinstance(dataset, BaseDataset) else DATASETS.build(dataset)
        self.extra_sources = [d if isinstance(d, BaseDataset) else DATASETS.build(d)
                              for d in extra_image_datasets]
        self.pair_ratio = float(pair_ratio)
        self.pair_seed = int(pair_seed)
        self.disjoint_unpaired = disjoint_unpaired
        self.include_unpaired = include_unpaired
        self.exclude_subjects_file = exclude_subjects_file
        self.evidence_cfg = evidence
        self.report_pipeline = Compose(list(report_pipeline) if report_pipeline is not None
                                       else [dict(type='PackVLInputs')])
        self._metainfo = copy.deepcopy(self.source.metainfo)
        # created in the building process, carried into DataLoader workers
        self._replacement_log = _REPLACEMENT_LOG.path()
        super().__init__(pipeline=list(pipeline), serialize_data=False, lazy_init=False,
                         max_refetch=max_refetch)

    # ------------------------------------------------------------- building
    def full_init(self):
        if self._fully_initialized:
            return
        self._build_pools()
        self._fully_initialized = True

    def _build_pools(self) -> None:
        excluded_subjects = _read_id_list(self.exclude_subjects_file)
        counts = OrderedDict(excluded_records=0, studies_without_report=0,
                             images_of_studies_without_report=0, reports_without_image=0,
                             duplicate_rows=0, conflicting_reports=0)
        studies: Dict[str, dict] = OrderedDict()
        seen_rows = set()
        for i in range(len(self.source)):
            rec = self.source.get_data_info(i)
            if str(rec.get('subject_id')) in excluded_subjects:
                counts['excluded_records'] += 1
                continue
            sid = rec.get('study_id')
            if sid is None:
                raise KeyError(f'record {i} of {type(self.source).__name__} has no `study_id`; '
                               'the limited-pairing setting pairs by study.')
            row = _row_key(rec)
            if row in seen_rows:
                counts['duplicate_rows'] += 1
                continue
            seen_rows.add(row)
            st = studies.setdefault(str(sid), dict(images=[], report=None, record=None))
            if rec.get('img_path'):
                st['images'].append(rec)
            text = rec.get('report')
            if text is None or not str(text).strip():
                continue
            if st['report'] is None:
                st['report'], st['record'], st['row'] = str(text), rec, i
            elif str(text).split() != st['report'].split():
                self._conflicting_report(str(sid), st, i, str(text))
                counts['conflicting_reports'] += 1

        eligible = []
        for sid, st in studies.items():
            if st['report'] is None:
                counts['studies_without_report'] += 1
                counts['images_of_studies_without_report'] += len(st['images'])
            elif not st['images']:
                counts['reports_without_image'] += 1
            else:
                eligible.append(sid)

        rng = np.random.default_rng(self.pair_seed)
        n_paired = int(round(self.pair_ratio * len(eligible)))
        if self.pair_ratio > 0 and eligible and n_paired == 0:
            n_paired = 1
        order = rng.permutation(len(eligible))
        paired = set(eligible[i] for i in sorted(order[:n_paired]))
        unpaired_eligible = [eligible[i] for i in sorted(order[n_paired:])]
        image_only, report_only = set(unpaired_eligible), set(unpaired_eligible)
        if self.disjoint_unpaired:
            half = len(unpaired_eligible) // 2
            perm = rng.permutation(len(unpaired_eligible))
            image_only = set(unpaired_eligible[i] for i in perm[:half])
            report_only = set(unpaired_eligible[i] for i in perm[half:])

        images: List[dict] = []
        reports: List[dict] = []
        for sid, st in studies.items():
            is_paired = sid in paired
            if is_paired or st['report'] is None or sid in image_only or not st['images']:
                for rec in st['images']:
                    images.append(_image_item(rec, sid, is_paired))
            if st['report'] is not None and (is_paired or sid in report_only
                                             or not st['images']):
                reports.append(_report_item(st['record'], sid, st['report'], is_paired))
        n_extra = 0
        for src in self.extra_sources:
            for i in range(len(src)):
                rec = src.get_data_info(i)
                if not rec.get('img_path') or str(rec.get('subject_id')) in excluded_subjects:
                    continue
                sid = f'{type(src).__name__}:{rec.get("study_id", i)}'
                images.append(_image_item(rec, sid, False))
                n_extra += 1

        if self.evidence_cfg is not None:
            self._attach_evidence(reports)

        self.images = images
        self.reports = reports
        self.paired_studies = sorted(paired)
        # study -> indices into self.images (paired studies only) and its report index
        self.paired_image_index: Dict[str, List[int]] = OrderedDict()
        for i, it in enumerate(images):
            if it['paired']:
                self.paired_image_index.setdefault(it['study_id'], []).append(i)
        self.report_index = {it['study_id']: j for j, it in enumerate(reports)}
        self.unpaired_image_ids = [i for i, it in enumerate(images) if not it['paired']]
        self.unpaired_report_ids = [j for j, it in enumerate(reports) if not it['paired']]
        if self.include_unpaired:
            self.data_list = images + reports
        else:
            self.data_list = [dict(it, kind='pair', report=self.reports[self.report_index[
                it['study_id']]]['report'], **_evidence_field(
                    self.reports[self.report_index[it['study_id']]]))
                for it in images if it['paired']]
        self.counts = OrderedDict(
            eligible_studies=len(eligible), paired_studies=len(paired),
            images=len(images), paired_images=len(images) - len(self.unpaired_image_ids),
            unpaired_images=len(self.unpaired_image_ids), extra_images=n_extra,
            reports=len(reports), unpaired_reports=len(self.unpaired_report_ids), **counts)
        if not paired:
            raise ValueError(
                f'LimitedPairingDataset over {type(self.source).__name__} has no paired study '
                f'(eligible studies: {len(eligible)}, pair_ratio={self.pair_ratio}); check '
                'that the records carry `report` text and `img_path`.')
        print_log('LimitedPairingDataset: ' + ', '.join(f'{k}={v}' for k, v in
                                                        self.counts.items()), logger='current')
        if counts['duplicate_rows'] or counts['conflicting_reports']:
            print_log(f'LimitedPairingDataset: {self._source_name()} holds '
                      f'{counts["duplicate_rows"]} exact duplicate record(s) (each kept once) '
                      f'and {counts["conflicting_reports"]} record(s) whose report differs from '
                      "its study's first report (first kept, conflicting_reports='keep_first')."
                      ' Clean the annotation file to silence this.', logger='current',
                      level=logging.WARNING)

    def _source_name(self) -> str:
        ann = getattr(self.source, 'ann_file', None)
        name = type(self.source).__name__
        return f'{name} ("{ann}")' if ann else name

    def _conflicting_report(self, sid: str, st: dict, row: int, text: str) -> None:
        if self.conflicting_reports == 'keep_first':
            return
        raise ValueError(
            f'LimitedPairingDataset: {self._source_name()} gives study_id {sid!r} two different '
            f'reports (record {st["row"]}: {st["report"][:80]!r}; record {row}: {text[:80]!r}). '
            'One study has one report: fix the study ids or the report text in the annotation '
            "file, or set conflicting_reports='keep_first' to keep the first report.")

    def check_batch_size(self, global_batch: int, world_size: int = 1) -> None:
        """Paired-only mode (``include_unpaired=False``): refuse a global batch larger than
        the pool of pair items (it would repeat items or come out short), unless
        ``resample_small_pools=True`` (then warn). Called by ``PairingSplitHook``."""
        n = len(self.data_list)
        if self.include_unpaired or global_batch <= n:
            return
        need = (f'a global batch of {global_batch} ({world_size} rank(s)) is larger than the '
                f'paired pool: {n} image-report pairs of {len(self.paired_studies)} paired '
                f'studies (pair_ratio={self.pair_ratio})')
        if self.resample_small_pools:
            print_log(f'LimitedPairingDataset: {need}; items repeat within a batch '
                      '(resample_small_pools=True).', logger='current', level=logging.WARNING)
            return
        raise ValueError(f'LimitedPairingDataset: {need}; the largest batch_size is '
                         f'{n // world_size} per rank. Lower batch_size, or set '
                         'resample_small_pools=True on the dataset to repeat items with a '
                         'warning.')

    def _attach_evidence(self, reports: List[dict]) -> None:
        from lgdea.evidence import ensure_evidence
        cfg = dict(self.evidence_cfg)
        phrases = ensure_evidence([r['report'] for r in reports], **cfg)
        for r, p in zip(reports, phrases):
            r['evidence'] = list(p)

    # ---------------------------------------------------------------- access
    @property
    def num_images(self) -> int:
        return len(self.images)

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self._metainfo)

    def prepare_data(self, idx: int):
        info = self.get_data_info(idx)
        if info['kind'] == 'report':
            return self.report_pipeline(info)
        return self.pipeline(info)

    def __getitem__(self, idx: int) -> dict:
        """The packed item ``idx``; in training, an item whose pipeline returns None (an image
        skipped by ``LoadCXRImage(on_error='skip')``) is replaced within its own pool:

        - a ``'pair'`` item by another pair item (image and report travel together);
        - an unpaired image by another unpaired image, an unpaired report by another one;
        - a paired image by another image of the **same study** (its report stays its
          partner); when no image of the study loads, a :data:`DROPPED` marker is returned and
          :func:`vl_collate` drops it together with one paired report of that study in the
          batch, so ``Y`` and the equal numbers of images and reports are kept;
        - a paired report (no other report of its study exists): a marker likewise, which
          drops one paired image of the study.

        Every replacement and drop is recorded (:func:`replacement_stats`);
        ``CorruptImageReportHook`` reports them at the end of the epoch.
        """
        if not self._fully_initialized:
            self.full_init()
        data = self.prepare_data(idx)
        if data is not None:
            return data
        if self.test_mode:
            raise ValueError(f'LimitedPairingDataset: the pipeline returned None for item {idx} '
                             f'({self._describe(idx)}) in test mode; use '
                             "LoadCXRImage(on_error='raise') for evaluation.")
        return self._replace(idx)

    def _describe(self, idx: int) -> str:
        info = self.data_list[idx]
        paired = 'paired' if info.get('paired') else 'unpaired'
        where = info.get('img_path') if info['kind'] != 'report' else None
        return (f'{paired} {info["kind"]} of study {info.get("study_id")}'
                + (f', "{where}"' if where else ''))

    def _replacement_pool(self, idx: int) -> List[int]:
        """Indices that can stand in for item ``idx`` without changing the batch's ``Y``."""
        info = self.data_list[idx]
        if info['kind'] == 'pair':
            return list(range(len(self.data_list)))
        if info['kind'] == 'image':
            if info['paired']:
                return list(self.paired_image_index[info['study_id']])
            return list(self.unpaired_image_ids)
        if info['paired']:
            return []
        return [self.num_images + j for j in self.unpaired_report_ids]

    def _replace(self, idx: int) -> dict:
        info = self.data_list[idx]
        pool = [i for i in self._replacement_pool(idx) if i != idx]
        same_study = info['kind'] != 'pair' and info['paired']
        if same_study:
            order = list(np.random.permutation(pool))
        else:
            order = [pool[k] for k in np.random.randint(0, len(pool), self.max_refetch)] \
                if pool else []
        for new in order:
            data = self.prepare_data(int(new))
            if data is not None:
                self._record(outcome='replaced', item=idx, by=int(new),
                             kind=info['kind'], paired=bool(info['paired']),
                             study_id=str(info.get('study_id')))
                return data
        if same_study:
            self._record(outcome='dropped_pair', item=idx, kind=info['kind'], paired=True,
                         study_id=str(info.get('study_id')))
            return dict(kind=DROPPED, dropped_kind=info['kind'],
                        study_id=info.get('study_id'), img_path=info.get('img_path'))
        raise RuntimeError(
            f'LimitedPairingDataset: item {idx} ({self._describe(idx)}) could not be loaded and '
            f'neither could {len(order)} replacement(s) from its pool ({len(pool)} other '
            f'item(s)); check the image files of that pool (CorruptImageReportHook lists the '
            'skipped paths) or use on_error=\'raise\' to see the first error.')

    def _record(self, **event) -> None:
        if self._replacement_log is None or not os.path.exists(self._replacement_log):
            self._replacement_log = _REPLACEMENT_LOG.path()
        EventLog.append(self._replacement_log, **event)

    def split_info(self) -> dict:
        """What the pairing draw produced (written to the work dir by ``PairingSplitHook``)."""
        return dict(pair_ratio=self.pair_ratio, pair_seed=self.pair_seed,
                    disjoint_unpaired=self.disjoint_unpaired,
                    source=type(self.source).__name__, counts=dict(self.counts),
                    paired_studies=list(self.paired_studies))

    def dump_split(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(self.split_info(), f, indent=1)


def _image_item(rec: dict, study_id: str, paired: bool) -> dict:
    item = {k: v for k, v in rec.items() if k not in ('report', 'evidence')}
    item.update(study_id=study_id, paired=paired, kind='image')
    return item


def _report_item(rec: dict, study_id: str, text: str, paired: bool) -> dict:
    item = {k: v for k, v in rec.items()
            if k not in ('img_path', 'boxes', 'phrase', 'ori_shape', 'view')}
    item.update(study_id=study_id, report=text, paired=paired, kind='report')
    return item


def _row_key(rec: dict) -> str:
    """A canonical text of a record (arrays as lists; without the index ``sample_idx`` that
    mmengine adds) to find exact duplicate rows."""
    return json.dumps({k: v for k, v in rec.items() if k != 'sample_idx'}, sort_keys=True,
                      default=lambda v: v.tolist() if hasattr(v, 'tolist') else str(v))


def _evidence_field(report_item: dict) -> dict:
    return {'evidence': report_item['evidence']} if 'evidence' in report_item else {}


def _read_id_list(path: Optional[str]) -> set:
    if path is None:
        return set()
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'exclude_subjects_file "{path}" does not exist; build it with '
            '`python tools/build_eval_splits.py` or set exclude_subjects_file=None.')
    try:
        with open(path, encoding='utf-8') as f:
            return {line.strip() for line in f if line.strip() and not line.startswith('#')}
    except UnicodeDecodeError as exc:
        raise utf8_error(path, exc) from exc
