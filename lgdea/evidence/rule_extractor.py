"""Deterministic, offline evidence extractor: lexicon + NegEx-style scopes (Eq. 2).

``RuleEvidenceExtractor`` reads the FINDINGS / IMPRESSION sections of a report (text before
the first header only when the report has none), splits them into sentences, finds finding
and device mentions with one precompiled regular expression, and classifies each mention as
positive, uncertain or negated with NegEx-style trigger scopes (pre- and post-triggers,
termination terms, pseudo-negations). Each kept mention becomes a short phrase grounded in the
report: the mention plus its contiguous modifiers ("small left", "mild") and a trailing
location ("at the right base"). The :class:`~lgdea.evidence.policy.EvidencePolicy` then
decides what enters ``E(R)``.

Throughput: ~6,000 reports per CPU-second on one core
(``benchmarks/bench_evidence_extraction.py``; numbers in docs/evidence.md).
"""
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

try:  # Python >= 3.11
    from re import _constants as _c
    from re import _parser
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_constants as _c
    import sre_parse as _parser

from lgdea.registry import EVIDENCE_EXTRACTORS

from . import lexicon as lex
from .base import BaseEvidenceExtractor, stable_hash
from .schema import EvidenceFinding

_WORD_CHARS = r"[\w'-]"


def _first_chars(items) -> Tuple[Optional[set], bool]:
    """Possible first characters of a parsed pattern and whether it can match ''.

    Returns ``(None, ...)`` when any character may come first.
    """
    acc: set = set()
    for op, av in items:
        if op is _c.LITERAL:
            return acc | {chr(av)}, False
        if op is _c.IN:
            for sub_op, sub_av in av:
                if sub_op is _c.LITERAL:
                    acc.add(chr(sub_av))
                elif sub_op is _c.RANGE:
                    acc.update(chr(c) for c in range(sub_av[0], sub_av[1] + 1))
                else:
                    return None, False
            return acc, False
        if op is _c.SUBPATTERN:
            first, nullable = _first_chars(av[-1].data)
        elif op is _c.BRANCH:
            first, nullable = set(), False
            for branch in av[1]:
                f, n = _first_chars(branch.data)
                if f is None:
                    return None, False
                first |= f
                nullable = nullable or n
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            first, nullable = _first_chars(av[2].data)
            nullable = nullable or av[0] == 0
        elif op is _c.AT:
            continue
        else:
            return None, False
        if first is None:
            return None, False
        acc |= first
        if not nullable:
            return acc, False
    return acc, True


def _alternation(patterns: Sequence[str]) -> Tuple[str, List[int]]:
    """One capturing group per pattern, dispatched on the first character.

    Python's ``re`` tries every branch of an alternation at every position; grouping the
    branches behind a one-character lookahead makes a scan ~10x faster. Order inside a
    bucket follows ``patterns`` (longest first), so leftmost-longest matching is kept.

    Returns:
        ``(regex, owners)``: ``owners[g - 1]`` is the index in ``patterns`` of group ``g``.
    """
    buckets: Dict[Optional[str], List[int]] = {}
    for i, p in enumerate(patterns):
        if re.compile(p).groups:
            raise ValueError(f'lexicon pattern {p!r} must not contain capturing groups; '
                             'use (?:...)')
        first, nullable = _first_chars(_parser.parse(p).data)
        for ch in ([None] if first is None or nullable else sorted(first)):
            buckets.setdefault(ch, []).append(i)
    parts, owners = [], []
    for ch, members in buckets.items():
        body = '|'.join(f'({patterns[i]})' for i in members)
        owners.extend(members)
        parts.append(body if ch is None else f'(?={re.escape(ch)})(?:{body})')
    return '|'.join(parts), owners


def _bounded(body: str) -> str:
    return rf'(?<!{_WORD_CHARS})(?:{body})(?!{_WORD_CHARS})'


