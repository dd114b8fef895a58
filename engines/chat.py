"""Chat sessions: condense the turn into a standalone question, answer it, remember both.

The condense-plus-context pattern of LlamaIndex's ``CondensePlusContextChatEngine`` (its condense
prompt included), with the answering step left to a callable: the documents engine here, the
router once the database joins (a follow-up like "and last month?" must be made standalone before
anyone can decide where it goes). The session's history lives in a ``ChatMemoryBuffer`` over a
``BaseChatStore`` (``MariaDBChatStore``), bounded by a token limit, so a session resumes in any
process.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Optional

from llama_index.core.chat_engine.condense_plus_context import DEFAULT_CONDENSE_PROMPT_TEMPLATE
from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.prompts import PromptTemplate
from llama_index.core.storage.chat_store.base import BaseChatStore

from engines.answer import Answer, StreamingAnswer

CONDENSE_PROMPT = PromptTemplate(DEFAULT_CONDENSE_PROMPT_TEMPLATE)


def history_text(messages: list[ChatMessage]) -> str:
    return "\n".join(f"{getattr(m.role, 'value', m.role)}: {m.content}" for m in messages)


FOLLOW_UP = re.compile(r"^\s*(and|but|also|so|then|what about|how about)\b|\b(it|its|they|them|their|those|these|"
                       r"that one|this one|he|she|same)\b", re.I)


def looks_like_follow_up(message: str) -> bool:
    """Without an LLM to condense: does the message lean on the previous turn (pronouns, "and ...")?"""
    return bool(FOLLOW_UP.search(message))


def sanitize_condensed(condensed: str, message: str, history: list[ChatMessage]) -> str:
    """Keep the model's standalone question if it looks like one; small models often ramble or
    echo the transcript, and then the previous question plus this message is the safer query."""
    lines = [line.strip().strip('"').strip() for line in (condensed or "").splitlines() if line.strip()]
    first = lines[0] if lines else ""
    for prefix in ("standalone question:", "question:"):
        if first.lower().startswith(prefix):
            first = first[len(prefix):].strip()
    transcript_echo = any(first.lower().startswith(p) for p in ("user:", "assistant:"))
    if first and not transcript_echo and len(first) <= max(300, 4 * len(message)):
        return first
    previous = next((m.content for m in reversed(history) if m.role == MessageRole.USER and m.content), "")
    return f"{previous} {message}".strip()


class ChatSession:
    """One session's chat engine: ``chat``/``stream_chat`` over an answering function."""

    def __init__(self, session_id: str, llm: Any, chat_store: BaseChatStore, *, token_limit: int,
                 answer: Callable[[str], Answer], stream: Callable[[str, Callable[[Answer], None]], StreamingAnswer],
                 tokenizer_fn: Optional[Callable[[str], list]] = None, condense_with_llm: bool = True) -> None:
        self.session_id = session_id
        self.condense_with_llm = condense_with_llm
        self.llm = llm
        kwargs = {"tokenizer_fn": tokenizer_fn} if tokenizer_fn else {}
        self.memory = ChatMemoryBuffer.from_defaults(token_limit=token_limit, chat_store=chat_store,
                                                     chat_store_key=session_id, **kwargs)
        self._answer = answer
        self._stream = stream

    def condense(self, message: str) -> str:
        """The message as a standalone question, given the (token-limited) history."""
        history = self.memory.get(input=message)
        if not history:
            return message
        if not self.condense_with_llm:
            return sanitize_condensed("", message, history) if looks_like_follow_up(message) else message
        condensed = self.llm.predict(CONDENSE_PROMPT, chat_history=history_text(history), question=message)
        return sanitize_condensed(condensed, message, history)

    def _remember(self, message: str, answer: Answer) -> None:
        self.memory.put(ChatMessage(role=MessageRole.USER, content=message))
        self.memory.put(ChatMessage(role=MessageRole.ASSISTANT, content=answer.memory_text()))

    def _complete(self, answer: Answer, message: str, standalone: str, started: float, condense_ms: float) -> Answer:
        """Stamp the turn onto its answer and remember both sides of it."""
        answer.question = message
        answer.condensed_question = standalone
        answer.session_id = self.session_id
        answer.timings["condense_ms"] = round(condense_ms, 2)
        answer.timings["total_ms"] = round((time.perf_counter() - started) * 1000, 2)
        self._remember(message, answer)
        return answer

    def chat(self, message: str) -> Answer:
        started = time.perf_counter()
        standalone = self.condense(message)
        condense_ms = (time.perf_counter() - started) * 1000
        return self._complete(self._answer(standalone), message, standalone, started, condense_ms)

    def stream_chat(self, message: str, on_done: Callable[[Answer], None] = lambda a: None) -> StreamingAnswer:
        started = time.perf_counter()
        standalone = self.condense(message)
        condense_ms = (time.perf_counter() - started) * 1000

        def finish(answer: Answer) -> None:
            on_done(self._complete(answer, message, standalone, started, condense_ms))

        streaming = self._stream(standalone, finish)
        streaming.answer.session_id = self.session_id
        streaming.answer.condensed_question = standalone
        return streaming
