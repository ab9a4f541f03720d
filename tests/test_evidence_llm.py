"""LLM evidence extractor through LangChain chat-model test doubles and a local stub server."""
import json
import logging
import os

import pytest

from lgdea.evidence import (DataUseError, EvidenceCache, LLMEvidenceExtractor, PhraseVerifier,
                            RemoteEndpointWarning, build_extractor, check_data_use, is_loopback,
                            run_extraction, sha256_text)
from lgdea.evidence.prompts import load_prompt
from lgdea.evidence.testing import OpenAIStubServer, ScriptedChatModel

REPORT = ('FINDINGS: Small left pleural effusion. Mild cardiomegaly. No pneumothorax. '
          'Right internal jugular catheter.')
GOOD = {'findings': [
    {'phrase': 'small left pleural effusion', 'finding': 'pleural_effusion',
     'location': 'left', 'certainty': 'positive', 'kind': 'finding'},
    {'phrase': 'mild cardiomegaly', 'finding': 'cardiomegaly', 'certainty': 'positive'},
    {'phrase': 'pneumothorax', 'finding': 'pneumothorax', 'certainty': 'negated'},
    {'phrase': 'right internal jugular catheter', 'kind': 'device'}]}


def scripted(reply, **kwargs):
    fn = reply if callable(reply) else (lambda report, i: reply)
    return ScriptedChatModel(responder=fn, **kwargs)


@pytest.mark.parametrize('structured', [False, True])
def test_valid_output_applies_policy(structured):
    model = scripted(json.dumps(GOOD), structured=structured)
    ext = LLMEvidenceExtractor(chat_model=model)
    assert ext._runnable()[1] == ('native' if structured else 'json')
    rec = ext.extract(REPORT)
    assert rec.status == 'ok' and rec.attempts == 1
    assert rec.phrases == ['small left pleural effusion', 'mild cardiomegaly']
    assert rec.dropped == dict(negated=1, device=1)
    assert rec.prompt_hash == load_prompt('evidence_v1').sha256
    empty = LLMEvidenceExtractor(chat_model=scripted('{"findings": []}')).extract('Clear lungs.')
    assert empty.phrases == ['no acute cardiopulmonary abnormality']


def test_prompt_has_few_shot_and_the_report():
    prompt = load_prompt()
    msgs = LLMEvidenceExtractor(chat_model=scripted('{}')).messages(REPORT)
    assert msgs[0].type == 'system' and 'JSON' in msgs[0].content
    assert len(msgs) == 2 + 2 * len(prompt.examples) and msgs[-1].type == 'human'
    assert REPORT in msgs[-1].content
    for _, answer in prompt.examples:  # the few-shot answers are valid evidence
        json.loads(answer)
    with pytest.raises(ValueError, match='unknown evidence prompt'):
        load_prompt('evidence_v999')


@pytest.mark.parametrize('structured', [False, True])
def test_malformed_output_is_retried_then_recorded(structured):
    model = scripted('Findings: effusion, probably.', structured=structured)
    ext = LLMEvidenceExtractor(chat_model=model, max_retries=2, backoff_base=0)
    rec = ext.extract(REPORT)
    assert rec.status == 'failed' and rec.attempts == 3 and len(model.calls) == 3
    assert 'MalformedOutputError' in rec.error and rec.phrases == []


def test_malformed_then_valid_succeeds():
    model = scripted(lambda report, i: 'oops {' if i == 0 else json.dumps(GOOD))
    rec = LLMEvidenceExtractor(chat_model=model, max_retries=3, backoff_base=0).extract(REPORT)
    assert rec.status == 'ok' and rec.attempts == 2