class _CompiledLexicon:
    """All regular expressions of the rule extractor, compiled once."""

    def __init__(self, findings: Dict[str, List[str]], devices: Dict[str, List[str]]):
        entries: List[Tuple[str, str, str]] = []  # (pattern, name, kind)
        for name, pats in findings.items():
            entries += [(p, name, 'finding') for p in pats]
        for name, pats in devices.items():
            entries += [(p, name, 'device') for p in pats]
        entries.sort(key=lambda e: -len(e[0]))
        body, owners = _alternation([e[0] for e in entries])
        self.mention_info = [(entries[i][1], entries[i][2]) for i in owners]
        self.mention_re = re.compile(_bounded(body))

        categories: Dict[str, set] = {}
        for cat, pats in (('pseudo', lex.PSEUDO_NEGATION), ('unc_pre', lex.UNCERTAIN_PRE),
                          ('unc_post', lex.UNCERTAIN_POST), ('neg_pre', lex.NEGATION_PRE),
                          ('neg_short', lex.NEGATION_PRE_SHORT),
                          ('neg_post', lex.NEGATION_POST), ('term', lex.TERMINATION)):
            for p in pats:
                categories.setdefault(p, set()).add(cat)
        # ':' is matched outside the word-bounded alternation (it is not a word); it is the
        # last group, so group index -> categories stays aligned.
        trig = sorted((p for p in categories if p != ':'), key=lambda p: -len(p))
        body, owners = _alternation(trig)
        self.trigger_cats = [frozenset(categories[trig[i]]) for i in owners] + \
            [frozenset({'term'})]
        self.trigger_re = re.compile(_bounded(body) + '|(:)')

        self.false_positive_re = re.compile(_bounded('|'.join(lex.FALSE_POSITIVE_PATTERNS)))
        self.comparison_re = re.compile(_bounded('|'.join(lex.COMPARISON_TERMS)))
        names = sorted(lex.SECTION_NAMES, key=len, reverse=True)
        self.section_re = re.compile(
            r'(?:^|(?<=[\n.]))[ \t]*(' + '|'.join(re.escape(n) for n in names) + r')[ \t]*:',
            re.IGNORECASE)
        self.sentence_re = re.compile(r'(?<!\d)\.(?!\d)|[\n;!]|(\?)')
        self.list_marker_re = re.compile(r'^\s*(?:\d{1,2}[.)]|[-*\u2022])(?=\s|$)\s*')
        self.modifiers = frozenset(lex.MODIFIER_WORDS)
        self.temporal = frozenset(lex.TEMPORAL_WORDS)
        self.number_re = re.compile(r'^\d+(?:\.\d+)?(?:cm|mm)?$')
        loc_any = '|'.join(re.escape(w) for w in sorted(lex.LOCATION_WORDS, key=len, reverse=True))
        loc_any += r'|\d+(?:st|nd|rd|th)|[tlc]\d{1,2}(?:-[tlc]?\d{1,2})?'
        core = [w for w in lex.LOCATION_WORDS if w not in ('and', 'of', 'the')]
        loc_core = '|'.join(re.escape(w) for w in sorted(core, key=len, reverse=True))
        loc_core += r'|\d+(?:st|nd|rd|th)|[tlc]\d{1,2}(?:-[tlc]?\d{1,2})?'
        preps = '|'.join(sorted(lex.LOCATION_PREPOSITIONS, key=len, reverse=True))
        self.location_re = re.compile(
            rf'[ \t]+(?:{preps})[ \t]+(?:the[ \t]+)?(?:(?:{loc_any})(?:[ \t]+|-)){{0,6}}'
            rf'(?:{loc_core})(?![\w-])')
        self.location_field = frozenset(lex.LOCATION_FIELD_WORDS)
        self.subject_re = re.compile(
            r'(?:^|\s)((?:the\s+)?(?:(?:left|right|bilateral|upper|lower)\s+)?(?:lungs?|heart|'
            r'hemidiaphragms?|diaphragms?|bones|osseous structures|aorta|mediastinum|hila|hilum|'
            r'lobes?|bases|interstitium|vasculature)\s+(?:is|are|appears?|remains?|seems?)\s+'
            r'(?:(?:again|still|now|slightly|mildly|moderately|markedly|severely|diffusely|'
            r'somewhat|minimally)\s+)?)$')


