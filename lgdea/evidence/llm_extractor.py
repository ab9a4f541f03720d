"""LLM evidence extractor (Eq. 2: ``E(R) = LLM(R)``) over any LangChain chat model.

Each report is sent with the versioned few-shot prompt (:mod:`lgdea.evidence.prompts`) and
the answer is validated against the evidence schema: natively with
``with_structured_output`` when the chat model supports it, otherwise by parsing the JSON
object in the reply. Requests run concurrently (at most ``concurrency`` in flight), each with
a timeout; a failed request or malformed answer is retried with exponential backoff and,
when the retries are spent, recorded as a failure (never dropped, never invented). Every
phrase is then verified against the report text (:class:`PhraseVerifier`: word overlap,
then laterality, negation and certainty against the matched sentence); rejected phrases are
stored with their reason and counted. A report whose phrases were all rejected is a failure.

``langchain-core`` (the ``llm`` extra) is imported only when extraction runs.
"""
import asyncio
import json
import logging
import os
import random
import re
import threading
from typing import Any, Callable, List, Optional, Sequence

from pydantic import ValidationError

from lgdea.registry import EVIDENCE_EXTRACTORS

from .base import BaseEvidenceExtractor
from .chat_models import (BACKENDS, OLLAMA_DEFAULT_URL, OPENAI_DEFAULT_URL, build_chat_model,
                          chat_model_endpoint, chat_model_name)
from .prompts import load_prompt
from .schema import EvidenceRecord, ReportEvidence
from .verification import PhraseVerifier

logger = logging.getLogger(__name__)

_SECRET_LIKE = re.compile(r'\b(?:sk|pk|rk|api|key)[-_][A-Za-z0-9_\-]{8,}')


_LOOP: Optional[asyncio.AbstractEventLoop] = None
_LOOP_LOCK = threading.Lock()


def _extraction_loop() -> asyncio.AbstractEventLoop:
    """The process-wide event loop of LLM extraction, running in a daemon thread."""
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None or _LOOP.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name='lgdea-evidence-llm',
                             daemon=True).start()
            _LOOP = loop
        return _LOOP


class MalformedOutputError(ValueError):
    """The model's answer is not valid evidence JSON."""


def _validate(obj) -> ReportEvidence:
    if isinstance(obj, list):
        obj = {'findings': obj}
    try:
        return ReportEvidence.model_validate(obj)
    except ValidationError as e:
        raise MalformedOutputError(
            f'evidence JSON does not match the schema: {str(e).splitlines()[0]}') from None


def parse_evidence_json(text: str) -> ReportEvidence:
    """Parse a model reply as the evidence answer and validate it against the schema.

    Accepted forms: the whole reply (or the whole of one fenced code block in it) is the JSON
    answer, an object ``{"findings": [...]}`` or a bare list of finding objects; or the reply
    is prose around one JSON object that has a ``"findings"`` key. A bracket pair inside prose
    (``"I cannot answer that []"``) is not an answer: it would read as a confident "no
    finding". Anything else raises :class:`MalformedOutputError`.
    """
    if not isinstance(text, str):
        text = json.dumps(text) if isinstance(text, (dict, list)) else str(text)
    stripped = text.strip()
    fenced = re.search(r'```[A-Za-z0-9_-]*[ \t]*\n(.*?)```', stripped, re.S)
    for whole in (stripped, fenced.group(1).strip() if fenced else None):
        if not whole:
            continue
        try:
            obj = json.loads(whole)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, list) or (isinstance(obj, dict) and 'findings' in obj):
            return _validate(obj)
    decoder = json.JSONDecoder()
    for start, ch in enumerate(text):
        if ch != '{':
            continue
        try:
            obj, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and 'findings' in obj:
            return _validate(obj)
    snippet = ' '.join(text.split())[:120]
    raise MalformedOutputError(f'no evidence JSON answer in the model reply (a JSON object '
                               f'with "findings", or the whole reply a JSON list): {snippet!r}')


