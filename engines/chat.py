"""Chat sessions: condense the turn into a standalone question, route and answer it, remember both.

``SessionChatEngine`` is a LlamaIndex ``BaseChatEngine`` (``chat``, ``stream_chat``, ``achat``,
``astream_chat``, ``reset``, ``chat_history``) with the condense-plus-context pattern of LlamaIndex's
``CondensePlusContextChatEngine`` (its condense prompt included) in front of kb's routed engine: a
follow-up like "and last month?" must be made standalone before anyone can decide where it goes.
The session's history lives in a ``ChatMemoryBuffer`` (:class:`RecentChatMemory`, which trims in
linear time) over a ``BaseChatStore`` (``MariaDBChatStore``), bounded by a token limit, so a session
resumes in any process. Each answer
is remembered with what later turns may refer back to (its sources, SQL and a few rows).

Responses are ``AgentChatResponse`` / ``StreamingAgentChatResponse`` whose ``metadata`` carries
the route, SQL and rows as in :mod:`kb.engines.answer`, plus ``condensed_question`` and ``session_id``.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from threading import Thread
from typing import Any, Optional

from llama_index.core.base.llms.types import ChatResponse
from llama_index.core.chat_engine.condense_plus_context import DEFAULT_CONDENSE_PROMPT_TEMPLATE
from llama_index.core.chat_engine.types import AgentChatResponse, BaseChatEngine, StreamingAgentChatResponse
from llama_index.core.llms import LLM, ChatMessage, MessageRole
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.prompts import PromptTemplate
from llama_index.core.storage.chat_store.base import BaseChatStore

from kb.engines.answer import Answer, GenerationStopped
from kb.engines.router import RoutedQueryEngine
from kb.engines.timing import Stopwatch

CONDENSE_PROMPT = PromptTemplate(DEFAULT_CONDENSE_PROMPT_TEMPLATE)
FOLLOW_UP = re.compile(
    r"^\s*(and|but|also|so|then|what about|how about)\b|\b(it|its|they|them|their|those|these|"
    r"that one|this one|he|she|same)\b",
    re.I,
)


def history_text(messages: list[ChatMessage]) -> str:
    return "\n".join(f"{getattr(m.role, 'value', m.role)}: {m.content}" for m in messages)


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
            first = first[len(prefix) :].strip()
    transcript_echo = any(first.lower().startswith(p) for p in ("user:", "assistant:"))
    if first and not transcript_echo and len(first) <= max(300, 4 * len(message)):
        return first
    previous = next((m.content for m in reversed(history) if m.role == MessageRole.USER and m.content), "")
    return f"{previous} {message}".strip()


class RecentChatMemory(ChatMemoryBuffer):
    """LlamaIndex's ``ChatMemoryBuffer`` whose ``get`` trims the history in linear time.

    ``ChatMemoryBuffer.get`` counts the tokens of every message it keeps again each time it drops
    one: quadratic in the number of messages (a request carrying 1,000 short messages took longer
    than its deadline, holding the model). Here each message is counted once, from the newest
    back, until the limit is reached; the result is the same kind of suffix: the newest messages
    within ``token_limit`` (less ``initial_token_count``), not starting with an assistant or tool
    message when some were left out, or the last message alone when even it does not fit."""

    def get(self, input: Optional[str] = None, initial_token_count: int = 0, **kwargs: Any) -> list[ChatMessage]:
        history = self.get_all()
        if initial_token_count > self.token_limit:
            raise ValueError("Initial token count exceeds token limit")
        budget, used, start = self.token_limit - initial_token_count, 0, len(history)
        for index in range(len(history) - 1, -1, -1):
            used += len(self.tokenizer_fn(str(history[index].content)))
            if used > budget:
                break
            start = index
        while 0 < start < len(history) - 1 and history[start].role in (MessageRole.TOOL, MessageRole.ASSISTANT):
            start += 1
        return history[start:] if start < len(history) else history[-1:]


@dataclass
class StreamingChatTurn(StreamingAgentChatResponse):
    """LlamaIndex's streaming chat response, plus kb's metadata (route, SQL, rows, condensed question)
    and :meth:`stop`."""

    metadata: dict[str, Any] = field(default_factory=dict)
    stopped: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        """Stop generating after the current piece (the reader went away, a deadline passed): the
        LLM's stream is closed, which releases the model, and the turn is not remembered."""
        self.stopped.set()


