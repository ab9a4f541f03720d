"""Evidence extraction (paper Eq. 2): report text -> concise abnormal-finding phrases E(R).

Extractors are registered in ``lgdea.registry.EVIDENCE_EXTRACTORS``: ``rule``
(:class:`RuleEvidenceExtractor`, offline default) and ``llm`` (:class:`LLMEvidenceExtractor`,
any LangChain chat model). Results live in a persistent cache (:class:`EvidenceCache`); the
training code calls :func:`ensure_evidence`, evaluation calls :func:`load_evidence`.
"""
from .api import (EvidenceMissingError, ExtractionSummary, build_extractor, ensure_evidence,
                  extraction_command, load_evidence, run_extraction)
from .base import BaseEvidenceExtractor, normalize_report_text, report_key, sha256_text
from .cache import EvidenceCache
from .chat_models import build_chat_model
from .guardrail import DataUseError, RemoteEndpointWarning, check_data_use, is_loopback
from .llm_extractor import LLMEvidenceExtractor, MalformedOutputError, parse_evidence_json
from .policy import EvidencePolicy
from .report_io import format_sectioned_report, read_reports
from .rule_extractor import RuleEvidenceExtractor
from .schema import NO_FINDING_PHRASE, EvidenceFinding, EvidenceRecord, ReportEvidence
from .verification import PhraseVerifier

__all__ = [
    'BaseEvidenceExtractor', 'RuleEvidenceExtractor', 'LLMEvidenceExtractor', 'EvidencePolicy',
    'EvidenceFinding', 'ReportEvidence', 'EvidenceRecord', 'NO_FINDING_PHRASE', 'EvidenceCache',
    'ensure_evidence', 'load_evidence', 'run_extraction', 'build_extractor',
    'extraction_command', 'ExtractionSummary', 'EvidenceMissingError', 'PhraseVerifier',
    'build_chat_model', 'DataUseError', 'RemoteEndpointWarning',
    'check_data_use', 'is_loopback', 'MalformedOutputError', 'parse_evidence_json',
    'format_sectioned_report', 'read_reports', 'sha256_text', 'normalize_report_text',
    'report_key'
]


def __getattr__(name):
    # HFPipelineChatModel subclasses langchain_core's BaseChatModel: imported on first use so
    # that lgdea.evidence works without the optional `llm` extra.
    if name == 'HFPipelineChatModel':
        from .hf_chat_model import HFPipelineChatModel
        return HFPipelineChatModel
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
