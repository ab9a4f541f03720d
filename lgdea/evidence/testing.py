"""Test doubles: a local OpenAI-compatible chat server and a scripted LangChain chat model.

Needs ``langchain-core``. Used by the tests and ``benchmarks/bench_evidence_extraction.py``.

``OpenAIStubServer`` answers ``POST /v1/chat/completions`` with an evidence JSON object for
the report in the last user message, computed by the rule extractor, so its answers are
grounded in the report text. Latency and malformed answers can be injected to exercise
concurrency, retries and failure recording of :class:`LLMEvidenceExtractor` without a model.

Example:
    >>> with OpenAIStubServer(latency_s=0.05) as server:
    ...     ext = LLMEvidenceExtractor(backend='openai', model='stub', base_url=server.url)
"""
import asyncio
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, List, Optional

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableLambda
from pydantic import ConfigDict, Field, PrivateAttr

_REPORT = re.compile(r'"""\n(.*)\n"""', re.S)


class OpenAIStubServer:
    """Threaded OpenAI-compatible stub on ``127.0.0.1`` (a free port).

    Args:
        latency_s: seconds each request sleeps before answering (simulated generation).
        malformed: ``callable(request_index, report) -> bool``; True answers non-JSON text.
        answer_fn: ``callable(report) -> dict`` giving the evidence JSON; default: the rule
            extractor's kept findings.

    Attributes:
        url: base URL (``http://127.0.0.1:PORT/v1``).
        n_requests: requests answered.
        max_in_flight: the largest number of requests served at the same time.
        auth_headers: the ``Authorization`` headers received (to test key handling).
    """

    def __init__(self, latency_s: float = 0.0,
                 malformed: Optional[Callable[[int, str], bool]] = None,
                 answer_fn: Optional[Callable[[str], dict]] = None):
        self.latency_s = float(latency_s)
        self.malformed = malformed
        self.answer_fn = answer_fn or self._rule_answer
        self.n_requests = 0
        self.max_in_flight = 0
        self.auth_headers: List[str] = []
        self._in_flight = 0
        self._lock = threading.Lock()
        self._rule = None
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    def _rule_answer(self, report: str) -> dict:
        if self._rule is None:
            from .rule_extractor import RuleEvidenceExtractor
            self._rule = RuleEvidenceExtractor(policy=dict(
                keep_devices=True, keep_negated=True, keep_comparisons=True, dedupe=False))
        rec = self._rule.extract(report)
        return {'findings': [f.model_dump(exclude={'hedged'}) for f in rec.findings]}

    def _answer(self, body: dict) -> dict:
        messages = body.get('messages', [])
        user = next((m for m in reversed(messages) if m.get('role') == 'user'), {})
        content = user.get('content', '')
        if isinstance(content, list):
            content = ''.join(part.get('text', '') for part in content if isinstance(part, dict))
        m = _REPORT.search(content)
        report = m.group(1) if m else content
        with self._lock:
            index = self.n_requests
            self.n_requests += 1
        if self.malformed is not None and self.malformed(index, report):
            text = 'Sure! The findings are: cardiomegaly, maybe.'
        else:
            text = json.dumps(self.answer_fn(report))
        return {
            'id': f'chatcmpl-stub-{index}', 'object': 'chat.completion',
            'created': int(time.time()), 'model': body.get('model', 'stub'),
            'choices': [{'index': 0, 'finish_reason': 'stop',
                         'message': {'role': 'assistant', 'content': text}}],
            'usage': {'prompt_tokens': 1, 'completion_tokens': 1, 'total_tokens': 2},
        }

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):  # keep test output clean
                return

            def _send(self, code: int, obj: dict):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip('/').endswith('/models'):
                    self._send(200, {'object': 'list', 'data': [{'id': 'stub',
                                                                 'object': 'model'}]})
                else:
                    self._send(404, {'error': {'message': 'not found'}})

            def do_POST(self):
                length = int(self.headers.get('Content-Length') or 0)
                body = json.loads(self.rfile.read(length) or b'{}')
                with stub._lock:
                    stub.auth_headers.append(self.headers.get('Authorization', ''))
                    stub._in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub._in_flight)
                try:
                    if not self.path.rstrip('/').endswith('/chat/completions'):
                        self._send(404, {'error': {'message': f'unknown path {self.path}'}})
                        return
                    if stub.latency_s:
                        time.sleep(stub.latency_s)
                    self._send(200, stub._answer(body))
                finally:
                    with stub._lock:
                        stub._in_flight -= 1

        return Handler

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError('OpenAIStubServer is not started')
        return f'http://127.0.0.1:{self._server.server_address[1]}/v1'

    def start(self) -> 'OpenAIStubServer':
        self._server = ThreadingHTTPServer(('127.0.0.1', 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> 'OpenAIStubServer':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------------------
# An in-process LangChain chat-model test double
# --------------------------------------------------------------------------------------


def report_of_prompt(text: str) -> str:
    """The report inside the evidence prompt's user message (``\"\"\"...\"\"\"``)."""
    m = _REPORT.search(text)
    return m.group(1) if m else text


class ScriptedChatModel(BaseChatModel):
    """A LangChain chat model whose reply is computed from the report by ``responder``.

    Args:
        responder: ``callable(report, call_index) -> reply text`` (call_index counts calls
            for that report, from 0, so a test can fail the first attempt and succeed later).
        delay_s: simulated latency (``asyncio.sleep`` on the async path).
        structured: support ``with_structured_output`` (the reply is parsed as the schema);
            False makes it raise ``NotImplementedError`` like a model without tool calling.

    Attributes:
        calls: the reports received, in call order.
        max_in_flight: the largest number of concurrent calls.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    responder: Callable[[str, int], str]
    delay_s: float = 0.0
    structured: bool = False
    model_name: str = 'scripted'
    calls: List[str] = Field(default_factory=list)
    max_in_flight: int = 0

    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    _in_flight: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return 'lgdea-scripted'

    def _reply(self, messages) -> str:
        report = report_of_prompt(messages[-1].content)
        with self._lock:
            index = self.calls.count(report)
            self.calls.append(report)
        return self.responder(report, index)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        if self.delay_s:
            time.sleep(self.delay_s)
        text = self._reply(messages)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            text = self._reply(messages)
        finally:
            with self._lock:
                self._in_flight -= 1
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def with_structured_output(self, schema, *, include_raw: bool = False, **kwargs):
        if not self.structured:
            raise NotImplementedError('ScriptedChatModel(structured=False)')
        from pydantic import ValidationError

        def parse(message):
            try:
                parsed, error = schema.model_validate_json(message.content), None
            except ValidationError as e:
                parsed, error = None, e
            if include_raw:
                return dict(raw=message, parsed=parsed, parsing_error=error)
            if error is not None:
                raise error
            return parsed

        return self | RunnableLambda(parse)
