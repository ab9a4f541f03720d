"""Verification of LLM evidence phrases against the report text.

A phrase is *supported* when some report sentence contains at least ``min_overlap`` of the
phrase's content words (stop words removed, light stemming: lower case, the first
``stem_chars`` characters). A phrase with no content word in common with any sentence is
always rejected. Optionally (``embed_fn``), a phrase that fails the lexical test is still
accepted when its embedding has cosine >= ``semantic_threshold`` with a sentence embedding.
"""
import re
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

_TOKEN = re.compile(r'[a-z0-9]+')
_SENT = re.compile(r'(?<!\d)\.(?!\d)|[\n;!?]')
STOP_WORDS = frozenset('''
a an the of in on at to for from with without and or but nor is are was were be been being
there this that these those it its as by into onto over under than then also again both
each any some no not seen noted present identified see which who whom what when where
while has have had do does did can could may might will would shall should must
'''.split())


def content_words(text: str, stem_chars: int = 6) -> List[str]:
    """Lower-cased, stemmed content words of ``text``."""
    return [w[:stem_chars] for w in _TOKEN.findall(text.lower()) if w not in STOP_WORDS]


class PhraseVerifier:
    """Reject evidence phrases that the report does not support.

    Args:
        min_overlap: fraction of the phrase's content words that one report sentence must
            contain (0 < min_overlap <= 1). Default 0.6.
        stem_chars: stemming prefix length (``effusions`` and ``effusion`` match).
        embed_fn: optional ``list[str] -> array [N, D]`` embedding function for the semantic
            fallback (e.g. a sentence-embedding model).
        semantic_threshold: cosine needed by the semantic fallback.
    """

    def __init__(self, min_overlap: float = 0.6, stem_chars: int = 6,
                 embed_fn: Optional[Callable[[List[str]], np.ndarray]] = None,
                 semantic_threshold: float = 0.7):
        if not 0 < min_overlap <= 1:
            raise ValueError(f'PhraseVerifier(min_overlap={min_overlap}): must be in (0, 1]')
        self.min_overlap = float(min_overlap)
        self.stem_chars = int(stem_chars)
        self.embed_fn = embed_fn
        self.semantic_threshold = float(semantic_threshold)

    def config_dict(self) -> dict:
        return dict(min_overlap=self.min_overlap, stem_chars=self.stem_chars,
                    semantic=self.embed_fn is not None,
                    semantic_threshold=self.semantic_threshold if self.embed_fn else None)

    def overlap(self, phrase: str, sentence_words: Sequence[set]) -> float:
        words = content_words(phrase, self.stem_chars)
        if not words:
            return 0.0
        return max((sum(w in s for w in words) / len(words) for s in sentence_words), default=0.0)

    def split(self, phrases: Sequence[str], report: str) -> Tuple[List[bool], List[float]]:
        """Per phrase: supported? and its best lexical overlap."""
        sentences = [s for s in _SENT.split(report) if s.strip()]
        sentence_words = [set(content_words(s, self.stem_chars)) for s in sentences]
        scores = [self.overlap(p, sentence_words) for p in phrases]
        ok = [s > 0 and s >= self.min_overlap for s in scores]
        if self.embed_fn is not None and not all(ok) and sentences:
            todo = [i for i, good in enumerate(ok) if not good and scores[i] > 0]
            if todo:
                emb_p = np.asarray(self.embed_fn([phrases[i] for i in todo]), dtype=np.float64)
                emb_s = np.asarray(self.embed_fn(sentences), dtype=np.float64)
                emb_p /= np.linalg.norm(emb_p, axis=1, keepdims=True) + 1e-12
                emb_s /= np.linalg.norm(emb_s, axis=1, keepdims=True) + 1e-12
                best = (emb_p @ emb_s.T).max(axis=1)
                for j, i in enumerate(todo):
                    ok[i] = bool(best[j] >= self.semantic_threshold)
        return ok, scores
