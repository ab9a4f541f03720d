"""The evidence policy: which extracted findings enter ``E(R)`` (Eq. 2).

Positive findings are kept; uncertain ones are kept with a hedge flag when
``keep_uncertain`` (default True); negated findings are dropped; devices/lines and
comparison-only statements are dropped by default. A report with no kept finding gets exactly
one canonical phrase (``no_finding_phrase``) so that ``|E(R)| >= 1``.
"""
import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Dict, List, Tuple

from .schema import NO_FINDING_PHRASE, EvidenceFinding

_LOCATION_WORDS = re.compile(
    r'\b(left|right|bilateral|both|upper|middle|lower|lobe|base|bases|basilar|apex|apices|'
    r'apical|lingula|lingular|perihilar|hilar|retrocardiac|midlung|lateral|medial|'
    r'posterior|anterior)\b')


@dataclass(frozen=True)
class EvidencePolicy:
    """What enters ``E(R)``.

    Args:
        keep_uncertain: keep hedged findings ("cannot exclude", "possible"), flagged hedged.
        keep_negated: keep negated findings (off: "no pneumothorax" is not evidence).
        keep_devices: keep tubes, lines, pacemakers, sternotomy wires.
        keep_comparisons: keep comparison-only statements ("no interval change"); the rule
            extractor also keeps temporal words ("stable", "improved") inside phrases.
        no_finding_phrase: the one phrase of a report without kept findings.
        hedge_in_phrase: prefix uncertain phrases with ``'possible '`` (default off: the hedge
            is a flag of the finding, the phrase stays as the report wrote it).
        dedupe: drop a finding whose (finding name, location) repeats an earlier one (a
            finding restated in the impression); the longer phrase is kept at the first place.
    """

    keep_uncertain: bool = True
    keep_negated: bool = False
    keep_devices: bool = False
    keep_comparisons: bool = False
    no_finding_phrase: str = NO_FINDING_PHRASE
    hedge_in_phrase: bool = False
    dedupe: bool = True

    def __post_init__(self):
        if not str(self.no_finding_phrase).strip():
            raise ValueError('EvidencePolicy.no_finding_phrase must be a non-empty phrase')

    def to_dict(self) -> dict:
        return asdict(self)

    def apply(self, findings: List[EvidenceFinding]) -> Tuple[List[EvidenceFinding], Dict[str, int]]:
        """Filter ``findings`` (report order) by the policy.

        Returns:
            ``(kept, dropped)``: the kept findings and a count of dropped ones by reason
            (``negated``, ``uncertain``, ``device``, ``comparison``, ``duplicate``).
        """
        dropped: Counter = Counter()
        kept: List[EvidenceFinding] = []
        for f in findings:
            if f.kind == 'device' and not self.keep_devices:
                dropped['device'] += 1
                continue
            if f.kind == 'comparison' and not self.keep_comparisons:
                dropped['comparison'] += 1
                continue
            if f.certainty == 'negated' and not self.keep_negated:
                dropped['negated'] += 1
                continue
            if f.certainty == 'uncertain' and not self.keep_uncertain:
                dropped['uncertain'] += 1
                continue
            if f.certainty == 'uncertain' and self.hedge_in_phrase and \
                    not f.phrase.lower().startswith('possible '):
                f = f.model_copy(update={'phrase': f'possible {f.phrase}'})
            kept.append(f)
        if self.dedupe:
            kept, n_dup = _dedupe(kept)
            if n_dup:
                dropped['duplicate'] += n_dup
        return kept, dict(dropped)

    def phrases(self, kept: List[EvidenceFinding]) -> List[str]:
        """The phrases of ``E(R)``: the kept phrases or ``[no_finding_phrase]``."""
        return [f.phrase for f in kept] if kept else [self.no_finding_phrase]


def _location_key(f: EvidenceFinding) -> frozenset:
    text = f.location if f.location else f.phrase
    return frozenset(_LOCATION_WORDS.findall(text.lower()))


def _dedupe(findings: List[EvidenceFinding]) -> Tuple[List[EvidenceFinding], int]:
    """Merge findings with the same (name, location words, certainty, kind)."""
    out: List[EvidenceFinding] = []
    index: Dict[tuple, int] = {}
    n_dup = 0
    for f in findings:
        name = f.finding or f.phrase.lower()
        key = (name, _location_key(f), f.certainty, f.kind)
        exact = next((i for i, g in enumerate(out) if g.phrase.lower() == f.phrase.lower()), None)
        if exact is not None:
            n_dup += 1
            continue
        if key in index:
            n_dup += 1
            i = index[key]
            if len(f.phrase.split()) > len(out[i].phrase.split()):
                out[i] = f
            continue
        index[key] = len(out)
        out.append(f)
    return out, n_dup
