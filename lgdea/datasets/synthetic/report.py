"""Radiology-style report grammar: FINDINGS + IMPRESSION from a study's findings.

:func:`write_report` turns the study-level findings (category, side, severity, zone, pattern)
into a sectioned report and returns, for every positive finding, the exact substring that
mentions it (``mention`` with its character ``span``), its canonical evidence phrase
(``evidence``), whether it was hedged and which surface kind was used (common / synonym /
misspelling / abbreviation). It also returns the categories it negated and the absent
categories it hedged, so that a test can check that no negated category is a label.
"""
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import lexicon as lx
from .config import FINDING_KEYS, SEVERITIES

_SEV_INDEX = {s: i for i, s in enumerate(SEVERITIES)}
#: Anatomical order of the findings section (lungs, pleura, heart); devices and bones apart.
_ORDER = dict(atelectasis=1, consolidation=1, edema=1, lung_opacity=1, pneumonia=1,
              pleural_effusion=2, pneumothorax=2, cardiomegaly=3)
_PARENCHYMAL = ('atelectasis', 'consolidation', 'edema', 'lung_opacity', 'pneumonia')


def _pick(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def _allowed(template, sev_idx: int) -> Optional[str]:
    """Template string if it applies to severity ``sev_idx`` (tuples carry min/max limits)."""
    if isinstance(template, str):
        return template
    if len(template) == 2:
        text, hi = template
        lo = 0
    else:
        text, lo, hi = template
    return text if lo <= sev_idx <= hi else None


def _fill(template: str, **slots) -> str:
    text = template.format(**slots)
    return re.sub(r'\s+', ' ', text).strip()


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _location(finding: dict, rng, canonical: bool = False) -> Tuple[str, str]:
    """(location noun with determiner, location adjective) of a focal finding."""
    zone = finding.get('zone') or 'lower'
    lat = 'bi' if finding['side'] == 'bilateral' else 'uni'
    side = finding['side']
    nouns = list(lx.LOC_NOUN[zone][lat])
    if lat == 'uni':
        nouns += list(lx.LOC_EXTRA.get(zone, {}).get(side, ()))
    adjs = lx.LOC_ADJ[zone][lat]
    if canonical:
        return nouns[0].format(side=side), adjs[0].format(side=side)
    return _pick(rng, nouns).format(side=side), _pick(rng, adjs).format(side=side)


def _slots(finding: dict, rng, canonical: bool = False) -> dict:
    key = finding['category']
    sev_idx = _SEV_INDEX[finding['severity']]
    words = lx.SEVERITY_WORDS[key][sev_idx]
    loc, locadj = _location(finding, rng, canonical)
    return dict(sev=words[0] if canonical else _pick(rng, words),
                sevadv=lx.SEVERITY_ADVERBS[sev_idx][0] if canonical else _pick(
                    rng, lx.SEVERITY_ADVERBS[sev_idx]),
                side=finding['side'], loc=loc, locadj=locadj)


def canonical_evidence(finding: dict) -> str:
    """Canonical evidence phrase, e.g. ``'moderate right pleural effusion'``."""
    key = finding['category']
    table = lx.CANONICAL[key]
    if finding.get('pattern') == 'peripheral':
        form = 'peripheral'
    else:
        form = 'bi' if finding['side'] == 'bilateral' and 'bi' in table else 'uni'
    return _fill(table[form], **_slots(finding, None, canonical=True))


def grounding_phrase(finding: dict, rng: np.random.Generator) -> str:
    """A short MS-CXR-like grounding phrase of ``finding`` (common words, no typos)."""
    key = finding['category']
    table = lx.GROUNDING[key]
    if finding.get('pattern') == 'peripheral':
        form = 'peripheral'
    else:
        form = 'bi' if finding['side'] == 'bilateral' and 'bi' in table else 'uni'
    return _fill(_pick(rng, table[form]), **_slots(finding, rng))


def _surface_kind(rng, cfg) -> str:
    r = rng.random()
    if r < cfg.synonym_rate:
        return 'synonym'
    if r < cfg.synonym_rate + cfg.misspelling_rate:
        return 'misspelling'
    if r < cfg.synonym_rate + cfg.misspelling_rate + cfg.abbreviation_rate:
        return 'abbreviation'
    return 'common'


def positive_clause(finding: dict, rng, cfg, need_np: bool = False) -> Tuple[str, str, bool]:
    """(clause text, surface kind, is_full_clause) mentioning a positive finding."""
    key = finding['category']
    sev_idx = _SEV_INDEX[finding['severity']]
    kind = _surface_kind(rng, cfg)
    table = lx.POSITIVE[key]
    lat = 'bi' if finding['side'] == 'bilateral' else 'uni'
    slots = _slots(finding, rng)

    def templates(k):
        if finding.get('pattern') == 'peripheral':
            pool = table['peripheral'].get('common' if k == 'misspelling' else k, ())
        else:
            group = table.get('common' if k == 'misspelling' else k, {})
            pool = group.get(lat, group.get('uni', ())) if lat == 'bi' else group.get('uni', ())
        out = [t for t in (_allowed(t, sev_idx) for t in pool) if t is not None]
        if need_np:
            out = [t for t in out if not t.startswith('S:')]
        return out

    pool = templates(kind)
    if not pool:
        kind = 'common'
        pool = templates(kind)
    template = _pick(rng, pool)
    terms = lx.TERMS[key]['misspelling' if kind == 'misspelling' else 'common']
    term = _pick(rng, terms)
    full = template.startswith('S:')
    text = _fill(template[2:] if full else template, term=term, **slots)
    return text, kind, full


def negation_item(key: str, rng, cfg) -> Tuple[str, bool]:
    """("no ..." phrase or full clause, is_full_clause) negating an absent finding."""
    kind = _surface_kind(rng, cfg)
    table = lx.NEGATIVE[key]
    # misspellings use the common templates with a misspelled {term}; a kind without
    # templates for this finding falls back to the common ones
    pool = table['common'] if kind == 'misspelling' else (table.get(kind) or table['common'])
    template = _pick(rng, pool)
    term = _pick(rng, lx.TERMS[key]['misspelling' if kind == 'misspelling' else 'common'])
    full = template.startswith('S:')
    return _fill(template[2:] if full else template, term=term), full


class _Builder:
    """Accumulates sentences and records the character span of each finding mention."""

    def __init__(self):
        self.parts: List[str] = []
        self.length = 0
        self.spans: Dict[int, Tuple[int, int]] = {}

    def add(self, sentence: str, mention: Optional[Tuple[int, str]] = None):
        if self.parts:
            self.parts.append(' ')
            self.length += 1
        if mention is not None:
            idx, text = mention
            pos = sentence.find(text)
            if pos < 0:
                raise RuntimeError(f'report grammar: mention {text!r} not in {sentence!r}')
            if idx not in self.spans:
                self.spans[idx] = (self.length + pos, self.length + pos + len(text))
        self.parts.append(sentence)
        self.length += len(sentence)

    def text(self) -> str:
        return ''.join(self.parts)


def _np_sentence(clause: str, rng, plural: bool, uncertain: bool, change: bool,
                 without: Optional[str]) -> Tuple[str, str]:
    """Frame a noun-phrase clause; returns (sentence, clause as it appears in it)."""
    frames = lx.HEDGE_FRAMES if uncertain else (lx.CHANGE_FRAMES if change else lx.NP_FRAMES)
    frame = _pick(rng, frames)
    cap = frame.startswith('{NP}')
    shown = _cap(clause) if cap else clause
    sentence = frame.replace('{NP}', shown).replace('{np}', clause).replace(
        '{is}', 'are' if plural else 'is')
    if without:
        sentence = sentence[:-1] + f', without {without}.'
    return sentence, shown


def write_report(findings: List[dict], view: str, devices: List[dict], rng: np.random.Generator,
                 cfg, allow_uncertain: bool = True) -> dict:
    """Write one report; see the module docstring for the returned fields.

    Args:
        findings: the study's findings (dicts with category / side / severity / zone / pattern).
        view: 'PA' or 'AP' (chooses the technique sentence).
        devices: the study's devices (``type`` keys of :data:`lexicon.DEVICE_SENTENCES`).
        rng: the report's own generator (text knobs never change the images).
        cfg: a :class:`SyntheticCXRConfig` (text rates).
        allow_uncertain: False disables hedging (used for the 5xN retrieval split, whose
            labels, as with the CheXpert labeller, exclude uncertain mentions).
    """
    present = {f['category'] for f in findings}
    absent = [k for k in FINDING_KEYS if k not in present]
    uncertain_rate = cfg.uncertain_rate if allow_uncertain else 0.0
    hedge_rate = cfg.hedge_absent_rate if allow_uncertain else 0.0

    # ---- negations, hedged absent findings and normal statements
    hedged_absent: List[str] = []
    candidates = [k for k in absent if k in lx.HEDGED_ABSENT]
    if candidates and rng.random() < hedge_rate:
        hedged_absent.append(_pick(rng, candidates))
    negated: List[str] = []
    neg_items: List[Tuple[str, str, bool]] = []  # (key, text, full_clause)
    lungs_clear = not (present & set(_PARENCHYMAL)) and 'pneumothorax' not in present \
        and 'pleural_effusion' not in present and not hedged_absent
    use_lungs_clear = lungs_clear and rng.random() < 0.7
    for key in absent:
        if key in hedged_absent:
            continue
        if use_lungs_clear and key in _PARENCHYMAL:
            negated.append(key)  # asserted absent by "the lungs are clear"
            continue
        if rng.random() < cfg.negation_rate:
            text, full = negation_item(key, rng, cfg)
            neg_items.append((key, text, full))
            negated.append(key)

    # ---- positive sentences
    has_comparison = rng.random() < cfg.boilerplate_rate
    prior_exists = has_comparison and rng.random() < 0.8
    mentions = []
    sentences: List[Tuple[float, str, Optional[Tuple[int, str]]]] = []
    joinable = [item for item in neg_items if not item[2] and item[1].startswith('no ')]
    for idx, finding in enumerate(findings):
        uncertain = rng.random() < uncertain_rate
        change = prior_exists and not uncertain and rng.random() < cfg.change_rate
        clause, kind, full = positive_clause(finding, rng, cfg, need_np=uncertain)
        plural = finding['category'] == 'pleural_effusion' and finding['side'] == 'bilateral'
        without = None
        if joinable and rng.random() < 0.25:
            item = joinable.pop(int(rng.integers(len(joinable))))
            neg_items.remove(item)
            without = item[1][3:]
        if full:
            shown = _cap(clause)
            sentence = shown + (f', without {without}.' if without else '.')
        else:
            sentence, shown = _np_sentence(clause, rng, plural, uncertain, change, without)
        order = _ORDER[finding['category']] + rng.uniform(-0.6, 0.6)
        sentences.append((order, sentence, (idx, shown)))
        mentions.append(dict(category=finding['category'], evidence=canonical_evidence(finding),
                             uncertain=bool(uncertain), surface=kind, change=bool(change)))

    # negation sentences: group "no X" items with "or", keep full clauses alone
    simple = [item for item in neg_items if not item[2]]
    rng.shuffle(simple)
    while simple:
        # "no evidence of X" reads wrongly after "or"/a comma: it stays a sentence of its own
        take = 1 if simple[0][1].startswith('no evidence') else min(len(simple), int(
            rng.integers(1, 4)))
        take = next((k for k in range(1, take) if simple[k][1].startswith('no evidence')), take)
        group, simple = simple[:take], simple[take:]
        texts = [t for _, t, _ in group]
        if len(texts) == 1:
            body = texts[0]
        else:
            rest = [t[3:] if t.startswith('no ') else t for t in texts[1:]]
            body = texts[0] + (', ' + ', '.join(rest[:-1]) if len(rest) > 1 else '') + \
                (',' if len(rest) > 1 else '') + ' or ' + rest[-1]
        order = min(_ORDER[k] for k, _, _ in group) + rng.uniform(-0.5, 0.7)
        sentences.append((order, _cap(body) + '.', None))
    for key, text, full in neg_items:
        if full:
            sentences.append((_ORDER[key] + rng.uniform(-0.5, 0.5), _cap(text) + '.', None))
    hedge_sentences = []
    for key in hedged_absent:
        text = _fill(_pick(rng, lx.HEDGED_ABSENT[key]), side=_pick(rng, ('right', 'left')))
        hedge_sentences.append(_cap(text) + '.')
        sentences.append((_ORDER[key] + rng.uniform(-0.5, 0.5), hedge_sentences[-1], None))
    if use_lungs_clear:
        sentences.append((0.9, _pick(rng, lx.LUNGS_CLEAR), None))
    if rng.random() < cfg.boilerplate_rate * 0.6:
        sentences.append((5.0, _pick(rng, lx.BONES), None))
    device_sentences = []
    for device in devices:
        if rng.random() < cfg.device_mention_rate:
            device_sentences.append(_pick(rng, lx.DEVICE_SENTENCES[device['type']]))
    device_order = -1.0 if rng.random() < 0.5 else 4.5
    for s in device_sentences:
        sentences.append((device_order, s, None))
    sentences.sort(key=lambda item: item[0])

    # ---- impression: positives again (fresh surface forms), else a normal statement
    impression_items = []
    impression_kinds = []
    for idx, finding in enumerate(findings):
        clause, kind, full = positive_clause(finding, rng, cfg,
                                             need_np=mentions[idx]['uncertain'])
        if mentions[idx]['uncertain']:
            clause = _pick(rng, ('possible ', 'probable ', 'suspected ')) + clause
        impression_items.append((idx, _cap(clause)))
        impression_kinds.append(kind)
    if not impression_items:
        impression_sents = [_pick(rng, lx.IMPRESSION_NORMAL)]
        if hedge_sentences:
            impression_sents = ['No definite acute cardiopulmonary process.'] + hedge_sentences
    else:
        impression_sents = None

    # ---- assemble
    impression_only = rng.random() < cfg.impression_only_rate
    builder = _Builder()
    if not impression_only:
        builder.add('FINDINGS:')
        if rng.random() < cfg.boilerplate_rate:
            builder.add(_pick(rng, lx.TECHNIQUE[view]))
        if has_comparison:
            builder.add(_pick(rng, lx.COMPARISON) if prior_exists else _pick(rng,
                                                                            lx.NO_COMPARISON))
        for _, sentence, mention in sentences:
            builder.add(sentence, mention)
        builder.parts.append('\n\n')
        builder.length += 2
        builder.parts.append('IMPRESSION:')
        builder.length += len('IMPRESSION:')
    else:
        builder.add('IMPRESSION:')
    numbered = len(impression_items) > 1 and rng.random() < 0.6
    if impression_sents is not None:
        for s in impression_sents:
            builder.add(s)
    else:
        for k, (idx, clause) in enumerate(impression_items):
            sentence = (f'{k + 1}. ' if numbered else '') + clause + '.'
            builder.add(sentence, (idx, clause))
    text = builder.text()
    for idx, mention in enumerate(mentions):
        start, end = builder.spans[idx]
        mention.update(mention=text[start:end], span=[start, end])
    if impression_only:  # only what the impression says is in the text
        negated = []
        if findings:
            hedged_absent = []
        for mention, kind in zip(mentions, impression_kinds):
            mention.update(surface=kind, change=False)
    return dict(text=text, mentions=mentions, negated=sorted(set(negated)),
                hedged_absent=hedged_absent)
