"""The evidence policy: which extracted findings enter ``E(R)`` (Eq. 2).

Positive findings are kept; uncertain ones are kept with a hedge flag when
``keep_uncertain`` (default True); negated findings are dropped; devices/lines and
comparison-only statements are dropped by default. A report with no kept finding gets exactly
one canonical phrase (``no_finding_phrase``) so that ``|E(R)| >= 1``.
"""
import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple

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

    def drop_reason(self, kind: str, certainty: str) -> Optional[str]:
        """Why a finding of this kind / certainty is dropped, or None when it is kept."""
        if kind == 'device' and not self.keep_devices:
            return 'device'
        if kind == 'comparison' and not self.keep_comparisons:
            return 'comparison'
        if certainty == 'negated' and not self.keep_negated:
            return 'negated'
        if certainty == 'uncertain' and not self.keep_uncertain:
            return 'uncertain'
        return None

    def apply(self, findings: List[EvidenceFinding]
              ) -> Tuple[List[EvidenceFinding], Dict[str, int]]:
        """Filter ``findings`` (report order) by the policy.

        Returns:
            ``(kept, dropped)``: the kept findings and a count of dropped ones by reason
            (``negated``, ``uncertain``, ``device``, ``comparison``, ``duplicate``).
        """
        dropped: Counter = Counter()
        kept: List[EvidenceFinding] = []
        for f in findings:
            reason = self.drop_reason(f.kind, f.certainty)
            if reason is not None:
                dropped[reason] += 1
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
    """Merge restatements: same finding name, certainty and kind, and the location words of
    one contained in the other's ("left pleural effusion" restates "small left pleural
    effusion"; "effusion" restates both; "right ..." and "left ..." stay apart). The longer
    phrase is kept at the place of the first mention."""
    out: List[EvidenceFinding] = []
    keys: List[tuple] = []
    n_dup = 0
    for f in findings:
        name = f.finding or f.phrase.lower()
        loc = _location_key(f)
        hit = None
        for i, (k_name, k_loc, k_cert, k_kind) in enumerate(keys):
            if out[i].phrase.lower() == f.phrase.lower() or (
                    (k_name, k_cert, k_kind) == (name, f.certainty, f.kind)
                    and (loc <= k_loc or k_loc <= loc)):
                hit = i
                break
        if hit is None:
            keys.append((name, loc, f.certainty, f.kind))
            out.append(f)
            continue
        n_dup += 1
        if len(f.phrase.split()) > len(out[hit].phrase.split()):
            out[hit] = f
            keys[hit] = (name, loc | keys[hit][1], f.certainty, f.kind)
    return out, n_dup
