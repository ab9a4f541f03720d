"""Evidence schema (pydantic v2), policy and JSON parsing of model replies."""
import json

import pytest
from pydantic import ValidationError

from lgdea.evidence import (NO_FINDING_PHRASE, EvidenceFinding, EvidencePolicy, EvidenceRecord,
                            MalformedOutputError, ReportEvidence, parse_evidence_json,
                            sha256_text)


def test_finding_validation():
    f = EvidenceFinding(phrase='  small   left pleural effusion. ', finding='pleural_effusion',
                        location='', certainty='uncertain')
    assert f.phrase == 'small left pleural effusion'
    assert f.location is None
    assert f.hedged  # uncertain -> hedged
    assert f.kind == 'finding'
    for bad in [dict(phrase=''), dict(phrase=' . '), dict(phrase='x', certainty='maybe'),
                dict(phrase='x', kind='organ'), dict(phrase='x' * 201), dict()]:
        with pytest.raises(ValidationError):
            EvidenceFinding(**bad)


def test_report_evidence_phrases_and_canonical():
    ev = ReportEvidence.model_validate({'findings': [{'phrase': 'mild cardiomegaly'}]})
    assert ev.phrases() == ['mild cardiomegaly']
    assert ReportEvidence().phrases() == [NO_FINDING_PHRASE]
    assert ReportEvidence().phrases('normal') == ['normal']
    schema = ReportEvidence.model_json_schema()
    assert 'findings' in schema['properties']


def test_record_invariants():
    base = dict(text_sha256=sha256_text('a'), extractor_id='rule', extractor_version='1',
                config_hash='c')
    EvidenceRecord(status='ok', phrases=['x'], **base)
    with pytest.raises(ValidationError, match='at least one phrase'):
        EvidenceRecord(status='ok', phrases=[], **base)
    with pytest.raises(ValidationError, match='say why'):
        EvidenceRecord(status='failed', **base)
    with pytest.raises(ValidationError):
        EvidenceRecord(status='ok', phrases=['x'], **{**base, 'text_sha256': 'short'})
    rec = EvidenceRecord(status='failed', error='timeout', **base)
    assert EvidenceRecord.model_validate_json(rec.model_dump_json()) == rec


def test_policy_filters_and_counts():
    fs = [EvidenceFinding(phrase='no pneumothorax', finding='pneumothorax', certainty='negated'),
          EvidenceFinding(phrase='possible pneumonia', finding='pneumonia', certainty='uncertain'),
          EvidenceFinding(phrase='et tube', finding='endotracheal_tube', kind='device'),
          EvidenceFinding(phrase='no interval change', kind='comparison'),
          EvidenceFinding(phrase='mild cardiomegaly', finding='cardiomegaly')]
    kept, dropped = EvidencePolicy().apply(fs)
    assert [f.phrase for f in kept] == ['possible pneumonia', 'mild cardiomegaly']
    assert dropped == dict(negated=1, device=1, comparison=1)
    kept, dropped = EvidencePolicy(keep_uncertain=False, keep_devices=True).apply(fs)
    assert [f.phrase for f in kept] == ['et tube', 'mild cardiomegaly']
    assert dropped['uncertain'] == 1
    kept, _ = EvidencePolicy(hedge_in_phrase=True).apply(
        [EvidenceFinding(phrase='right effusion', certainty='uncertain')])
    assert kept[0].phrase == 'possible right effusion'
    assert EvidencePolicy().phrases([]) == [NO_FINDING_PHRASE]
    with pytest.raises(ValueError, match='no_finding_phrase'):
        EvidencePolicy(no_finding_phrase=' ')


@pytest.mark.parametrize('reply', [
    '{"findings": [{"phrase": "mild cardiomegaly", "certainty": "positive"}]}',
    'Here you go:\n```json\n{"findings": [{"phrase": "mild cardiomegaly"}]}\n```',
    '[{"phrase": "mild cardiomegaly"}]',
    'Answer: {"note": 1} then {"findings": [{"phrase": "mild cardiomegaly"}]} done',
])
def test_parse_evidence_json_tolerates_wrapping(reply):
    assert parse_evidence_json(reply).phrases() == ['mild cardiomegaly']


@pytest.mark.parametrize('reply', [
    'The findings are cardiomegaly and effusion.',
    '{"findings": [{"phrase": ""}]}',
    '{"findings": [{"phrase": "x", "certainty": "sure"}]}',
    '{"findings": "cardiomegaly"}',
    '{"findings": [{"phrase": "x"}',
])
def test_parse_evidence_json_rejects_malformed(reply):
    with pytest.raises(MalformedOutputError):
        parse_evidence_json(reply)


def test_parse_accepts_empty_findings():
    ev = parse_evidence_json(json.dumps({'findings': []}))
    assert ev.findings == [] and ev.phrases() == [NO_FINDING_PHRASE]
