"""A scripted LlamaIndex LLM: the one external service tests may replace, for the logic around it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Union

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms import CompletionResponse, CompletionResponseGen, CustomLLM, LLMMetadata
from llama_index.core.llms.callbacks import llm_completion_callback

from kb.engines.answer import GenerationStopped, generation_stopped

Script = Union[list[str], Callable[[str], str]]


class ScriptedLLM(CustomLLM):
    """Answers from a list (in order) or a function of the prompt; records every prompt and the stop
    texts it was asked with, and ends an answer before the first of them it holds, as a model does.

    ``delay_for(prompt)`` (else ``token_delay``) is the time each word takes to "generate", in
    ``complete`` too; like kb's local model, generation ends early when kb's generation-stop hook
    (``kb.models.local_llm.GENERATION_STOP``) says so."""

    context_window: int = Field(default=4096)
    token_delay: float = Field(default=0.0, description="seconds between streamed words")
    stop: list[str] = Field(default_factory=list, description="texts that end an answer")
    _script: Any = PrivateAttr()
    _prompts: list = PrivateAttr(default_factory=list)
    _stops: list = PrivateAttr(default_factory=list)
    _delay_for: Any = PrivateAttr(default=None)

    def __init__(self, script: Script, delay_for: Callable[[str], float] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._script = list(script) if isinstance(script, list) else script
        self._delay_for = delay_for

    @property
    def prompts(self) -> list[str]:
        return self._prompts

    @property
    def stops(self) -> list[tuple[str, ...]]:
        """The stop texts of each prompt in :attr:`prompts`."""
        return self._stops

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=self.context_window, num_output=256, model_name="scripted")

    def _next(self, prompt: str) -> str:
        self._prompts.append(prompt)
        self._stops.append(tuple(self.stop))
        if callable(self._script):
            answer = self._script(prompt)
        elif not self._script:
            raise AssertionError(f"the scripted LLM ran out of answers; prompt was:\n{prompt}")
        else:
            answer = self._script.pop(0)
        ends = [answer.index(text) for text in self.stop if text in answer]
        return answer[: min(ends)] if ends else answer

    def _words(self, prompt: str, text: str):
        """The answer's words as they are "generated" (delayed; stopped by kb's hook as its local model is)."""
        delay = self._delay_for(prompt) if self._delay_for else self.token_delay
        for i, word in enumerate(text.split(" ")):
            if delay:
                time.sleep(delay)
            if generation_stopped():
                raise GenerationStopped("scripted generation stopped")
            yield word if i == 0 else " " + word

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text="".join(self._words(prompt, self._next(prompt))))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        words = self._words(prompt, self._next(prompt))

        def gen():
            so_far = ""
            for delta in words:
                so_far += delta
                yield CompletionResponse(text=so_far, delta=delta)

        return gen()


class PromptCachingScriptedLLM(ScriptedLLM):
    """A :class:`ScriptedLLM` with a prompt cache as llama.cpp's works, in characters instead of tokens:
    every prompt it evaluates is kept, and :attr:`reused` records, for each prompt it answers, how
    much of its beginning a kept prompt already held (what llama.cpp would not evaluate again). Within
    :meth:`prefilling_until` (kb's :class:`~kb.engines.sql.writers.PrefixCachingLLM`), a prompt
    holding the marker is kept up to the marker and not answered, as kb's local model does."""

    _kept: list = PrivateAttr(default_factory=list)
    _reused: list = PrivateAttr(default_factory=list)
    # shared by the copies kb makes (with their own stop texts), as llama.cpp's model is: {"until": marker}
    _prefill: dict = PrivateAttr(default_factory=dict)

    @property
    def reused(self) -> list[int]:
        return self._reused

    @contextmanager
    def prefilling_until(self, marker: str) -> Iterator[None]:
        self._prefill["until"] = marker
        try:
            yield
        finally:
            self._prefill.pop("until", None)

    def _next(self, prompt: str) -> str:
        marker = self._prefill.get("until")
        if marker is not None and marker in prompt:
            self._kept.append(prompt[: prompt.index(marker)])
            return ""
        self._reused.append(max((len(os.path.commonprefix([kept, prompt])) for kept in self._kept), default=0))
        self._kept.append(prompt)
        return super()._next(prompt)