def test_exceptions_and_timeouts_are_retried_then_recorded():
    def boom(report, i):
        raise ConnectionError('server went away')

    rec = LLMEvidenceExtractor(chat_model=scripted(boom), max_retries=1,
                               backoff_base=0).extract(REPORT)
    assert rec.status == 'failed' and 'ConnectionError: server went away' in rec.error
    slow = scripted(json.dumps(GOOD), delay_s=0.5)
    rec = LLMEvidenceExtractor(chat_model=slow, timeout=0.05, max_retries=1,
                               backoff_base=0).extract(REPORT)
    assert rec.status == 'failed' and 'timeout' in rec.error and rec.attempts == 2


def test_backoff_is_exponential_and_capped():
    ext = LLMEvidenceExtractor(chat_model=scripted('{}'), backoff_base=1.0, backoff_max=5.0)
    delays = [ext._backoff(a) for a in range(6)]
    for attempt, d in enumerate(delays):
        full = min(5.0, 2.0 ** attempt)
        assert 0.5 * full <= d <= full


def test_unsupported_phrases_rejected_and_counted(tmp_path):
    out = {'findings': [{'phrase': 'mild cardiomegaly'},
                        {'phrase': 'right upper lobe cavitary mass'}]}
    ext = LLMEvidenceExtractor(chat_model=scripted(json.dumps(out)))
    rec = ext.extract(REPORT)
    assert rec.phrases == ['mild cardiomegaly']
    assert rec.rejected == ['right upper lobe cavitary mass']
    s = run_extraction([REPORT, REPORT + ' Stable.'], ext, str(tmp_path), show_progress=False)
    assert s.rejected == 2 and s.done == 2
    # every phrase unsupported -> a recorded failure, never an invented normal report
    only_bad = LLMEvidenceExtractor(chat_model=scripted(json.dumps(
        {'findings': [{'phrase': 'large hydropneumothorax'}]})))
    rec = only_bad.extract(REPORT)
    assert rec.status == 'failed' and 'rejected by verification' in rec.error
    assert rec.rejected == ['large hydropneumothorax']


def test_verifier_threshold_and_semantic_fallback():
    v = PhraseVerifier(min_overlap=0.6)
    ok, scores = v.split(['small left effusions', 'left lung mass', 'heart failure'],
                         'Small left pleural effusion. Clear right lung.')
    assert ok == [True, False, False] and scores[2] == 0
    loose = PhraseVerifier(min_overlap=0.3)
    assert loose.split(['left lung mass'], 'Small left pleural effusion.')[0] == [True]

    def embed(texts):  # toy embedding: 'mass' ~ 'nodule'
        return [[1.0, 0.0] if ('mass' in t or 'nodule' in t) else [0.0, 1.0] for t in texts]

    sem = PhraseVerifier(min_overlap=0.9, embed_fn=embed, semantic_threshold=0.9)
    assert sem.split(['left mass'], 'A left nodule.')[0] == [True]
    assert sem.split(['right mass'], 'A left nodule.')[0] == [False]  # no overlap at all
    with pytest.raises(ValueError):
        PhraseVerifier(min_overlap=0)


def test_concurrency_limit(tmp_path):
    reports = [f'Mild cardiomegaly, case {i}.' for i in range(12)]
    model = scripted(json.dumps({'findings': [{'phrase': 'mild cardiomegaly'}]}), delay_s=0.05)
    ext = LLMEvidenceExtractor(chat_model=model, concurrency=3)
    seen = []
    recs = ext.extract_many(reports, on_result=lambda i, r: seen.append(i))
    assert sorted(seen) == list(range(12)) and all(r.status == 'ok' for r in recs)
    assert model.max_in_flight == 3
    # results are in input order
    assert [r.text_sha256 for r in recs] == [sha256_text(r) for r in reports]


# ------------------------------------------------------------------ data-use guardrail
@pytest.mark.parametrize('url, loop', [
    (None, True), ('http://127.0.0.1:8000/v1', True), ('http://localhost:11434', True),
    ('http://[::1]:8000/v1', True), ('127.3.2.1:9000', True), ('https://api.openai.com/v1', False),
    ('http://10.0.0.5:8000/v1', False), ('http://my-gpu-box:8000', False)])
