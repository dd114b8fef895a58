"""A scripted LlamaIndex LLM: the one external service tests may replace, for the logic around it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Union

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms import CompletionResponse, CompletionResponseGen, CustomLLM, LLMMetadata
from llama_index.core.llms.callbacks import llm_completion_callback

Script = Union[list[str], Callable[[str], str]]


class ScriptedLLM(CustomLLM):
    """Answers from a list (in order) or a function of the prompt; records every prompt."""

    context_window: int = Field(default=4096)
    token_delay: float = Field(default=0.0, description="seconds between streamed words")
    _script: Any = PrivateAttr()
    _prompts: list = PrivateAttr(default_factory=list)

    def __init__(self, script: Script, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._script = list(script) if isinstance(script, list) else script

    @property
    def prompts(self) -> list[str]:
        return self._prompts

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=self.context_window, num_output=256, model_name="scripted")

    def _next(self, prompt: str) -> str:
        self._prompts.append(prompt)
        if callable(self._script):
            return self._script(prompt)
        if not self._script:
            raise AssertionError(f"the scripted LLM ran out of answers; prompt was:\n{prompt}")
        return self._script.pop(0)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self._next(prompt))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        text = self._next(prompt)

        def gen():
            so_far = ""
            for i, word in enumerate(text.split(" ")):
                if self.token_delay:
                    time.sleep(self.token_delay)
                delta = word if i == 0 else " " + word
                so_far += delta
                yield CompletionResponse(text=so_far, delta=delta)

        return gen()
