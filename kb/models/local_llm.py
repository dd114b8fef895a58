"""A LlamaIndex LLM for local GGUF files through llama.cpp (llama-cpp-python).

kb writes its own instead of using LlamaIndex's ``LlamaCPP`` because that class

* loads a new copy of the model for every instance (every KnowledgeBase, every engine of a server);
* keeps the per-call streaming flag in state shared by all calls, and lets two threads use one
  llama.cpp context at once, which corrupts the context (a server answers many questions at once);
* re-evaluates every prompt from its first token;
* passes on a loop of the small model (the same sentences again and again) until its token limit.

Here one ``llama_cpp.Llama`` is loaded per (file, context size, threads) and process and shared by
every instance; generations on it take turns under a lock; and the KV states of earlier prompts are
kept (:mod:`kb.models.prompt_cache`, in RAM and on disk), so a long fixed prefix (the schema at the start of
every SQL prompt) is evaluated once and restored afterwards, in this process and the next. Every
generation leaves out the sentences it repeats and is continued once, with a repetition penalty,
when it loops (:mod:`kb.models.repetition`). Prompts use ChatML, the template of both Qwen2.5 and SmolLM2.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Optional

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM

from kb.engines.answer import GENERATION_STOP, GenerationStopped, generation_stopped
from kb.models.repetition import RepeatedSentences

STOP = ["<|im_end|>", "<|endoftext|>"]
# llama.cpp's repetition penalty for the continuation of a generation that looped (kb.models.repetition):
# 1.1, the upper end of what Qwen2.5's own generation settings use (1.05-1.1).
LOOP_REPEAT_PENALTY = 1.1
_LOADED: dict[tuple[Any, ...], tuple[Any, threading.Lock]] = {}
_LOADING = threading.Lock()
# Set by LocalLlamaCPP.prefilling_until: the text that ends the part of a prompt to evaluate, not answer.
_PREFILL_UNTIL: ContextVar[Optional[str]] = ContextVar("kb_prefill_until", default=None)
# How long the exit waits for a generation still running in a daemon thread before it leaves that model be.
_CLOSE_WAIT_SECONDS = 0.5


def chatml(messages: Sequence[ChatMessage]) -> str:
    """Messages in ChatML, ending with an open assistant turn."""
    parts = []
    for message in messages:
        role = getattr(message.role, "value", message.role)
        parts.append(f"<|im_start|>{role}\n{message.content or ''}<|im_end|>")
    parts.append("<|im_start|>assistant\n")
    return "\n".join(parts)


def _shared_model(
    path: str, n_ctx: int, n_threads: int, cache_mb: int, cache_dir: Optional[str]
) -> tuple[Any, threading.Lock]:
    key = (path, n_ctx, n_threads, cache_mb, cache_dir)
    with _LOADING:
        if key not in _LOADED:
            from kb.models.prompt_cache import PromptStateCache, PromptStateLlama

            model = PromptStateLlama(
                model_path=path, n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads, n_batch=512, verbose=False
            )
            if cache_mb > 0:
                folder = Path(cache_dir) / f"{Path(path).name}-ctx{n_ctx}" if cache_dir else None
                below = Path(cache_dir).parent if cache_dir else None  # cache_dir itself is made owner-only too
                model.set_cache(PromptStateCache(cache_mb * 1024 * 1024, folder, n_ctx=n_ctx, home=below))
            _LOADED[key] = (model, threading.Lock())
        return _LOADED[key]


@atexit.register
def _close_shared_models() -> None:
    """Free the shared models while the interpreter is whole.

    Left to the garbage collector, a model can be freed during the interpreter's teardown, after
    llama-cpp-python's bindings were cleared, and its finaliser prints a traceback ("'NoneType' object
    is not callable"). A model whose generation is still running (a daemon thread) is left alone; one
    that is closed keeps its lock held, so no later call reaches the freed context.
    """
    for model, lock in list(_LOADED.values()):
        if lock.acquire(timeout=_CLOSE_WAIT_SECONDS):
            model.close()


class LocalLlamaCPP(CustomLLM):
    """A GGUF model on the CPU, loaded once per process and shared; safe to call from many threads."""

    model_path: str = Field(description="path of the GGUF file (verified by kb before it gets here)")
    context_window: int = Field(default=8192, ge=256, description="tokens of prompt and answer together")
    max_new_tokens: int = Field(default=256, ge=1, description="tokens generated at most per call")
    temperature: float = Field(default=0.0, ge=0.0)
    seed: int = Field(default=0, description="sampling seed: with temperature > 0, another seed gives another sample")
    stop: list[str] = Field(default_factory=list, description="more texts that end a generation (not included)")
    n_threads: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1))
    prompt_cache_mb: int = Field(default=512, ge=0, description="room for cached prompt states; 0: none")
    prompt_cache_dir: Optional[str] = Field(default=None, description="keep them on disk here (else in RAM)")

    _model: Any = PrivateAttr()
    _lock: threading.Lock = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._model, self._lock = _shared_model(
            str(Path(self.model_path)), self.context_window, self.n_threads, self.prompt_cache_mb, self.prompt_cache_dir
        )

    @classmethod
    def class_name(cls) -> str:
        return "LocalLlamaCPP"

    def forget_prompts(self) -> None:
        """Evaluate the next prompt from scratch: the model's context and the prompt cache are emptied
        (benchmarks measure cold answers with it)."""
        with self._lock:
            self._model.reset()
            if self._model.cache is not None:
                self._model.cache.clear()

    @contextmanager
    def prefilling_until(self, marker: str) -> Iterator[None]:
        """Within it (in this thread or task), a prompt that contains ``marker`` is not answered: the
        text before the marker is evaluated and its state kept in the prompt cache, and the reply is
        empty. Prompts that begin with that text later are evaluated from its end only. A caller warms
        the fixed beginning of prompts another library writes (LlamaIndex's text-to-SQL prompt, whose
        schema comes before the question) by asking with ``marker`` as the question. The state is
        pinned in the cache (:meth:`PromptStateCache.pinning`): whole prompts do not evict it."""
        token = _PREFILL_UNTIL.set(marker)
        try:
            yield
        finally:
            _PREFILL_UNTIL.reset(token)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.max_new_tokens,
            is_chat_model=True,
            model_name=Path(self.model_path).name,
        )

    def tokenize(self, text: str) -> list[int]:
        return self._model.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {
            "max_tokens": int(kwargs.get("max_tokens") or self.max_new_tokens),
            "temperature": float(kwargs.get("temperature", self.temperature)),
            "stop": STOP + self.stop + list(kwargs.get("stop") or []),
            "seed": int(kwargs.get("seed", self.seed)),
        }
        if GENERATION_STOP.get() is not None:  # asked after every token (see kb.engines.answer)
            from llama_cpp import StoppingCriteriaList

            options["stopping_criteria"] = StoppingCriteriaList([lambda input_ids, logits: generation_stopped()])
        return options

    def _prompt(self, prompt: str, formatted: bool) -> str:
        if formatted:
            return prompt
        messages = [ChatMessage(role=MessageRole.USER, content=prompt)]
        if self.system_prompt:
            messages.insert(0, ChatMessage(role=MessageRole.SYSTEM, content=self.system_prompt))
        return chatml(messages)

    def _pieces(self, text: str, options: dict[str, Any]) -> Iterator[str]:
        """The generation's text piece by piece, its repeated sentences left out
        (:mod:`kb.models.repetition`); when it loops, it is stopped and continued once from the text
        kept, with llama.cpp's repetition penalty. The caller holds the lock."""
        marker = _PREFILL_UNTIL.get()
        if marker is not None and marker in text:  # evaluated and cached, not answered: prefilling_until
            from kb.models.prompt_cache import PromptStateCache  # llama_cpp is loaded by now

            cache = self._model.cache
            with cache.pinning() if isinstance(cache, PromptStateCache) else nullcontext():
                self._model.create_completion(text[: text.index(marker)], max_tokens=1, temperature=0.0)
            return
        watch = RepeatedSentences()
        tokens_left = int(options["max_tokens"])
        for repeat_penalty in (None, LOOP_REPEAT_PENALTY):
            if repeat_penalty is not None:
                options = {**options, "repeat_penalty": repeat_penalty, "max_tokens": tokens_left}
            generation = self._model.create_completion(text + watch.kept, stream=True, **options)
            try:
                for piece in generation:  # one token each
                    tokens_left -= 1
                    passed = watch.push(piece["choices"][0]["text"])
                    if passed:
                        yield passed
                    if watch.looping:
                        break
            finally:
                generation.close()
            if not watch.looping or tokens_left <= 0:
                break
            watch.resume()
        rest = watch.finish()
        if rest:
            yield rest

    def _generate(self, text: str, kwargs: dict[str, Any]) -> str:
        with self._lock:
            generated = "".join(self._pieces(text, self._options(kwargs)))
        if generation_stopped():
            raise GenerationStopped("the answer was no longer wanted; generation stopped")
        return generated

    def _stream(self, text: str, kwargs: dict[str, Any]) -> CompletionResponseGen:
        options = self._options(kwargs)

        def gen() -> CompletionResponseGen:
            # The lock is held while the caller consumes the stream; closing the generator early
            # (or dropping it) releases it.
            with self._lock:
                so_far = ""
                for delta in self._pieces(text, options):
                    so_far += delta
                    yield CompletionResponse(text=so_far, delta=delta)
            if generation_stopped():
                raise GenerationStopped("the answer was no longer wanted; generation stopped")

        return gen()

    # The public methods each report one LLM event to the callback manager (token counting):
    # chat() does not go through complete(), which would report a second one.
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self._generate(self._prompt(prompt, formatted), kwargs))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        return self._stream(self._prompt(prompt, formatted), kwargs)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        text = self._generate(chatml(messages), kwargs)
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        pieces = self._stream(chatml(messages), kwargs)

        def gen() -> ChatResponseGen:
            for piece in pieces:
                yield ChatResponse(
                    message=ChatMessage(role=MessageRole.ASSISTANT, content=piece.text),
                    delta=piece.delta,
                )

        return gen()