def test_is_loopback(url, loop):
    assert is_loopback(url) is loop


def test_guardrail_refuses_remote_for_credentialed(tmp_path):
    check_data_use('https://api.openai.com/v1', credentialed=False)
    check_data_use('http://127.0.0.1:8000/v1', credentialed=True)
    with pytest.raises(DataUseError, match='credentialed'):
        check_data_use('https://api.openai.com/v1', credentialed=True)
    with pytest.warns(RemoteEndpointWarning):
        check_data_use('https://api.openai.com/v1', credentialed=True, allow_remote=True)

    model = scripted(json.dumps(GOOD))
    remote = LLMEvidenceExtractor(chat_model=model, endpoint='https://llm.example.com/v1')
    with pytest.raises(DataUseError):
        run_extraction([REPORT], remote, str(tmp_path), credentialed=True, show_progress=False)
    assert model.calls == []  # nothing was sent
    with pytest.warns(RemoteEndpointWarning):
        s = run_extraction([REPORT], remote, str(tmp_path), credentialed=True,
                           allow_remote=True, show_progress=False)
    assert s.done == 1
    # factory-built extractors know their endpoint without building the client
    assert build_extractor(dict(type='llm', model='m')).endpoint() == 'https://api.openai.com/v1'
    ollama = build_extractor(dict(type='llm', backend='ollama', model='llama3'))
    assert is_loopback(ollama.endpoint())
    assert build_extractor(dict(type='llm', backend='hf', model='/models/x')).endpoint() is None


def test_api_keys_only_from_environment():
    with pytest.raises(ValueError, match='environment variable'):
        build_extractor(dict(type='llm', model='m', api_key='sk-abc'))
    with pytest.raises(ValueError, match='environment variable'):
        LLMEvidenceExtractor(model='m', api_key='sk-abc')
    from lgdea.evidence.chat_models import resolve_api_key
    with pytest.raises(ValueError, match='LGDEA_NO_SUCH_KEY'):
        resolve_api_key('LGDEA_NO_SUCH_KEY', 'https://api.example.com/v1')
    assert resolve_api_key('LGDEA_NO_SUCH_KEY', 'http://127.0.0.1:8000/v1') == 'EMPTY'


def test_key_redacted_from_recorded_errors(tmp_path, monkeypatch):
    secret = 'sk-lgdea-test-SENTINEL-0123456789'
    monkeypatch.setenv('LGDEA_TEST_KEY', secret)

    def leaky(report, i):
        raise PermissionError(f'401 Incorrect API key provided: {secret}')

    ext = LLMEvidenceExtractor(chat_model=scripted(leaky), api_key_env='LGDEA_TEST_KEY',
                               max_retries=0)
    run_extraction([REPORT], ext, str(tmp_path), show_progress=False)
    rec = EvidenceCache(str(tmp_path), ext).get(sha256_text(REPORT))
    assert rec.status == 'failed' and '[redacted]' in rec.error and secret not in rec.error


def test_openai_backend_against_local_stub_keeps_key_secret(tmp_path, monkeypatch, capsys,
                                                            caplog):
    pytest.importorskip('langchain_openai')
    secret = 'sk-lgdea-test-SENTINEL-9876543210'
    monkeypatch.setenv('LGDEA_TEST_KEY', secret)
    caplog.set_level(logging.DEBUG)
    reports = ['Small right pleural effusion. No pneumothorax.', 'Mild cardiomegaly.',
               'Clear lungs. Heart size normal.']
    with OpenAIStubServer(malformed=lambda i, r: i == 0) as server:
        for mode in ('json', 'auto'):
            cfg = dict(type='llm', backend='openai', model='stub-model', base_url=server.url,
                       api_key_env='LGDEA_TEST_KEY', concurrency=2, structured_output=mode,
                       backoff_base=0, max_retries=2)
            ext = build_extractor(cfg)
            s = run_extraction(reports, ext, str(tmp_path / mode), credentialed=True,
                               show_progress=False)
            assert (s.done, s.failed) == (3, 0)
            phrases = [EvidenceCache(str(tmp_path / mode), ext).get(sha256_text(r)).phrases
                       for r in reports]
            assert phrases == [['small right pleural effusion'], ['mild cardiomegaly'],
                               ['no acute cardiopulmonary abnormality']]
            assert secret not in json.dumps(ext.describe()) and secret not in str(ext.cli_args())
        assert server.auth_headers and all(h == f'Bearer {secret}' for h in server.auth_headers)
    out = capsys.readouterr()
    assert secret not in out.out + out.err + caplog.text
    for root, _, files in os.walk(tmp_path):
        for name in files:
            assert secret not in open(os.path.join(root, name), encoding='utf-8').read(), name


