"""A local transformers text-generation pipeline as a LangChain chat model (``hf`` backend)."""
import os
import threading
from typing import Any, Dict, List, Optional

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, PrivateAttr

_ROLES = {'system': 'system', 'human': 'user', 'ai': 'assistant', 'tool': 'tool'}


class HFPipelineChatModel(BaseChatModel):
    """A local transformers text-generation pipeline as a LangChain chat model (``hf``).

    The pipeline is built lazily on the first call; generation is serialised by a lock (one
    model in memory, concurrent requests queue). Messages are rendered with the tokenizer's
    chat template. Nothing leaves the process, so the data-use guardrail treats it as local.

    Args:
        model_path: a local model directory (or a file path whose directory holds the model).
        gguf_file: GGUF file name inside ``model_path`` (transformers ``gguf_file=``).
        max_new_tokens: generation budget.
        temperature: 0 = greedy decoding.
        device: torch device string.
        dtype: torch dtype name.
        pipeline: an already-built pipeline (callable) to use instead of loading one.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: str
    gguf_file: Optional[str] = None
    max_new_tokens: int = 256
    temperature: float = 0.0
    device: str = 'cpu'
    dtype: str = 'float32'
    pipeline: Any = None

    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    _build_lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return 'lgdea-hf-pipeline'

    @property
    def model_name(self) -> str:
        base = os.path.basename(os.path.normpath(self.model_path))
        return f'{base}/{self.gguf_file}' if self.gguf_file else base

    @property
    def _identifying_params(self) -> Dict[str, Any]:
        return dict(model_name=self.model_name, max_new_tokens=self.max_new_tokens,
                    temperature=self.temperature)

    def _get_pipeline(self):
        with self._build_lock:  # concurrent first calls must not load the model twice
            return self._build_pipeline()

    def _build_pipeline(self):
        if self.pipeline is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers import pipeline as hf_pipeline

            kwargs = dict(gguf_file=self.gguf_file) if self.gguf_file else {}
            if not os.path.exists(self.model_path):
                raise FileNotFoundError(f'HF chat model: no local model at {self.model_path!r} '
                                        '(models are never downloaded here)')
            tok = AutoTokenizer.from_pretrained(self.model_path, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(
                self.model_path, dtype=getattr(torch, self.dtype), **kwargs)
            model.to(self.device).eval()
            self.pipeline = hf_pipeline('text-generation', model=model, tokenizer=tok,
                                        device=torch.device(self.device))
        return self.pipeline

    def _generate(self, messages: List[BaseMessage], stop: Optional[List[str]] = None,
                  run_manager=None, **kwargs: Any) -> ChatResult:
        pipe = self._get_pipeline()
        chat = [{'role': _ROLES.get(m.type, 'user'), 'content': m.content} for m in messages]
        gen = dict(max_new_tokens=self.max_new_tokens, return_full_text=False)
        if self.temperature > 0:
            gen.update(do_sample=True, temperature=self.temperature)
        else:
            gen.update(do_sample=False)
        with self._lock:
            out = pipe(chat, **gen)
        text = out[0]['generated_text']
        if isinstance(text, list):  # some versions return the message list
            text = text[-1]['content']
        if stop:
            cut = [text.find(s) for s in stop if s in text]
            if cut:
                text = text[:min(cut)]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])
