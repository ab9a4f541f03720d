"""``SyntheticCXRDataset``: the embedded synthetic CXR benchmark as an mmengine dataset.

The images are generated on first use into ``<cache_dir>/synthetic_cxr_<config hash>/`` and
read from there afterwards (see :mod:`lgdea.datasets.synthetic`). Records follow
``docs/architecture.md`` section 1.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np
from mmengine.dataset import BaseDataset

from lgdea.registry import DATASETS
from .synthetic.config import (CLS_SPLITS, KEY_TO_CLASS, SPLITS, SUBSETS, SYNTHETIC_CLASSES,
                               SyntheticCXRConfig)
from .synthetic.generator import SPLIT_CLASSES, SyntheticCXRGenerator, train_fraction_keep
from .synthetic.prompts import SYNTHETIC_CLASS_PROMPTS

#: Evidence of a report without any positive finding (``evidence_from_gt=True``).
NORMAL_EVIDENCE = 'no acute cardiopulmonary abnormality'

_BASE_KWARGS = ('ann_file', 'data_prefix', 'filter_cfg', 'indices', 'serialize_data',
                'max_refetch')


@DATASETS.register_module()
class SyntheticCXRDataset(BaseDataset):
    """Synthetic chest radiographs with reports, boxes and labels (the default demo data).

    Splits (``metainfo['classes']`` in brackets):

    * ``pretrain`` (8 findings): one record per image -- ``img_path, study_id, subject_id,
      report, view, gt_score [8]``; 1-2 frontal images per study, several studies per subject.
    * ``retrieval`` (5 CheXpert competition classes): the 5 x N split, exactly one of the 5
      classes positive and no other finding; ``gt_label`` and ``gt_score [5]``; the candidate
      reports are the records' own ``report``.
    * ``grounding`` (8 findings): one record per (image, phrase) -- ``boxes [k, 4]`` (x, y, w, h
      in pixels of the generated image), ``phrase``, ``category``, ``gt_label``, ``ori_shape``.
    * ``cls_binary`` (No Pneumonia / Pneumonia), ``cls_multiclass`` (Normal / Pneumonia /
      COVID-19): ``gt_label``; ``cls_multilabel`` (8 findings): ``gt_score [8]``. These have
      ``subset='train'|'val'|'test'`` (split by subject) and ``train_fraction`` (nested
      stratified subsets of train, e.g. 0.01 / 0.1 / 1.0); their records carry no report.

    Every record also has ``image_id`` and ``gt_evidence`` (canonical evidence phrases of the
    positive findings, for measuring extractors); with ``evidence_from_gt=True`` the
    ``evidence`` key is filled with them (an oracle extractor; ``[NORMAL_EVIDENCE]`` when none).
    Subjects of the evaluation splits never occur in ``pretrain``.

    Args:
        split: one of ``pretrain, retrieval, grounding, cls_binary, cls_multiclass,
            cls_multilabel``.
        subset: ``train`` / ``val`` / ``test`` for the classification splits (default
            ``train``); must be None for the others.
        train_fraction: fraction of the train subset to keep (classification splits).
        cache_dir: cache directory; a relative path is taken under ``data_root`` when given,
            else under the current directory.
        generator: dict of :class:`SyntheticCXRConfig` fields; any field may also be passed
            directly as a keyword (``num_studies=200, image_size=96, signal_strength=0.7``).
        evidence_from_gt: fill ``evidence`` from the ground truth (see above).
        show_progress: tqdm bar while generating (rank 0 only).
        data_root, metainfo, pipeline, test_mode, lazy_init, **kwargs: as
            :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO = dict(classes=SYNTHETIC_CLASSES)

    def __init__(self, split: str = 'pretrain', subset: Optional[str] = None,
                 train_fraction: float = 1.0, cache_dir: str = 'data/synthetic_cxr',
                 generator: Optional[dict] = None, evidence_from_gt: bool = False,
                 show_progress: bool = True, data_root: str = '', metainfo: Optional[dict] = None,
                 pipeline: Sequence = (), test_mode: bool = False, lazy_init: bool = False,
                 **kwargs):
        if split not in SPLITS:
            raise ValueError(f'SyntheticCXRDataset: unknown split {split!r}; use one of '
                             f'{list(SPLITS)}.')
        if split in CLS_SPLITS:
            subset = subset or 'train'
            if subset not in SUBSETS:
                raise ValueError(f'SyntheticCXRDataset(split={split!r}): subset must be one of '
                                 f'{list(SUBSETS)}, got {subset!r}.')
        elif subset is not None:
            raise ValueError(f'SyntheticCXRDataset(split={split!r}) has no subsets; leave '
                             f'subset=None (got {subset!r}). Only {list(CLS_SPLITS)} have '
                             'train/val/test.')
        train_fraction = float(train_fraction)
        if not 0.0 < train_fraction <= 1.0:
            raise ValueError(f'SyntheticCXRDataset: train_fraction must be in (0, 1], got '
                             f'{train_fraction}.')
        if train_fraction < 1.0 and not (split in CLS_SPLITS and subset == 'train'):
            raise ValueError('SyntheticCXRDataset: train_fraction < 1 applies only to the '
                             f'train subset of {list(CLS_SPLITS)} (got split={split!r}, '
                             f'subset={subset!r}).')
        base_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _BASE_KWARGS}
        gen_options = dict(generator or {})
        unknown = set(kwargs) - set(SyntheticCXRConfig.field_names())
        if unknown:
            raise TypeError(f'SyntheticCXRDataset: unknown arguments {sorted(unknown)}; generator '
                            f'options are {list(SyntheticCXRConfig.field_names())}.')
        gen_options.update(kwargs)
        if not osp.isabs(cache_dir):
            cache_dir = osp.join(data_root or os.getcwd(), cache_dir)
        self.split = split
        self.subset = subset
        self.train_fraction = train_fraction
        self.evidence_from_gt = evidence_from_gt
        self.cache_dir = cache_dir
        self.generator = SyntheticCXRGenerator(gen_options, cache_dir=cache_dir,
                                               show_progress=show_progress and _is_main())
        classes = SPLIT_CLASSES[split]
        # (string values would be taken for meta files by mmengine: keep them as attributes)
        meta = dict(classes=classes, image_size=self.generator.cfg.image_size,
                    prompts={c: list(SYNTHETIC_CLASS_PROMPTS[c]) for c in classes})
        meta.update(metainfo or {})
        super().__init__(data_root=data_root, metainfo=meta, pipeline=list(pipeline),
                         test_mode=test_mode, lazy_init=lazy_init, **base_kwargs)

    @property
    def config_hash(self) -> str:
        """Hash of the generator config (names the cache directory)."""
        return self.generator.config_hash

    @property
    def root(self) -> str:
        """Directory of this configuration's cache."""
        return self.generator.root

    def load_data_list(self) -> List[dict]:
        index = self.generator.load_index(self.split)
        root = self.generator.root
        size = int(index['image_size'])
        split = self.split
        records = []
        for study in index['studies']:
            if split in CLS_SPLITS:
                if study['subset'] != self.subset:
                    continue
                if self.subset == 'train' and not train_fraction_keep(study, self.train_fraction):
                    continue
            labels8 = np.asarray(study['labels'], dtype=np.float32)
            evidence = [f['evidence'] for f in study['findings']]
            for image in study['images']:
                base = dict(img_path=osp.join(root, image['img_path']), image_id=image['image_id'],
                            study_id=study['study_id'], subject_id=study['subject_id'],
                            view=study['view'], ori_shape=(size, size), gt_evidence=evidence)
                if split not in CLS_SPLITS:
                    base['report'] = study['report']
                else:
                    base['report'] = None
                if self.evidence_from_gt:
                    base['evidence'] = list(evidence) or [NORMAL_EVIDENCE]
                if split in ('pretrain', 'cls_multilabel'):
                    records.append(dict(base, gt_score=labels8.copy()))
                elif split == 'retrieval':
                    score = np.zeros(len(SPLIT_CLASSES[split]), dtype=np.float32)
                    score[study['gt_label']] = 1.0
                    records.append(dict(base, gt_label=int(study['gt_label']), gt_score=score))
                elif split in ('cls_binary', 'cls_multiclass'):
                    records.append(dict(base, gt_label=int(study['gt_label'])))
                elif split == 'grounding':
                    for finding, boxes in zip(study['findings'], image['boxes']):
                        category = KEY_TO_CLASS[finding['category']]
                        records.append(dict(
                            base, gt_score=labels8.copy(), phrase=finding['grounding_phrase'],
                            category=category, gt_label=SYNTHETIC_CLASSES.index(category),
                            boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4)))
        return records


def _is_main() -> bool:
    from mmengine.dist import get_rank
    return get_rank() == 0