class SessionChatEngine(BaseChatEngine):
    """One session's chat engine over kb's routed query engine."""

    def __init__(
        self,
        session_id: str,
        router: RoutedQueryEngine,
        llm: LLM,
        chat_store: BaseChatStore,
        *,
        token_limit: int,
        tokenizer_fn: Optional[Callable[[str], list]] = None,
        condense_with_llm: bool = True,
        on_turn: Optional[Callable[[Answer], object]] = None,
        on_stopped: Optional[Callable[[str], object]] = None,
    ) -> None:
        """``on_turn`` is called with each completed turn's answer; ``on_stopped`` with the text a
        stopped stream had produced (see :meth:`StreamingChatTurn.stop`)."""
        self.session_id = session_id
        self.router = router
        self.llm = llm
        self.condense_with_llm = condense_with_llm
        self._on_turn = on_turn or (lambda answer: None)
        self._on_stopped = on_stopped or (lambda text: None)
        self.memory = RecentChatMemory.from_defaults(
            token_limit=token_limit, chat_store=chat_store, chat_store_key=session_id, tokenizer_fn=tokenizer_fn
        )

    # -- the turn's steps ---------------------------------------------------------------------------------
    def condense(self, message: str) -> str:
        """The message as a standalone question, given the (token-limited) history."""
        history = self.memory.get(input=message)
        if not history:
            return message
        if not self.condense_with_llm:
            return sanitize_condensed("", message, history) if looks_like_follow_up(message) else message
        condensed = self.llm.predict(CONDENSE_PROMPT, chat_history=history_text(history), question=message)
        return sanitize_condensed(condensed, message, history)

    def _complete(self, message: str, standalone: str, response: Any, clock: Stopwatch) -> Answer:
        """Stamp the turn onto its response and answer, remember both sides, report it. ``clock``
        timed the condensing; the turn's total time runs from its start."""
        metadata = response.metadata if response.metadata is not None else {}
        metadata.update(condensed_question=standalone, session_id=self.session_id)
        metadata.setdefault("timings", {}).update(clock.milliseconds())
        answer = Answer.from_response(message, response)
        self.memory.put(ChatMessage(role=MessageRole.USER, content=message))
        self.memory.put(ChatMessage(role=MessageRole.ASSISTANT, content=answer.memory_text()))
        self._on_turn(answer)
        metadata["answer_id"] = answer.answer_id  # given when the turn was logged; what feedback names
        return answer

    def _begin(self, message: str) -> tuple[str, Stopwatch]:
        clock = Stopwatch()
        with clock.step("condense"):
            standalone = self.condense(message)
        return standalone, clock

    # -- BaseChatEngine --------------------------------------------------------------------------------------
    def chat(self, message: str, chat_history: Optional[list[ChatMessage]] = None) -> AgentChatResponse:
        if chat_history is not None:
            self.memory.set(chat_history)
        standalone, clock = self._begin(message)
        response = self.router.answer(standalone)
        self._complete(message, standalone, response, clock)
        return AgentChatResponse(
            response=str(response.response or ""), source_nodes=response.source_nodes, metadata=response.metadata
        )

    def stream_chat(self, message: str, chat_history: Optional[list[ChatMessage]] = None) -> StreamingChatTurn:
        if chat_history is not None:
            self.memory.set(chat_history)
        standalone, clock = self._begin(message)
        streaming = self.router.stream(standalone)
        turn = StreamingChatTurn(source_nodes=streaming.source_nodes, metadata=streaming.metadata or {})

        def deltas() -> Generator[ChatResponse, None, None]:
            text = ""
            try:
                for piece in streaming.response_gen:
                    if turn.stopped.is_set():
                        break
                    text += piece
                    yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=piece)
            except GenerationStopped:  # the LLM was told the answer is no longer wanted
                turn.stopped.set()
            if turn.stopped.is_set():
                streaming.response_gen.close()
                turn.metadata["stopped"] = True
                self._on_stopped(text)
                return
            streaming.response_txt = text
            self._complete(message, standalone, streaming, clock)

        # LlamaIndex's own consumer thread fills the response's queue; the scratch memory it writes
        # the final message into is discarded: kb remembers the turn itself (with sources and SQL).
        turn.chat_stream = deltas()
        context = contextvars.copy_context()  # the thread's LLM calls count for this turn (kb.models.token_counts)
        thread = Thread(
            target=context.run, args=(turn.write_response_to_history, ChatMemoryBuffer.from_defaults()), daemon=True
        )
        turn.write_response_to_history_thread = thread
        thread.start()
        return turn

    async def achat(self, message: str, chat_history: Optional[list[ChatMessage]] = None) -> AgentChatResponse:
        return await asyncio.to_thread(self.chat, message, chat_history)

    async def astream_chat(
        self, message: str, chat_history: Optional[list[ChatMessage]] = None
    ) -> StreamingAgentChatResponse:
        # The turn streams on a thread of its own; its response_gen is consumed as usual.
        return await asyncio.to_thread(self.stream_chat, message, chat_history)

    def reset(self) -> None:
        self.memory.reset()

    @property
    def chat_history(self) -> list[ChatMessage]:
        return self.memory.get_all()