@EVIDENCE_EXTRACTORS.register_module(name=['LLMEvidenceExtractor', 'llm'])
class LLMEvidenceExtractor(BaseEvidenceExtractor):
    """Evidence extraction with a LangChain chat model.

    Args:
        chat_model: a ``BaseChatModel`` instance; if None one is built from ``backend``,
            ``model``, ``base_url`` with :func:`~lgdea.evidence.chat_models.build_chat_model`
            (lazily, on the first request).
        backend: ``'openai' | 'ollama' | 'hf'`` (when ``chat_model`` is None).
        model: model name (server) or local path (``hf``).
        base_url: server URL (``openai``: any OpenAI-compatible server; ``ollama``).
        api_key_env: environment variable with the API key (never the key itself).
        gguf_file: GGUF file inside ``model`` (``hf``).
        prompt_version: prompt module in ``lgdea/evidence/prompts`` (hash in the cache key).
        structured_output: ``'auto'`` (native when the model supports it, else JSON),
            ``'native'`` or ``'json'``.
        structured_method: ``method`` argument of ``with_structured_output`` (e.g.
            ``'json_schema'``, ``'function_calling'``, ``'json_mode'``); None = model default.
        concurrency: maximum requests in flight.
        max_retries: retries after the first attempt (errors, timeouts, malformed output).
        backoff_base: first backoff in seconds; doubles each retry (jittered), capped by
            ``backoff_max``.
        timeout: seconds per request.
        temperature: sampling temperature (0 = greedy).
        max_tokens: generation budget.
        verify: :class:`PhraseVerifier` arguments (``min_overlap``, ``embed_fn``, ...).
        policy: :class:`EvidencePolicy` fields.
        endpoint: the URL reports are sent to, for the data-use guardrail, when it cannot be
            read from the chat model (custom classes).
        model_kwargs: extra arguments of the chat-model class.
        seed: seed of the backoff jitter.
    """

    extractor_id = 'llm'
    version = '1.0'
    offline = False

    def __init__(self, chat_model: Optional[Any] = None, backend: str = 'openai',
                 model: Optional[str] = None, base_url: Optional[str] = None,
                 api_key_env: Optional[str] = 'OPENAI_API_KEY', gguf_file: Optional[str] = None,
                 prompt_version: str = 'evidence_v1', structured_output: str = 'auto',
                 structured_method: Optional[str] = None, concurrency: int = 4,
                 max_retries: int = 3, backoff_base: float = 1.0, backoff_max: float = 30.0,
                 timeout: float = 120.0, temperature: float = 0.0, max_tokens: int = 512,
                 verify: Optional[dict] = None, policy: Optional[dict] = None,
                 endpoint: Optional[str] = None, model_kwargs: Optional[dict] = None,
                 seed: int = 0, api_key: Any = None):
        self._record_init_args(locals())
        super().__init__(policy)
        if api_key is not None:
            raise ValueError('LLMEvidenceExtractor: do not put API keys in configs; set an '
                             'environment variable and pass its name as api_key_env')
        if chat_model is None and backend not in BACKENDS:
            raise ValueError(f'unknown LLM backend {backend!r}; choose one of {BACKENDS}')
        if chat_model is None and not model:
            raise ValueError('LLMEvidenceExtractor needs chat_model=... or model=... '
                             '(--model on the command line)')
        if structured_output not in ('auto', 'native', 'json'):
            raise ValueError(f'structured_output={structured_output!r}: use auto, native or json')
        if int(concurrency) < 1:
            raise ValueError('concurrency must be >= 1')
        self._chat_model = chat_model
        self.backend = backend if chat_model is None else 'custom'
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.gguf_file = gguf_file
        self.prompt = load_prompt(prompt_version)
        self.structured_output = structured_output
        self.structured_method = structured_method
        self.concurrency = int(concurrency)
        self.max_retries = int(max_retries)
        self.backoff_base, self.backoff_max = float(backoff_base), float(backoff_max)
        self.timeout = float(timeout)
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.verifier = PhraseVerifier(**(verify or {}))
        self._endpoint = endpoint
        self.model_kwargs = dict(model_kwargs or {})
        self._rng = random.Random(seed)
        self._build_lock = threading.Lock()
        self.n_rejected = 0

    # ------------------------------------------------------------------------ identity
    @property
    def model_name(self) -> str:
        if self._chat_model is not None:
            return chat_model_name(self._chat_model)
        if self.backend == 'hf':
            base = os.path.basename(os.path.normpath(self.model))
            return f'{base}/{self.gguf_file}' if self.gguf_file else base
        return self.model

    @property
    def prompt_hash(self) -> str:
        return self.prompt.sha256

    def config_dict(self) -> dict:
        return dict(policy=self.policy.to_dict(), backend=self.backend, model=self.model_name,
                    prompt_version=self.prompt.version, temperature=self.temperature,
                    max_tokens=self.max_tokens, structured_output=self.structured_output,
                    structured_method=self.structured_method, verify=self.verifier.config_dict())

    def describe(self) -> dict:
        out = super().describe()
        out.update(endpoint=self.endpoint(), concurrency=self.concurrency,
                   max_retries=self.max_retries, timeout=self.timeout,
                   api_key_env=self.api_key_env)
        return out

    def cli_args(self) -> Optional[List[str]]:
        """``--extractor llm --backend .. --model .. [--base-url ..] [--extractor-cfg JSON]``."""
        if self._init_args is None:  # holds a chat-model object or a callable
            return None
        cfg = dict(self._init_args)
        args = ['--extractor', 'llm']
        for key, flag in (('backend', '--backend'), ('model', '--model'),
                          ('base_url', '--base-url'), ('gguf_file', '--gguf-file'),
                          ('api_key_env', '--api-key-env'), ('concurrency', '--concurrency')):
            value = cfg.pop(key, getattr(self, key) if key in ('backend', 'model') else None)
            if value is not None:
                args += [flag, str(value)]
        if cfg:
            args += ['--extractor-cfg', json.dumps(cfg, sort_keys=True)]
        return args

    def endpoint(self) -> Optional[str]:
        if self._endpoint is not None:
            return self._endpoint
        if self._chat_model is not None:
            return chat_model_endpoint(self._chat_model)
        if self.backend == 'openai':
            return self.base_url or OPENAI_DEFAULT_URL
        if self.backend == 'ollama':
            return self.base_url or OLLAMA_DEFAULT_URL
        return None

    # ------------------------------------------------------------------------- model
    @property
    def chat_model(self) -> Any:
        """The LangChain ``BaseChatModel`` (built on first use when not given)."""
        with self._build_lock:
            if self._chat_model is None:
                self._chat_model = build_chat_model(
                    self.backend, self.model, base_url=self.base_url,
                    api_key_env=self.api_key_env, temperature=self.temperature,
                    timeout=self.timeout, max_tokens=self.max_tokens, gguf_file=self.gguf_file,
                    model_kwargs=self.model_kwargs)
        return self._chat_model

    def _runnable(self):
        """``(runnable, mode)``: the structured-output runnable or the plain chat model."""
        model = self.chat_model
        if self.structured_output in ('auto', 'native'):
            kwargs = dict(include_raw=True)
            if self.structured_method:
                kwargs['method'] = self.structured_method
            try:
                return model.with_structured_output(ReportEvidence, **kwargs), 'native'
            except NotImplementedError:
                if self.structured_output == 'native':
                    raise ValueError(f'{type(model).__name__} does not support '
                                     'with_structured_output; use structured_output="json"')
        return model, 'json'

    def messages(self, report: str) -> list:
        """LangChain messages: system, few-shot turns, then the report."""
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
        cls = {'system': SystemMessage, 'human': HumanMessage, 'ai': AIMessage}
        return [cls[role](content=content) for role, content in self.prompt.messages(report)]

    @staticmethod
    def _parse(output: Any, mode: str) -> ReportEvidence:
        if mode == 'native':
            if isinstance(output, dict) and 'parsed' in output:
                if output.get('parsing_error') is not None or output.get('parsed') is None:
                    raise MalformedOutputError(
                        f'structured output did not parse: {output.get("parsing_error")}')
                output = output['parsed']
            if isinstance(output, ReportEvidence):
                return output
            try:
                return ReportEvidence.model_validate(output)
            except ValidationError as e:
                raise MalformedOutputError(
                    f'structured output does not match the schema: {str(e).splitlines()[0]}'
                ) from None
        content = output.content if hasattr(output, 'content') else output
        if isinstance(content, list):  # content blocks
            content = ''.join(b.get('text', '') if isinstance(b, dict) else str(b)
                              for b in content)
        return parse_evidence_json(content)

    def _redact(self, message: str) -> str:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            message = message.replace(key, '[redacted]')
        return _SECRET_LIKE.sub('[redacted]', message)

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max, self.backoff_base * (2 ** attempt))
        return delay * (0.5 + 0.5 * self._rng.random())

    # ---------------------------------------------------------------------- extraction
    def _finish(self, text: str, evidence: ReportEvidence, attempts: int) -> EvidenceRecord:
        canonical = self.policy.no_finding_phrase.lower()
        findings = [f for f in evidence.findings if f.phrase.lower() != canonical]
        reasons = self.verifier.check([f.phrase for f in findings], text,
                                      [f.certainty for f in findings])
        kept = [f for f, why in zip(findings, reasons) if why is None]
        rejected = [(f.phrase, why) for f, why in zip(findings, reasons) if why is not None]
        self.n_rejected += len(rejected)
        phrases, why = [p for p, _ in rejected], [r for _, r in rejected]
        if findings and not kept:
            counts = ', '.join(f'{r} {why.count(r)}' for r in dict.fromkeys(why))
            return self.make_record(
                text, status='failed', rejected=phrases, rejected_reasons=why,
                attempts=attempts,
                error=f'all {len(rejected)} phrases were rejected by verification against the '
                      f'report text ({counts})')
        return self.make_record(text, status='ok', findings=kept, rejected=phrases,
                                rejected_reasons=why, attempts=attempts)

    async def _extract_one(self, text: str, runnable, mode: str,
                           sem: asyncio.Semaphore) -> EvidenceRecord:
        messages = self.messages(text)
        errors: List[str] = []
        for attempt in range(self.max_retries + 1):
            try:
                async with sem:
                    output = await asyncio.wait_for(runnable.ainvoke(messages), self.timeout)
                evidence = self._parse(output, mode)
            except asyncio.CancelledError:
                raise
            except asyncio.TimeoutError:
                errors.append(f'timeout after {self.timeout:g}s')
            except Exception as e:  # noqa: BLE001 - every failure is retried, then recorded
                errors.append(self._redact(f'{type(e).__name__}: {e}')[:500])
            else:
                return self._finish(text, evidence, attempt + 1)
            if attempt < self.max_retries:
                await asyncio.sleep(self._backoff(attempt))
        return self.make_record(text, status='failed', attempts=self.max_retries + 1,
                                error=f'{len(errors)} attempts failed; last: {errors[-1]}')

    async def _extract_all(self, texts: Sequence[str],
                           on_result: Optional[Callable[[int, EvidenceRecord], None]]
                           ) -> List[EvidenceRecord]:
        runnable, mode = self._runnable()
        sem = asyncio.Semaphore(self.concurrency)
        queue: asyncio.Queue = asyncio.Queue()
        for item in enumerate(texts):
            queue.put_nowait(item)
        results: List[Optional[EvidenceRecord]] = [None] * len(texts)

        async def worker():
            while True:
                try:
                    i, text = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                rec = await self._extract_one(text, runnable, mode, sem)
                results[i] = rec
                if on_result is not None:
                    on_result(i, rec)

        n_workers = min(len(texts), 2 * self.concurrency)
        await asyncio.gather(*(worker() for _ in range(n_workers)))
        return results

    def extract_many(self, texts: Sequence[str],
                     on_result: Optional[Callable[[int, EvidenceRecord], None]] = None
                     ) -> List[EvidenceRecord]:
        """Extract concurrently on the process-wide extraction event loop.

        One long-lived loop (in a daemon thread) serves every call, because LangChain
        clients cache their async HTTP clients, which are bound to the loop that created
        them. ``on_result`` runs on that loop's thread. Ctrl-C cancels the pending requests;
        finished ones have already been handed to ``on_result``.
        """
        texts = list(texts)
        if not texts:
            return []
        future = asyncio.run_coroutine_threadsafe(self._extract_all(texts, on_result),
                                                  _extraction_loop())
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def extract(self, text: str) -> EvidenceRecord:
        if not isinstance(text, str):
            raise TypeError(f'report text must be a str, got {type(text).__name__}')
        return self.extract_many([text])[0]