CONTRA_REPORT = ('FINDINGS: Small left pleural effusion. Heart size is normal. No pneumothorax. '
                 'Possible pneumonia at the right base.')


@pytest.mark.parametrize('phrase,certainty,reason', [
    ('small left pleural effusion', 'positive', None),
    ('small right pleural effusion', 'positive', 'laterality'),
    ('bilateral pleural effusions', 'positive', 'laterality'),
    ('heart size is enlarged', 'positive', 'negation'),
    ('pneumothorax', 'negated', None),
    ('pneumothorax', 'positive', 'negation'),
    ('pneumonia at the right base', 'positive', 'certainty'),
    ('possible pneumonia at the right base', 'positive', None),
    ('right upper lobe cavitary mass', 'positive', 'unsupported'),
])
def test_verifier_checks_laterality_negation_certainty(phrase, certainty, reason):
    assert PhraseVerifier().check([phrase], CONTRA_REPORT, [certainty]) == [reason]


@pytest.mark.parametrize('phrase,reason', [
    ('right shoulder is partially imaged', None),
    ('left shoulder is partially imaged', 'laterality'),
    ('bilateral shoulders are partially imaged', 'laterality'),
])
def test_verifier_checks_the_side_of_a_phrase_without_a_lexicon_finding(phrase, reason):
    report = CONTRA_REPORT + ' Right shoulder is partially imaged.'
    assert PhraseVerifier().check([phrase], report) == [reason]


def test_contradicting_phrases_rejected_by_reason_in_summary(tmp_path):
    answer = {'findings': [
        {'phrase': 'small right pleural effusion', 'certainty': 'positive'},
        {'phrase': 'heart size is enlarged', 'finding': 'cardiomegaly'},
        {'phrase': 'pneumonia at the right base', 'certainty': 'positive'},
        {'phrase': 'possible pneumonia at the right base', 'certainty': 'uncertain'}]}
    ext = LLMEvidenceExtractor(chat_model=scripted(json.dumps(answer)))
    rec = ext.extract(CONTRA_REPORT)
    assert rec.phrases == ['possible pneumonia at the right base']
    assert rec.rejected_reasons == ['laterality', 'negation', 'certainty']
    s = run_extraction([CONTRA_REPORT], ext, str(tmp_path), show_progress=False)
    assert s.rejected_by_reason == dict(laterality=1, negation=1, certainty=1)
    assert 'certainty 1, laterality 1, negation 1' in str(s)
    log = [json.loads(line) for line in open(tmp_path / 'extraction_runs.jsonl')]
    assert log[-1]['rejected_by_reason'] == dict(laterality=1, negation=1, certainty=1)


@pytest.mark.parametrize('reply', [
    'I am sorry, I cannot extract findings from this report [].',
    'As an AI model I cannot help. Returned: []',
])
def test_refusal_with_brackets_is_not_a_no_finding_answer(reply):
    rec = LLMEvidenceExtractor(chat_model=scripted(reply), max_retries=1,
                               backoff_base=0).extract(CONTRA_REPORT)
    assert rec.status == 'failed' and 'MalformedOutputError' in rec.error and rec.phrases == []
