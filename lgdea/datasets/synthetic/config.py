"""Configuration of the synthetic CXR benchmark: class names, split names and every knob.

Everything that changes the generated content lives in :class:`SyntheticCXRConfig`; its
:meth:`~SyntheticCXRConfig.config_hash` names the cache directory
(``<cache_dir>/synthetic_cxr_<hash>``), so two configs never share a cache and the same config
always finds its cache again.

The hash also covers a fingerprint of the generator's source files
(:func:`source_fingerprint`), so a cache written by another version of the code is never
taken for this one's.
"""
import dataclasses
import functools
import hashlib
import json
import os
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

#: Human-readable version of the generator (the cache key also fingerprints the source).
GENERATOR_VERSION = '1.0'

#: Package modules that do not change the generated content (left out of the fingerprint).
_NOT_CONTENT = ('__init__.py', 'prompts.py')


@functools.lru_cache(maxsize=1)
def source_fingerprint() -> str:
    """Short hash of the generator's source files (every ``.py`` of this package that can
    change the generated images, reports or splits)."""
    package = osp.dirname(osp.abspath(__file__))
    digest = hashlib.sha1()
    for name in sorted(os.listdir(package)):
        if name.endswith('.py') and name not in _NOT_CONTENT:
            digest.update(name.encode('utf-8'))
            with open(osp.join(package, name), 'rb') as f:
                digest.update(f.read())
    return digest.hexdigest()[:12]

#: Internal finding keys, in MS-CXR (alphabetical) order.
FINDING_KEYS: Tuple[str, ...] = (
    'atelectasis', 'cardiomegaly', 'consolidation', 'edema', 'lung_opacity',
    'pleural_effusion', 'pneumonia', 'pneumothorax')

#: Display names (``metainfo['classes']``) of :data:`FINDING_KEYS`, MS-CXR / CheXpert spelling.
SYNTHETIC_CLASSES: Tuple[str, ...] = (
    'Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Lung Opacity',
    'Pleural Effusion', 'Pneumonia', 'Pneumothorax')

KEY_TO_CLASS: Dict[str, str] = dict(zip(FINDING_KEYS, SYNTHETIC_CLASSES))
CLASS_TO_KEY: Dict[str, str] = dict(zip(SYNTHETIC_CLASSES, FINDING_KEYS))

#: The 5 classes of the 5xN retrieval / zero-shot split (CheXpert competition order).
RETRIEVAL_CLASSES: Tuple[str, ...] = (
    'Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Pleural Effusion')

#: Classes of the RSNA-like binary set and the COVID-like 3-class set.
CLS_BINARY_CLASSES: Tuple[str, ...] = ('No Pneumonia', 'Pneumonia')
CLS_MULTICLASS_CLASSES: Tuple[str, ...] = ('Normal', 'Pneumonia', 'COVID-19')

SEVERITIES: Tuple[str, ...] = ('mild', 'moderate', 'large')
SIDES: Tuple[str, ...] = ('right', 'left', 'bilateral')

#: Split names and the code that prefixes their subject / study ids (disjoint id spaces).
SPLIT_CODES: Dict[str, int] = dict(
    pretrain=1, retrieval=2, grounding=3, cls_binary=4, cls_multiclass=5, cls_multilabel=6)
SPLITS: Tuple[str, ...] = tuple(SPLIT_CODES)
CLS_SPLITS: Tuple[str, ...] = ('cls_binary', 'cls_multiclass', 'cls_multilabel')
SUBSETS: Tuple[str, ...] = ('train', 'val', 'test')


