"""Evidence cache: keys, durability, resume after an interrupted run; ensure/load API."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from lgdea.evidence import (EvidenceCache, EvidenceMissingError, LLMEvidenceExtractor,
                            RuleEvidenceExtractor, ensure_evidence, load_evidence,
                            run_extraction, sha256_text)
from lgdea.evidence.testing import ScriptedChatModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORTS = [f'Report {i}: {"mild cardiomegaly" if i % 2 else "small left pleural effusion"}.'
           for i in range(12)]


def grounded(report, _):
    """A well-behaved model: the finding of the synthetic report above."""
    phrase = 'mild cardiomegaly' if 'cardiomegaly' in report else 'small left pleural effusion'
    return json.dumps({'findings': [{'phrase': phrase}]})


def cache_lines(cache):
    with open(cache.path, encoding='utf-8') as f:
        return f.read().splitlines()


def test_cache_key_and_file_per_namespace(tmp_path):
    a, b = RuleEvidenceExtractor(), RuleEvidenceExtractor(policy=dict(keep_uncertain=False))
    run_extraction(REPORTS[:3], a, str(tmp_path), show_progress=False)
    run_extraction(REPORTS[:3], b, str(tmp_path), show_progress=False)
    ca, cb = EvidenceCache(str(tmp_path), a), EvidenceCache(str(tmp_path), b)
    assert ca.path != cb.path and len(ca) == len(cb) == 3
    rec = ca.get(sha256_text(REPORTS[0]))
    assert (rec.extractor_id, rec.extractor_version, rec.config_hash) == \
        ('rule', a.version, a.config_hash)
    for line in cache_lines(ca):  # the report text itself is never stored
        assert 'Report 0' not in line and json.loads(line)['text_sha256']
    # the prompt hash is part of an LLM extractor's key
    m = ScriptedChatModel(responder=grounded)
    assert LLMEvidenceExtractor(chat_model=m).namespace != \
        LLMEvidenceExtractor(chat_model=m, prompt_version='evidence_v1',
                             temperature=0.5).namespace


def test_truncated_last_line_is_repaired_and_redone(tmp_path):
    ext = RuleEvidenceExtractor()
    s = run_extraction(REPORTS, ext, str(tmp_path), show_progress=False, flush_every=1)
    assert s.done == len(REPORTS)
    cache = EvidenceCache(str(tmp_path), ext)
    lines = cache_lines(cache)
    # simulate kill -9 in the middle of writing the last record
    with open(cache.path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines[:-1]) + '\n' + lines[-1][:40])
    reopened = EvidenceCache(str(tmp_path), ext)
    assert reopened.n_repaired_bytes == 40 and len(reopened) == len(REPORTS) - 1
    assert len(cache_lines(reopened)) == len(REPORTS) - 1  # tail cut off on disk
    s2 = run_extraction(REPORTS, ext, str(tmp_path), show_progress=False)
    assert (s2.cached, s2.done) == (len(REPORTS) - 1, 1)  # only the lost one is redone
    assert len(EvidenceCache(str(tmp_path), ext)) == len(REPORTS)


def test_corrupt_middle_line_is_skipped(tmp_path):
    ext = RuleEvidenceExtractor()
    run_extraction(REPORTS[:4], ext, str(tmp_path), show_progress=False)
    path = EvidenceCache(str(tmp_path), ext).path
    lines = open(path).read().splitlines()
    lines[1] = '{"not": "a record"}'
    open(path, 'w').write('\n'.join(lines) + '\n')
    cache = EvidenceCache(str(tmp_path), ext)
    assert cache.n_bad_lines == 1 and len(cache) == 3


KILL_SCRIPT = textwrap.dedent('''
    import json, sys
    sys.path.insert(0, {repo!r})
    from lgdea.evidence import LLMEvidenceExtractor, run_extraction
    from lgdea.evidence.testing import ScriptedChatModel
    reports = json.load(open({reports!r}))
    def answer(report, _):
        phrase = 'mild cardiomegaly' if 'cardiomegaly' in report else 'small left pleural effusion'
        return json.dumps({{'findings': [{{'phrase': phrase}}]}})
    model = ScriptedChatModel(responder=answer, delay_s=0.15, model_name='slow')
    ext = LLMEvidenceExtractor(chat_model=model, concurrency=1)
    run_extraction(reports, ext, {cache!r}, show_progress=False)
''')


def test_resume_after_kill_loses_and_redoes_nothing(tmp_path):
    reports_file = tmp_path / 'reports.json'
    reports_file.write_text(json.dumps(REPORTS))
    cache_dir = str(tmp_path / 'cache')
    script = tmp_path / 'extract.py'
    script.write_text(KILL_SCRIPT.format(repo=REPO, reports=str(reports_file), cache=cache_dir))
    ext = LLMEvidenceExtractor(chat_model=ScriptedChatModel(responder=grounded,
                                                            model_name='slow'), concurrency=1)
    proc = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            path = EvidenceCache(cache_dir, ext).path if os.path.isdir(cache_dir) else None
            if path and os.path.exists(path) and len(open(path).read().splitlines()) >= 3:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done_before = {r.text_sha256 for r in EvidenceCache(cache_dir, ext).records()}
    assert 3 <= len(done_before) < len(REPORTS)

    model = ScriptedChatModel(responder=grounded, model_name='slow')
    ext2 = LLMEvidenceExtractor(chat_model=model, concurrency=3)
    summary = run_extraction(REPORTS, ext2, cache_dir, show_progress=False)
    redone = {sha256_text(r) for r in model.calls}
    assert not redone & done_before  # nothing finished is redone
    assert summary.cached == len(done_before)
    assert summary.done == len(REPORTS) - len(done_before)
    phrases = load_evidence(REPORTS, ext2, cache_dir)  # nothing lost
    assert phrases[1] == ['mild cardiomegaly'] and phrases[0] == ['small left pleural effusion']


def test_failures_recorded_and_retried_with_flag(tmp_path):
    attempts = {}

    def flaky(report, index):
        attempts[report] = index + 1
        if 'Report 3:' in report and not flaky.healed:
            return 'I cannot answer that.'
        return grounded(report, index)

    flaky.healed = False
    model = ScriptedChatModel(responder=flaky)
    ext = LLMEvidenceExtractor(chat_model=model, max_retries=1, backoff_base=0)
    s = run_extraction(REPORTS[:5], ext, str(tmp_path), show_progress=False)
    assert (s.done, s.failed) == (4, 1)
    rec = EvidenceCache(str(tmp_path), ext).get(sha256_text(REPORTS[3]))
    assert rec.status == 'failed' and rec.attempts == 2 and 'MalformedOutputError' in rec.error
    # without the flag a failure is not retried
    s = run_extraction(REPORTS[:5], ext, str(tmp_path), show_progress=False)
    assert (s.cached, s.skipped_failed, s.done) == (4, 1, 0)
    with pytest.raises(EvidenceMissingError, match='--retry-failed'):
        load_evidence(REPORTS[:5], ext, str(tmp_path))
    flaky.healed = True
    s = run_extraction(REPORTS[:5], ext, str(tmp_path), retry_failed=True, show_progress=False)
    assert (s.cached, s.done, s.failed) == (4, 1, 0)
    assert load_evidence(REPORTS[:5], ext, str(tmp_path))[3] == ['mild cardiomegaly']


def test_ensure_evidence_offline_extracts_and_caches(tmp_path):
    texts = ['Mild cardiomegaly.', 'Clear lungs.', 'Mild cardiomegaly.']
    out = ensure_evidence(texts, dict(type='rule'), str(tmp_path), show_progress=False)
    assert out == [['mild cardiomegaly'], ['no acute cardiopulmonary abnormality'],
                   ['mild cardiomegaly']]
    cache = EvidenceCache(str(tmp_path), RuleEvidenceExtractor())
    assert len(cache) == 2  # duplicates extracted once
    # the dataset-config form (extractor= alias)
    assert ensure_evidence(texts, extractor=dict(type='rule'), cache_dir=str(tmp_path),
                           credentialed=True, show_progress=False) == out
    assert load_evidence(texts, 'rule', str(tmp_path)) == out
    recs = load_evidence(texts[:1], 'rule', str(tmp_path), return_records=True)
    assert recs[0].findings[0].finding == 'cardiomegaly'
    with pytest.raises(ValueError, match='no text'):
        ensure_evidence(['ok', None], 'rule', str(tmp_path))


def test_ensure_evidence_llm_missing_prints_the_command(tmp_path):
    cfg = dict(type='llm', backend='openai', model='qwen2.5-7b-instruct',
               base_url='http://127.0.0.1:8000/v1', concurrency=8,
               policy=dict(keep_uncertain=False))
    with pytest.raises(EvidenceMissingError) as err:
        ensure_evidence(['Mild cardiomegaly.'], cfg, str(tmp_path), credentialed=True)
    msg = str(err.value)
    cmd = msg.split('Extract them first with:\n  ')[1].splitlines()[0]
    assert cmd.startswith('python tools/extract_evidence.py --reports ')
    for part in ['--extractor llm', '--backend openai', '--model qwen2.5-7b-instruct',
                 '--base-url http://127.0.0.1:8000/v1', '--concurrency 8', '--credentialed',
                 f'--cache-dir {tmp_path}', '"keep_uncertain": false']:
        assert part in cmd, part
    missing_file = cmd.split('--reports ')[1].split()[0]
    assert json.loads(open(missing_file).readline())['report'] == 'Mild cardiomegaly.'
    with pytest.raises(EvidenceMissingError, match='CONFIG.py --dataset-key val'):
        ensure_evidence(['Mild cardiomegaly.'], cfg, str(tmp_path),
                        source=dict(config='CONFIG.py', dataset_keys=['val']))
    with pytest.raises(EvidenceMissingError, match='1 of 1 reports have no evidence'):
        load_evidence(['Mild cardiomegaly.'], 'rule', str(tmp_path))
