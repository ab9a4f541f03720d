"""Verification of LLM evidence phrases against the report text.

A phrase is *supported* when some report sentence contains at least ``min_overlap`` of the
phrase's content words (stop words removed, light stemming: lower case, the first
``stem_chars`` characters). A phrase with no content word in common with any sentence is
always rejected. Optionally (``embed_fn``), a phrase that fails the lexical test is still
accepted when its embedding has cosine >= ``semantic_threshold`` with a sentence embedding.

A phrase that passes is then checked against the sentences it matched, with the rule
extractor's lexicon and NegEx scopes (:class:`RuleEvidenceExtractor`): the finding the phrase
names must be mentioned there, on the same side, with the same certainty. Rejection reasons
(:data:`REJECTION_REASONS`):

* ``unsupported``: too few of the phrase's words in any one sentence;
* ``laterality``: the phrase states a side the sentence does not ("right" for a left
  effusion, "bilateral" for a left one, a side where the sentence names none);
* ``negation``: the phrase asserts what the sentence negates or calls normal ("heart size
  is enlarged" for "Heart size is normal"), or negates what the sentence asserts;
* ``certainty``: hedged vs asserted disagree ("pneumonia" for "possible pneumonia");
* ``finding_mismatch``: the sentence does not mention the phrase's finding at all.
"""
import re
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from . import lexicon as lex

_TOKEN = re.compile(r'[a-z0-9]+')
_SENT = re.compile(r'(?<!\d)\.(?!\d)|[\n;!?]')
STOP_WORDS = frozenset('''
a an the of in on at to for from with without and or but nor is are was were be been being
there this that these those it its as by into onto over under than then also again both
each any some no not seen noted present identified see which who whom what when where
while has have had do does did can could may might will would shall should must
'''.split())


#: Why a phrase was rejected, in the order they are tested.
REJECTION_REASONS = ('unsupported', 'laterality', 'negation', 'certainty', 'finding_mismatch')
_RULE = None


def _rule_extractor():
    """The rule extractor whose lexicon and scopes the consistency checks use (built once)."""
    global _RULE
    if _RULE is None:
        from .rule_extractor import RuleEvidenceExtractor
        _RULE = RuleEvidenceExtractor()
    return _RULE


def sides(text: str) -> frozenset:
    """Sides (``'left'``, ``'right'``) that the words of ``text`` state."""
    out = set()
    for w in re.findall(r"[a-z][a-z-]*", text.lower()):
        out.update(lex.LATERALITY_WORDS.get(w, ()))
    return frozenset(out)


def mentions(text: str) -> List[Tuple[str, str, frozenset]]:
    """``(finding name, certainty, sides)`` of every lexicon mention in ``text`` (one
    sentence), with the rule extractor's NegEx certainty and the sides of its phrase."""
    s = text.lower().strip()
    question = s.endswith('?')
    found = _rule_extractor()._analyse_sentence(s.rstrip('?'), question, None)
    return [(f.finding, f.certainty, sides(f.phrase)) for f in found if f.finding]


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
                    checks=['laterality', 'negation', 'certainty'],
                    semantic=self.embed_fn is not None,
                    semantic_threshold=self.semantic_threshold if self.embed_fn else None)

    def overlap(self, phrase: str, sentence_words: Sequence[set]) -> float:
        words = content_words(phrase, self.stem_chars)
        if not words:
            return 0.0
        return max((sum(w in s for w in words) / len(words) for s in sentence_words), default=0.0)

    def split(self, phrases: Sequence[str], report: str) -> Tuple[List[bool], List[float]]:
        """Per phrase: supported by the words of one sentence? and its best lexical overlap
        (no consistency checks; see :meth:`check`)."""
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

    def check(self, phrases: Sequence[str], report: str,
              certainties: Optional[Sequence[str]] = None) -> List[Optional[str]]:
        """Per phrase: None when the report supports it, else the rejection reason.

        Args:
            phrases: the N evidence phrases.
            report: the report text.
            certainties: the N certainties the extractor claims (``'positive' | 'uncertain'
                | 'negated'``); default positive. A phrase whose own words negate or hedge it
                ("no pneumothorax") uses that certainty instead.

        Returns:
            N entries, each None or one of :data:`REJECTION_REASONS`.
        """
        certainties = list(certainties) if certainties is not None else ['positive'] * len(phrases)
        if len(certainties) != len(phrases):
            raise ValueError(f'PhraseVerifier.check: {len(phrases)} phrases but '
                             f'{len(certainties)} certainties')
        ok, _ = self.split(phrases, report)
        sentences = [s for s in _SENT.split(report) if s.strip()]
        sentence_words = [set(content_words(s, self.stem_chars)) for s in sentences]
        out: List[Optional[str]] = []
        for phrase, claimed, good in zip(phrases, certainties, ok):
            if not good:
                out.append('unsupported')
                continue
            words = content_words(phrase, self.stem_chars)
            scored = sorted(((sum(w in sw for w in words) / max(1, len(words)), i)
                             for i, sw in enumerate(sentence_words)),
                            key=lambda t: (-t[0], t[1]))
            candidates = [sentences[i] for score, i in scored
                          if score > 0 and score >= min(self.min_overlap, scored[0][0])]
            reasons = [self._consistency(phrase, claimed, s) for s in candidates]
            out.append(None if not reasons or None in reasons else reasons[0])
        return out

    @staticmethod
    def _consistency(phrase: str, claimed: str, sentence: str) -> Optional[str]:
        """None when ``sentence`` states the phrase's finding on its side and certainty."""
        own = mentions(phrase)
        phrase_sides = sides(phrase)
        if not own:  # no lexicon finding in the phrase: only its sides can be checked
            return None if phrase_sides <= sides(sentence) else 'laterality'
        said = mentions(sentence)
        for name, own_certainty, own_sides in own:
            certainty = own_certainty if own_certainty != 'positive' else claimed
            same = [m for m in said if m[0] == name]
            if not same:
                neg = any(c == 'negated' for _, c, _ in said) or _negates(sentence)
                return 'negation' if neg and certainty != 'negated' else 'finding_mismatch'
            sided = [m for m in same if (own_sides or phrase_sides) <= m[2]]
            if not sided:
                return 'laterality'
            if any(m[1] == certainty for m in sided):
                continue
            return 'negation' if 'negated' in (certainty, *(m[1] for m in sided)) \
                else 'certainty'
        return None


def _negates(sentence: str) -> bool:
    """True when ``sentence`` holds a NegEx negation trigger ("normal", "no", "without")."""
    lx = _rule_extractor()._lx
    return any(lx.trigger_cats[m.lastindex - 1] & {'neg_pre', 'neg_short', 'neg_post'}
               for m in lx.trigger_re.finditer(sentence.lower()) if m.lastindex)
