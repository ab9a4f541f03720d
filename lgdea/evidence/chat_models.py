"""LangChain chat models for the LLM evidence extractor.

:func:`build_chat_model` makes one of

* ``backend='openai'``: ``langchain_openai.ChatOpenAI`` for any OpenAI-compatible server
  (vLLM, llama.cpp server, LM Studio, ...) through ``base_url``;
* ``backend='ollama'``: ``langchain_ollama.ChatOllama`` (default ``http://localhost:11434``);
* ``backend='hf'``: :class:`HFPipelineChatModel`, a local transformers text-generation
  pipeline wrapped as a ``BaseChatModel`` (in-process, nothing leaves the machine).

The integrations are optional extras and are imported only when asked for. API keys are
read from an environment variable named by ``api_key_env``; they are never accepted as
arguments, written to caches, logs or config dumps. ``langchain-core`` itself is imported only
when a model is built, so ``lgdea.evidence`` imports without the ``llm`` extra.
"""
import os
from typing import Any, Optional

from .guardrail import is_loopback

BACKENDS = ('openai', 'ollama', 'hf')
OLLAMA_DEFAULT_URL = 'http://localhost:11434'
OPENAI_DEFAULT_URL = 'https://api.openai.com/v1'


def _missing_extra(package: str, backend: str) -> ImportError:
    return ImportError(f'the {backend!r} LLM backend needs the optional package {package!r}: '
                       f'pip install {package}')


def resolve_api_key(api_key_env: Optional[str], base_url: Optional[str]) -> Optional[str]:
    """Read the API key from the environment variable ``api_key_env``.

    A loopback server without a key gets the placeholder ``'EMPTY'`` (vLLM and llama.cpp
    accept any key); a remote endpoint without a key is an error naming the variable.
    """
    key = os.environ.get(api_key_env) if api_key_env else None
    if key:
        return key
    if is_loopback(base_url or OPENAI_DEFAULT_URL):
        return 'EMPTY'
    raise ValueError(f'no API key for the remote endpoint: set the environment variable '
                     f'{api_key_env or "OPENAI_API_KEY"} (keys are only read from the '
                     f'environment, never from configs or the command line)')


def build_chat_model(backend: str, model: str, base_url: Optional[str] = None,
                     api_key_env: Optional[str] = 'OPENAI_API_KEY', temperature: float = 0.0,
                     timeout: float = 60.0, max_tokens: int = 512,
                     gguf_file: Optional[str] = None, model_kwargs: Optional[dict] = None
                     ) -> Any:
    """Build a LangChain chat model.

    Args:
        backend: ``'openai' | 'ollama' | 'hf'``.
        model: model name on the server, or the local path / directory for ``hf``.
        base_url: server URL (``openai``, ``ollama``).
        api_key_env: environment variable holding the API key (``openai``).
        temperature: sampling temperature (0 = greedy, reproducible).
        timeout: per-request timeout in seconds (passed to the client).
        max_tokens: maximum generated tokens.
        gguf_file: GGUF file name inside ``model`` (``hf``).
        model_kwargs: extra keyword arguments of the chat-model class.
    """
    if 'api_key' in (model_kwargs or {}):
        raise ValueError('pass API keys through an environment variable (api_key_env), '
                         'not as a model argument')
    if backend not in BACKENDS:
        raise ValueError(f'unknown LLM backend {backend!r}; choose one of {BACKENDS}')
    if not model:
        raise ValueError(f'the {backend!r} backend needs a model name (--model)')
    extra = dict(model_kwargs or {})
    if backend == 'openai':
        try:
            from langchain_openai import ChatOpenAI
        except ImportError:
            raise _missing_extra('langchain-openai', backend) from None
        return ChatOpenAI(model=model, base_url=base_url,
                          api_key=resolve_api_key(api_key_env, base_url),
                          temperature=temperature, timeout=timeout, max_tokens=max_tokens,
                          max_retries=0, **extra)
    if backend == 'ollama':
        try:
            from langchain_ollama import ChatOllama
        except ImportError:
            raise _missing_extra('langchain-ollama', backend) from None
        return ChatOllama(model=model, base_url=base_url or OLLAMA_DEFAULT_URL,
                          temperature=temperature, num_predict=max_tokens,
                          client_kwargs={'timeout': timeout}, **extra)
    from .hf_chat_model import HFPipelineChatModel
    return HFPipelineChatModel(model_path=model, gguf_file=gguf_file, temperature=temperature,
                               max_new_tokens=max_tokens, **extra)


def chat_model_endpoint(model: Any) -> Optional[str]:
    """The URL a chat model sends text to, or None when it runs in-process.

    Looks at the usual attributes (``openai_api_base``, ``base_url``, ``endpoint_url``, ...).
    ``ChatOpenAI`` without a base URL talks to the OpenAI API.
    """
    for attr in ('openai_api_base', 'base_url', 'endpoint_url', 'api_base', 'api_url',
                 'anthropic_api_url', 'azure_endpoint', 'endpoint'):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    if type(model).__name__ == 'ChatOpenAI':
        return OPENAI_DEFAULT_URL
    if type(model).__name__ == 'ChatOllama':
        return OLLAMA_DEFAULT_URL
    return None


def chat_model_name(model: Any) -> str:
    """A stable name of the model (part of the cache key; no host paths or secrets)."""
    if getattr(model, '_llm_type', None) == 'lgdea-hf-pipeline':
        return model.model_name
    for attr in ('model_name', 'model', 'model_id', 'deployment_name'):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__
