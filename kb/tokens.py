"""Token counts per question, correct when one KnowledgeBase answers many questions at once.

LlamaIndex's ``TokenCountingHandler`` keeps one running total per handler, so questions answered at
the same time (threads of a server, ``asyncio.gather``) add into each other's counts. kb's counter is
a callback handler on the LLM that adds each call's tokens to the :class:`Counts` of the *current
context*: every question or chat turn starts a fresh ``Counts`` in its context
(:meth:`TokenCounter.start`), and a thread or task copies the context it was started from, so its
calls land in the question that started it. Token figures come from LlamaIndex's own payload
counting, with the LLM's tokenizer when it has one (llama.cpp's) and tiktoken otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Optional

from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.callbacks.schema import CBEventType
from llama_index.core.callbacks.token_counting import get_llm_token_counts
from llama_index.core.utilities.token_counting import TokenCounter as PayloadTokenCounter

_CURRENT: ContextVar[Optional[Counts]] = ContextVar("kb_token_counts", default=None)


@dataclass
class Counts:
    prompt: int = 0
    completion: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"in": self.prompt, "out": self.completion}


class TokenCounter(BaseCallbackHandler):
    """Adds every LLM call's tokens to the current context's :class:`Counts`."""

    def __init__(self, tokenizer: Optional[Callable[[str], list]] = None) -> None:
        super().__init__(event_starts_to_ignore=[], event_ends_to_ignore=[])
        self._payload_counter = PayloadTokenCounter(tokenizer=tokenizer)
        self.tokenizer = self._payload_counter.tokenizer

    @staticmethod
    def current() -> Optional[Counts]:
        """The count of the question or turn being answered in this context (None outside one)."""
        return _CURRENT.get()

    @staticmethod
    def start() -> Counts:
        """A fresh count for the question or turn about to be answered in this context."""
        counts = Counts()
        _CURRENT.set(counts)
        return counts

    def on_event_start(
        self,
        event_type: CBEventType,
        payload: Optional[dict[str, Any]] = None,
        event_id: str = "",
        parent_id: str = "",
        **kwargs: Any,
    ) -> str:
        return event_id

    def on_event_end(
        self, event_type: CBEventType, payload: Optional[dict[str, Any]] = None, event_id: str = "", **kwargs: Any
    ) -> None:
        counts = _CURRENT.get()
        if counts is None or event_type != CBEventType.LLM or not payload:
            return
        try:
            event = get_llm_token_counts(self._payload_counter, payload, event_id)
        except Exception:  # a payload shape LlamaIndex cannot count: the figures are lost, not the answer
            return
        counts.prompt += event.prompt_token_count
        counts.completion += event.completion_token_count

    def start_trace(self, trace_id: Optional[str] = None) -> None:
        return None

    def end_trace(self, trace_id: Optional[str] = None, trace_map: Optional[dict[str, list[str]]] = None) -> None:
        return None


def attach(llm: Any, counter: TokenCounter) -> None:
    """Add kb's counter to the LLM's own callback manager, keeping the handlers it already has."""
    manager = llm.callback_manager
    if not any(handler is counter for handler in manager.handlers):
        manager.add_handler(counter)