@EVIDENCE_EXTRACTORS.register_module(name=['RuleEvidenceExtractor', 'rule'])
class RuleEvidenceExtractor(BaseEvidenceExtractor):
    """Offline, deterministic lexicon + NegEx evidence extractor (the default).

    Args:
        policy: :class:`~lgdea.evidence.policy.EvidencePolicy` fields (``keep_uncertain``,
            ``keep_devices``, ``keep_comparisons``, ``no_finding_phrase``, ...).
        sections: section names that are read (others such as INDICATION, HISTORY,
            COMPARISON, TECHNIQUE are skipped). Text before the first header is read only
            when the report has no recognised header.
        neg_window: max words between a pre-negation trigger and the finding.
        unc_window: max words between a pre-uncertainty trigger and the finding.
        post_window: max words between the finding and a post-trigger.
        short_window: max words for narrow triggers ("normal interstitial markings").
        max_phrase_words: phrases are cut to this many words.
        extra_findings: extra ``{finding_name: [regex, ...]}`` merged into the lexicon.
        extra_devices: extra ``{device_name: [regex, ...]}``.

    Example:
        >>> ext = RuleEvidenceExtractor()
        >>> ext('FINDINGS: Mild cardiomegaly. No pneumothorax.')
        ['mild cardiomegaly']
    """

    extractor_id = 'rule'
    version = '1.0'
    offline = True

    def __init__(self, policy: Optional[dict] = None,
                 sections: Iterable[str] = lex.DEFAULT_KEEP_SECTIONS, neg_window: int = 10,
                 unc_window: int = 8, post_window: int = 6, short_window: int = 2,
                 max_phrase_words: int = 12,
                 extra_findings: Optional[Dict[str, List[str]]] = None,
                 extra_devices: Optional[Dict[str, List[str]]] = None):
        self._record_init_args(locals())
        super().__init__(policy)
        self.sections = tuple(sections)
        unknown = set(self.sections) - set(lex.SECTION_NAMES.values())
        if unknown:
            raise ValueError(f'RuleEvidenceExtractor(sections=...): unknown section names '
                             f'{sorted(unknown)}; known: {sorted(set(lex.SECTION_NAMES.values()))}')
        self.neg_window, self.unc_window = int(neg_window), int(unc_window)
        self.post_window, self.short_window = int(post_window), int(short_window)
        self.max_phrase_words = int(max_phrase_words)
        findings = {k: list(v) for k, v in lex.FINDING_PATTERNS.items()}
        for k, v in (extra_findings or {}).items():
            findings.setdefault(k, []).extend(v)
        devices = {k: list(v) for k, v in lex.DEVICE_PATTERNS.items()}
        for k, v in (extra_devices or {}).items():
            devices.setdefault(k, []).extend(v)
        self._lexicon_hash = stable_hash([findings, devices, _trigger_tables()])
        self._lx = _CompiledLexicon(findings, devices)

    # ------------------------------------------------------------------------ identity
    def config_dict(self) -> dict:
        return dict(policy=self.policy.to_dict(), sections=list(self.sections),
                    neg_window=self.neg_window, unc_window=self.unc_window,
                    post_window=self.post_window, short_window=self.short_window,
                    max_phrase_words=self.max_phrase_words, lexicon_hash=self._lexicon_hash)

    # ------------------------------------------------------------------------ sections
    def read_sections(self, text: str) -> List[str]:
        """Bodies of the sections that are read, in report order."""
        heads = list(self._lx.section_re.finditer(text))
        if not heads:
            return [text]
        bodies = []
        for i, h in enumerate(heads):
            end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
            name = lex.SECTION_NAMES[' '.join(h.group(1).lower().split())]
            if name in self.sections:
                bodies.append(text[h.end():end])
        return bodies

    def sentences(self, body: str) -> List[Tuple[str, bool]]:
        """``(sentence, is_question)`` pairs of a section body (lower case)."""
        out, start = [], 0
        for m in self._lx.sentence_re.finditer(body):
            out.append((body[start:m.start()], m.group(1) is not None))
            start = m.end()
        out.append((body[start:], False))
        cleaned = []
        for s, q in out:
            s = self._lx.list_marker_re.sub('', s).strip()
            if s:
                cleaned.append((s, q))
        return cleaned

    # ---------------------------------------------------------------------- extraction
    def extract(self, text: str):
        if not isinstance(text, str):
            raise TypeError(f'report text must be a str, got {type(text).__name__}')
        dropped: Dict[str, int] = {}
        findings = self._extract_findings(text, dropped)
        return self.make_record(text, status='ok', findings=findings, dropped_before=dropped)

    def _extract_findings(self, text: str, dropped: Optional[Dict[str, int]] = None
                          ) -> List[EvidenceFinding]:
        """Findings of ``text`` in report order.

        Args:
            dropped: when given, findings that the policy drops (negated, devices, ...) are
                only counted here, by reason, and not built (fast path); when None every
                finding is returned.
        """
        findings: List[EvidenceFinding] = []
        for body in self.read_sections(text.lower()):
            for sentence, question in self.sentences(body):
                findings.extend(self._analyse_sentence(sentence, question, dropped))
        return findings

    def _analyse_sentence(self, s: str, question: bool,
                          dropped: Optional[Dict[str, int]] = None) -> List[EvidenceFinding]:
        lx = self._lx
        if lx.false_positive_re.search(s):
            s = lx.false_positive_re.sub(lambda m: ' ' * len(m.group(0)), s)
        mentions = []
        for m in lx.mention_re.finditer(s):
            name, kind = lx.mention_info[m.lastindex - 1]
            mentions.append((m.start(), m.end(), name, kind))
        if not mentions:
            found = self._comparison_statement(s)
            if found and dropped is not None and \
                    self.policy.drop_reason('comparison', 'positive') is not None:
                dropped['comparison'] = dropped.get('comparison', 0) + 1
                return []
            return found
        triggers = [(m.start(), m.end(), lx.trigger_cats[m.lastindex - 1])
                    for m in lx.trigger_re.finditer(s)]
        terms = [t[0] for t in triggers if 'term' in t[2]]
        out = []
        drop_reason = self.policy.drop_reason
        for ms, me, name, kind in mentions:
            certainty = self._certainty(s, ms, me, triggers, terms, question)
            if dropped is not None:
                reason = drop_reason(kind, certainty)
                if reason is not None:
                    dropped[reason] = dropped.get(reason, 0) + 1
                    continue
            phrase = self._phrase(s, ms, me)
            words = phrase.split()
            loc = [w for w in dict.fromkeys(words) if w in lx.location_field]
            # model_construct: the values are built here and already valid (fast path)
            out.append(EvidenceFinding.model_construct(
                phrase=phrase, finding=name, kind=kind, location=' '.join(loc) if loc else None,
                certainty=certainty, hedged=certainty == 'uncertain'))
        return out

    def _certainty(self, s: str, ms: int, me: int, triggers, terms, question: bool) -> str:
        best: Optional[Tuple[int, str]] = None  # (distance in words, certainty)

        def offer(dist: int, label: str):
            nonlocal best
            if best is None or dist < best[0] or (dist == best[0] and label == 'negated'):
                best = (dist, label)

        for ts, te, cats in triggers:
            if ts >= ms and te <= me:  # trigger inside the mention ("heart is not enlarged")
                if cats & {'neg_pre', 'neg_post', 'neg_short'}:
                    offer(0, 'negated')
                elif cats & {'unc_pre', 'unc_post'}:
                    offer(0, 'uncertain')
                continue
            if te <= ms:
                if any(te <= p < ms for p in terms):
                    continue
                dist = len(s[te:ms].split())
                if 'neg_pre' in cats and dist <= self.neg_window:
                    offer(dist, 'negated')
                if 'neg_short' in cats and dist <= self.short_window:
                    offer(dist, 'negated')
                if 'unc_pre' in cats and dist <= self.unc_window:
                    offer(dist, 'uncertain')
            elif ts >= me:
                if any(me <= p < ts for p in terms):
                    continue
                dist = len(s[me:ts].split())
                if dist > self.post_window:
                    continue
                if 'neg_post' in cats:
                    offer(dist, 'negated')
                if 'unc_post' in cats:
                    offer(dist, 'uncertain')
        if best is None:
            return 'uncertain' if question else 'positive'
        if question and best[1] == 'positive':
            return 'uncertain'
        return best[1]

    def _phrase(self, s: str, ms: int, me: int) -> str:
        lx = self._lx
        allow_temporal = self.policy.keep_comparisons
        left: List[str] = []
        for tok in reversed(s[:ms].split()[-8:]):
            if tok.endswith((',', ':', '(', ')')):
                break
            if tok in lx.modifiers or lx.number_re.match(tok) or \
                    (allow_temporal and tok in lx.temporal):
                left.insert(0, tok)
            else:
                break
        while left and left[0] in ('and', 'to', 'x', 'or', 'of'):
            left.pop(0)
        if not left:
            subj = lx.subject_re.search(s[:ms])
            if subj is not None:
                left = [w for w in subj.group(1).split() if w != 'the']
        loc = lx.location_re.match(s, me)
        right = loc.group(0).split() if loc is not None else []
        words = left + s[ms:me].split() + right
        if not allow_temporal:
            words = [w for w in words if w not in lx.temporal] or words
        return ' '.join(words[:self.max_phrase_words])

    def _comparison_statement(self, s: str) -> List[EvidenceFinding]:
        if not self._lx.comparison_re.search(s):
            return []
        words = s.split()
        while words and words[0] in ('there', 'is', 'are', 'has', 'have', 'been', 'the', 'a', 'an'):
            words.pop(0)
        if not words:
            return []
        return [EvidenceFinding.model_construct(
            phrase=' '.join(words[:self.max_phrase_words]), finding=None, location=None,
            kind='comparison', certainty='positive', hedged=False)]


def _trigger_tables() -> list:
    return [lex.UNCERTAIN_PRE, lex.UNCERTAIN_POST, lex.NEGATION_PRE, lex.NEGATION_PRE_SHORT,
            lex.NEGATION_POST, lex.PSEUDO_NEGATION, lex.TERMINATION, lex.FALSE_POSITIVE_PATTERNS,
            lex.MODIFIER_WORDS, lex.TEMPORAL_WORDS, lex.LOCATION_WORDS, lex.LOCATION_PREPOSITIONS,
            lex.COMPARISON_TERMS, lex.SECTION_NAMES, lex.LOCATION_FIELD_WORDS]
