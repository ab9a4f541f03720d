"""Base class of evidence extractors (Eq. 2: ``E(R) = LLM(R)``)."""
import hashlib
import inspect
import json
import time
from abc import ABCMeta
from typing import Callable, List, Optional, Sequence

from .policy import EvidencePolicy
from .schema import EvidenceFinding, EvidenceRecord


def sha256_text(text: str) -> str:
    """sha256 hex digest of a text exactly as given (UTF-8). Cache keys use
    :func:`report_key`; this raw digest is the key scheme of caches written before it."""
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def normalize_report_text(text: str) -> str:
    """The report text that is extracted and hashed: every run of whitespace (spaces, tabs,
    CR/LF, form feeds, non-breaking spaces) becomes one space, ends stripped.

    Datasets (``GenericVLDataset``, ``IUXrayDataset``, the MIMIC section parser) already give
    their reports in this form, so their keys are the same as the raw digest.
    """
    return ' '.join(text.split())


def report_key(text: str) -> str:
    """Evidence-cache key of a report: sha256 of :func:`normalize_report_text`."""
    return sha256_text(normalize_report_text(text))


def stable_hash(obj) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, separators=(',', ':'), default=str)
    return hashlib.sha256(blob.encode('utf-8')).hexdigest()


class BaseEvidenceExtractor(metaclass=ABCMeta):
    """Report text -> evidence record (phrases ``E(R)`` plus flags).

    Subclasses set ``extractor_id`` and ``version`` (bump ``version`` whenever the output for
    the same input may change) and implement :meth:`_extract_findings` (one report) or
    :meth:`extract_many` (many reports, e.g. concurrently).

    Args:
        policy: an :class:`EvidencePolicy` or a dict of its fields.

    Class attributes:
        offline: True when extraction runs in-process with no model (safe to call from the
            training code, see :func:`lgdea.evidence.ensure_evidence`).
    """

    extractor_id: str = 'base'
    version: str = '0'
    offline: bool = False

    def __init__(self, policy: Optional[dict] = None):
        if isinstance(policy, EvidencePolicy):
            self.policy = policy
        else:
            self.policy = EvidencePolicy(**(policy or {}))

    # ----------------------------------------------------------------- identity (cache key)
    @property
    def prompt_hash(self) -> str:
        """Hash of the prompt (LLM extractors); ``''`` for extractors without a prompt."""
        return ''

    def config_dict(self) -> dict:
        """Settings that change the output (part of the cache key). Never holds secrets."""
        return {'policy': self.policy.to_dict()}

    @property
    def config_hash(self) -> str:
        """Hash of :meth:`config_dict`; computed once (extractors are immutable after init)."""
        cached = self.__dict__.get('_config_hash_cache')
        if cached is None:
            cached = self.__dict__['_config_hash_cache'] = stable_hash(self.config_dict())
        return cached

    @property
    def namespace(self) -> str:
        """Short id of (extractor id, version, prompt hash, config hash): one cache file each."""
        return stable_hash([self.extractor_id, self.version, self.prompt_hash,
                            self.config_hash])[:16]

    def describe(self) -> dict:
        """A loggable description (id, version, hashes, settings); never holds secrets."""
        return dict(extractor_id=self.extractor_id, version=self.version,
                    prompt_hash=self.prompt_hash, config_hash=self.config_hash,
                    namespace=self.namespace, config=self.config_dict())

    def _record_init_args(self, local_vars: dict) -> None:
        """Remember the non-default ``__init__`` arguments (for :meth:`cli_args`).

        Call as ``self._record_init_args(locals())`` at the top of a subclass ``__init__``.
        An argument that is not JSON-serialisable (a chat-model object, a callable) makes
        the extractor not reproducible from the command line (``cli_args() -> None``).
        """
        sig = inspect.signature(type(self).__init__)
        cfg: Optional[dict] = {}
        for name, param in sig.parameters.items():
            if name == 'self' or name not in local_vars:
                continue
            value = local_vars[name]
            if param.default is not inspect.Parameter.empty and value == param.default:
                continue
            if isinstance(value, EvidencePolicy):
                value = value.to_dict()
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                cfg = None
                break
            cfg[name] = list(value) if isinstance(value, tuple) else value
        self._init_args = cfg

    def cli_args(self) -> Optional[List[str]]:
        """Arguments of ``tools/extract_evidence.py`` that rebuild this extractor exactly
        (same cache namespace), or None when it holds objects a command line cannot carry."""
        cfg = getattr(self, '_init_args', {})
        if cfg is None:
            return None
        args = ['--extractor', self.extractor_id]
        if cfg:
            args += ['--extractor-cfg', json.dumps(cfg, sort_keys=True)]
        return args

    # --------------------------------------------------------------- data-use guardrail
    def endpoint(self) -> Optional[str]:
        """URL the report text is sent to; None when extraction stays in this process."""
        return None

    def check_data_use(self, credentialed: bool, allow_remote: bool = False) -> None:
        """Refuse to send credentialed report text to a non-loopback endpoint."""
        from .guardrail import check_data_use
        check_data_use(self.endpoint(), credentialed=credentialed, allow_remote=allow_remote)

    # ---------------------------------------------------------------------- extraction
    def make_record(self, text: str, *, status: str, findings: Sequence[EvidenceFinding] = (),
                    rejected: Sequence[str] = (), rejected_reasons: Sequence[str] = (),
                    error: Optional[str] = None,
                    attempts: int = 1, dropped_before: Optional[dict] = None) -> EvidenceRecord:
        """Apply the policy to raw ``findings`` and wrap the outcome as a cache record.

        ``dropped_before`` counts findings an extractor already dropped by the same policy
        (:meth:`EvidencePolicy.drop_reason`) without building them; they are added to the
        record's ``dropped`` counts. ``rejected_reasons`` gives one verification reason per
        ``rejected`` phrase (:data:`lgdea.evidence.verification.REJECTION_REASONS`).
        """
        kept, dropped = self.policy.apply(list(findings)) if status == 'ok' else ([], {})
        if dropped_before:
            dropped = dict(dropped)
            for reason, n in dropped_before.items():
                dropped[reason] = dropped.get(reason, 0) + n
        return EvidenceRecord(
            text_sha256=report_key(text), extractor_id=self.extractor_id,
            extractor_version=self.version, prompt_hash=self.prompt_hash,
            config_hash=self.config_hash, status=status,
            phrases=self.policy.phrases(kept) if status == 'ok' else [],
            findings=kept, rejected=list(rejected),
            rejected_reasons=list(rejected_reasons), dropped=dropped, error=error,
            attempts=attempts, created=time.time())

    def _extract_findings(self, text: str) -> List[EvidenceFinding]:
        raise NotImplementedError

    def extract(self, text: str) -> EvidenceRecord:
        """Extract the evidence of one report."""
        if not isinstance(text, str):
            raise TypeError(f'report text must be a str, got {type(text).__name__}')
        return self.make_record(text, status='ok', findings=self._extract_findings(text))

    def extract_many(self, texts: Sequence[str],
                     on_result: Optional[Callable[[int, EvidenceRecord], None]] = None
                     ) -> List[EvidenceRecord]:
        """Extract many reports; ``on_result(index, record)`` is called as each one finishes
        (the cache runner appends there, so an interrupted run keeps what finished)."""
        out = []
        for i, text in enumerate(texts):
            rec = self.extract(text)
            if on_result is not None:
                on_result(i, rec)
            out.append(rec)
        return out

    def __call__(self, text: str) -> List[str]:
        """The phrases ``E(R)`` of one report."""
        rec = self.extract(text)
        if rec.status != 'ok':
            raise RuntimeError(f'{self.extractor_id} extraction failed: {rec.error}')
        return rec.phrases

    def __repr__(self) -> str:
        return f'{type(self).__name__}(id={self.extractor_id!r}, version={self.version!r}, ' \
               f'namespace={self.namespace!r})'


