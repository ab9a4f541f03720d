"""The embedded synthetic chest-radiograph benchmark (the default demo data).

Procedural CXR-like images with localized findings of the 8 MS-CXR classes, radiology-style
reports written from a grammar, and splits shaped like the paper's evaluations. See
``docs/synthetic_benchmark.md``.
"""
from .config import (CLS_BINARY_CLASSES, CLS_MULTICLASS_CLASSES, FINDING_KEYS, GENERATOR_VERSION,
                     RETRIEVAL_CLASSES, SPLITS, SYNTHETIC_CLASSES, SyntheticCXRConfig)
from .generator import GENERATION_COUNT, SPLIT_CLASSES, SyntheticCXRGenerator
from .prompts import SYNTHETIC_CLASS_PROMPTS, SYNTHETIC_GROUNDING_PHRASES
from .report import canonical_evidence, write_report

__all__ = [
    'SyntheticCXRConfig', 'SyntheticCXRGenerator', 'GENERATION_COUNT', 'GENERATOR_VERSION',
    'SPLITS', 'SPLIT_CLASSES', 'FINDING_KEYS', 'SYNTHETIC_CLASSES', 'RETRIEVAL_CLASSES',
    'CLS_BINARY_CLASSES', 'CLS_MULTICLASS_CLASSES', 'SYNTHETIC_CLASS_PROMPTS',
    'SYNTHETIC_GROUNDING_PHRASES', 'canonical_evidence', 'write_report'
]