@dataclasses.dataclass
class SyntheticCXRConfig:
    """Every parameter of the generator.

    Sizes:
        seed: master seed; every subject / study / image draws from its own
            ``SeedSequence(seed, spawn_key=(split, kind, index))``, so one item never depends on
            how many others are generated or in which order.
        image_size: side of the square images in pixels (64 default; 32-224 work).
        num_studies: studies in the ``pretrain`` split.
        retrieval_per_class: studies per class of the 5-class ``retrieval`` split (5 x N).
        grounding_per_class: studies per class whose main finding is that class (``grounding``).
        cls_binary_size / cls_multiclass_size / cls_multilabel_size: studies of the
            classification sets (one image each), split by subject into train/val/test.
        cls_split_fractions: train / val / test fractions of the classification sets.
        max_studies_per_subject: pretrain subjects have 1..this many studies.
        images_per_study_probs: probability of 1, 2, ... frontal images per pretrain study.
        findings_count_probs: probability of 0, 1, 2, 3 findings per pretrain study.
        class_weights: relative frequency of each finding key (missing keys: 1.0).
        severity_probs: probability of mild / moderate / large.
        bilateral_rate: probability that a finding which can be bilateral is bilateral.

    Image difficulty:
        signal_strength: multiplies every finding's contrast (and the cardiomegaly enlargement).
        noise_std: std of the additive pixel noise (intensities in [0, 1]).
        anatomy_jitter: scale of the subject-to-subject anatomy variation.
        pose_jitter: scale of the random shift / scale / rotation of each image.
        contrast_jitter: scale of the random global contrast / brightness / gamma.
        device_rate: mean probability that a study has a support device (line / tube).
        marker_rate: probability that an image carries a corner text marker.
        confounder_correlation: 0 = devices independent of disease, 1 = devices twice as
            frequent in abnormal as in normal studies, and the ``PORTABLE`` marker / AP view
            likewise (a spurious cue, as in ICU films).
        ap_view_rate: mean probability of an AP (portable) study.

    Report difficulty:
        synonym_rate: probability that a mention uses an out-of-lexicon paraphrase
            ("airspace disease", "volume loss at the base", "vascular congestion").
        misspelling_rate: probability that the head term is misspelled ("effusoin").
        abbreviation_rate: probability that the head term is abbreviated ("PTX", "CHF").
        uncertain_rate: probability that a positive finding is hedged ("possible ...").
        hedge_absent_rate: probability that a report hedges an absent finding
            ("cannot exclude early pneumonia"); its label stays 0.
        negation_rate: probability that each absent finding is explicitly negated.
        boilerplate_rate: probability of each technique / comparison / bones statement.
        device_mention_rate: probability that a present device is described.
        impression_only_rate: probability that a report has only an IMPRESSION section.
        change_rate: probability that a positive finding, in a report with a comparison, is
            described with an interval change ("unchanged", "new", "increased").
    """
    seed: int = 0
    image_size: int = 64
    num_studies: int = 2000
    retrieval_per_class: int = 200
    grounding_per_class: int = 40
    cls_binary_size: int = 1000
    cls_multiclass_size: int = 900
    cls_multilabel_size: int = 1500
    cls_split_fractions: Tuple[float, float, float] = (0.7, 0.15, 0.15)
    max_studies_per_subject: int = 4
    images_per_study_probs: Tuple[float, ...] = (0.5, 0.5)
    findings_count_probs: Tuple[float, ...] = (0.25, 0.4, 0.25, 0.1)
    class_weights: Optional[Dict[str, float]] = None
    severity_probs: Tuple[float, float, float] = (0.4, 0.35, 0.25)
    bilateral_rate: float = 0.3
    # image difficulty
    signal_strength: float = 1.0
    noise_std: float = 0.03
    anatomy_jitter: float = 1.0
    pose_jitter: float = 1.0
    contrast_jitter: float = 1.0
    device_rate: float = 0.3
    marker_rate: float = 0.8
    confounder_correlation: float = 0.5
    ap_view_rate: float = 0.3
    # report difficulty
    synonym_rate: float = 0.25
    misspelling_rate: float = 0.05
    abbreviation_rate: float = 0.08
    uncertain_rate: float = 0.1
    hedge_absent_rate: float = 0.08
    negation_rate: float = 0.5
    boilerplate_rate: float = 0.7
    device_mention_rate: float = 0.9
    impression_only_rate: float = 0.05
    change_rate: float = 0.3

    def __post_init__(self):
        self.cls_split_fractions = tuple(float(f) for f in self.cls_split_fractions)
        self.images_per_study_probs = tuple(float(p) for p in self.images_per_study_probs)
        self.findings_count_probs = tuple(float(p) for p in self.findings_count_probs)
        self.severity_probs = tuple(float(p) for p in self.severity_probs)
        if self.class_weights is not None:
            self.class_weights = {str(k): float(v) for k, v in dict(self.class_weights).items()}
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field when a value is out of range."""

        def fail(field, msg):
            raise ValueError(f'SyntheticCXRConfig.{field}: {msg} '
                             f'(got {getattr(self, field)!r}).')

        if not 16 <= int(self.image_size) <= 1024:
            fail('image_size', 'must be between 16 and 1024 pixels')
        for field in ('num_studies', 'retrieval_per_class', 'grounding_per_class',
                      'cls_binary_size', 'cls_multiclass_size', 'cls_multilabel_size'):
            if int(getattr(self, field)) < 0:
                fail(field, 'must be >= 0')
        if self.max_studies_per_subject < 1:
            fail('max_studies_per_subject', 'must be >= 1')
        for field in ('images_per_study_probs', 'findings_count_probs', 'severity_probs',
                      'cls_split_fractions'):
            probs = getattr(self, field)
            if len(probs) == 0 or min(probs) < 0 or abs(sum(probs) - 1.0) > 1e-6:
                fail(field, 'must be non-negative and sum to 1')
        if len(self.findings_count_probs) > 4:
            fail('findings_count_probs', 'at most 4 entries (0..3 findings per study)')
        if len(self.severity_probs) != 3:
            fail('severity_probs', 'needs 3 entries (mild, moderate, large)')
        if len(self.cls_split_fractions) != 3:
            fail('cls_split_fractions', 'needs 3 entries (train, val, test)')
        if self.class_weights is not None:
            unknown = set(self.class_weights) - set(FINDING_KEYS)
            if unknown:
                fail('class_weights', f'unknown finding keys {sorted(unknown)}; '
                     f'use {list(FINDING_KEYS)}')
            if min(self.class_weights.values()) < 0 or sum(self.class_weights.values()) <= 0:
                fail('class_weights', 'weights must be >= 0 with a positive sum')
        for field in ('bilateral_rate', 'device_rate', 'marker_rate', 'confounder_correlation',
                      'ap_view_rate', 'synonym_rate', 'misspelling_rate', 'abbreviation_rate',
                      'uncertain_rate', 'hedge_absent_rate', 'negation_rate',
                      'boilerplate_rate', 'device_mention_rate', 'impression_only_rate',
                      'change_rate'):
            if not 0.0 <= float(getattr(self, field)) <= 1.0:
                fail(field, 'is a probability and must lie in [0, 1]')
        if self.synonym_rate + self.misspelling_rate + self.abbreviation_rate > 1.0:
            fail('synonym_rate', 'synonym_rate + misspelling_rate + abbreviation_rate must '
                 'be <= 1')
        for field in ('signal_strength', 'noise_std', 'anatomy_jitter', 'pose_jitter',
                      'contrast_jitter'):
            if float(getattr(self, field)) < 0:
                fail(field, 'must be >= 0')

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict of every field."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    def config_hash(self) -> str:
        """Short hash of every field, :data:`GENERATOR_VERSION` and the source fingerprint
        (names the cache dir)."""
        payload = json.dumps(dict(version=GENERATOR_VERSION, source=source_fingerprint(),
                                  config=self.to_dict()), sort_keys=True)
        return hashlib.sha1(payload.encode('utf-8')).hexdigest()[:12]

    def class_probabilities(self, keys: Sequence[str] = FINDING_KEYS):
        """Normalised sampling probabilities of ``keys`` from :attr:`class_weights`."""
        weights = dict(self.class_weights or {})
        raw = [float(weights.get(k, 1.0)) for k in keys]
        total = sum(raw)
        if total <= 0:
            raise ValueError('SyntheticCXRConfig.class_weights: every candidate class has '
                             f'weight 0 among {list(keys)}.')
        return [r / total for r in raw]

    @classmethod
    def field_names(cls) -> Tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))
