"""Pydantic (v2) schema of the evidence of one report, ``E(R)`` of Eq. 2.

``E(R) = {e_n}_{n=1..N_R}``: each ``e_n`` is one concise, clinically meaningful abnormal
finding, written as a short phrase taken from the report ("small left pleural effusion",
"mild cardiomegaly"). The schema keeps what the extractor knows about each phrase so that the
policy (:class:`EvidencePolicy`) can decide what enters ``E(R)``:

* ``certainty``: ``'positive'`` (asserted), ``'uncertain'`` (hedged: "cannot exclude",
  "may represent", "possible") or ``'negated'`` ("no pneumothorax").
* ``hedged``: True for uncertain findings that were kept (set automatically).
* ``kind``: ``'finding'`` (an abnormality on the current image), ``'device'`` (tubes,
  lines, pacemaker, sternotomy wires) or ``'comparison'`` (a statement that only describes
  change against a prior study: "no interval change", "improved aeration").
"""
from typing import List, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Certainty = Literal['positive', 'uncertain', 'negated']
FindingKind = Literal['finding', 'device', 'comparison']

#: Default phrase for a report without any kept abnormal finding, so that ``|E(R)| >= 1``.
NO_FINDING_PHRASE = 'no acute cardiopulmonary abnormality'


class EvidenceFinding(BaseModel):
    """One evidence phrase ``e_n`` with its normalised name and flags.

    Attributes:
        phrase: the short report-grounded phrase (1-200 characters, whitespace collapsed).
        finding: normalised finding name (snake case, e.g. ``'pleural_effusion'``) or None.
        location: anatomical location words (e.g. ``'left base'``) or None.
        certainty: ``'positive' | 'uncertain' | 'negated'``.
        hedged: the phrase is kept although uncertain (True whenever certainty is uncertain).
        kind: ``'finding' | 'device' | 'comparison'``.
    """

    model_config = ConfigDict(extra='ignore')

    phrase: str = Field(min_length=1, max_length=200,
                        description='short abnormal finding copied from the report')
    finding: Optional[str] = Field(
        default=None, description='normalised finding name, e.g. pleural_effusion')
    location: Optional[str] = Field(default=None, description='anatomical location, e.g. left base')
    certainty: Certainty = Field(default='positive',
                                 description='positive, uncertain (hedged) or negated')
    hedged: bool = Field(default=False, description='true when the report hedges the finding')
    kind: FindingKind = Field(
        default='finding',
        description='finding; device (tubes, lines, wires); comparison (change vs prior only)')

    @field_validator('phrase')
    @classmethod
    def _clean_phrase(cls, value: str) -> str:
        value = ' '.join(value.split()).strip(' .;,:')
        if not value:
            raise ValueError('an evidence phrase must contain at least one non-space character')
        return value

    @field_validator('finding', 'location')
    @classmethod
    def _empty_to_none(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return None
        value = ' '.join(str(value).split())
        return value or None

    @model_validator(mode='after')
    def _hedge_follows_certainty(self) -> 'EvidenceFinding':
        if self.certainty == 'uncertain':
            self.hedged = True
        return self


class ReportEvidence(BaseModel):
    """The evidence of one report: its findings in report order.

    An empty ``findings`` list means "no abnormal finding"; :meth:`phrases` then returns the
    canonical no-finding phrase so that every report has ``|E(R)| >= 1`` (Sec. "Evidence
    space" of docs/method.md).
    """

    model_config = ConfigDict(extra='ignore')

    findings: List[EvidenceFinding] = Field(
        default_factory=list,
        description='abnormal findings of the report in report order; empty if none')

    def phrases(self, no_finding_phrase: str = NO_FINDING_PHRASE) -> List[str]:
        """Return the evidence phrases; ``[no_finding_phrase]`` when there is no finding."""
        out = [f.phrase for f in self.findings]
        return out if out else [no_finding_phrase]


class EvidenceRecord(BaseModel):
    """One cache entry: the outcome of extracting one report with one extractor.

    The key is ``(text_sha256, extractor_id, extractor_version, prompt_hash, config_hash)``;
    the report text itself is never stored. ``status='ok'`` records carry ``phrases``
    (``len >= 1``); ``status='failed'`` records carry ``error`` and are retried only when
    asked (``retry_failed=True`` / ``--retry-failed``).
    """

    model_config = ConfigDict(extra='ignore')

    text_sha256: str = Field(min_length=64, max_length=64)
    extractor_id: str
    extractor_version: str
    prompt_hash: str = ''
    config_hash: str
    status: Literal['ok', 'failed']
    phrases: List[str] = Field(default_factory=list)
    findings: List[EvidenceFinding] = Field(default_factory=list)
    rejected: List[str] = Field(default_factory=list,
                                description='phrases rejected by verification (not in the report)')
    rejected_reasons: List[str] = Field(
        default_factory=list,
        description='the verification reason of each rejected phrase (same order); empty in '
                    'records written before reasons were recorded')
    dropped: dict = Field(default_factory=dict,
                          description='counts of findings dropped by the policy, by reason')
    error: Optional[str] = None
    attempts: int = 1
    created: float = 0.0

    @model_validator(mode='after')
    def _ok_has_phrases(self) -> 'EvidenceRecord':
        if self.status == 'ok' and not self.phrases:
            raise ValueError('an ok evidence record must have at least one phrase')
        if self.rejected_reasons and len(self.rejected_reasons) != len(self.rejected):
            raise ValueError(f'{len(self.rejected)} rejected phrases but '
                             f'{len(self.rejected_reasons)} rejection reasons')
        if self.status == 'failed' and not self.error:
            raise ValueError('a failed evidence record must say why (error)')
        return self
