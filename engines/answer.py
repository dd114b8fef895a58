"""kb's engines answer with LlamaIndex ``Response`` objects; :class:`Answer` is the plain view of one.

What kb adds to a LlamaIndex response travels in ``response.metadata`` under these keys, so that
any LlamaIndex component (a tool, a router, an evaluator) passes it along untouched:

* ``route``, ``route_reason``, ``selector``: which side answered (documents, database, both) and why;
* ``sql_query`` (LlamaIndex's own key for it), ``rows``, ``attempts``, ``refused``, ``refusal_reason``:
  the database side's final statement, its rows, every statement tried with its error, and whether
  the read-only guard refused it; ``candidates``: how the candidate statements voted, when there
  were several; ``sql_examples``: the approved question/SQL pairs the SQL prompts showed (id,
  question, sql, similarity ``score``...); ``rows_left_out``: how many rows of a result of several the written answer did not
  name, which kb then lists after it, and ``rows_not_shown``: how many rows of a result longer than
  the answer prompt shows the model did not see, when kb says so after its answer
  (:mod:`kb.engines.answer_rows`);
* ``timings``: retrieval, generation and total milliseconds.

The cited chunks are the response's ``source_nodes``. :class:`Answer` (for the CLI, the query log
and the Python API's ``query()``) is built from a response with :meth:`Answer.from_response`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Optional, Union

from llama_index.core.base.response.schema import RESPONSE_TYPE, StreamingResponse
from llama_index.core.chat_engine.types import AgentChatResponse
from llama_index.core.schema import NodeWithScore

from kb.engines.timing import Stopwatch

AnyResponse = Union[RESPONSE_TYPE, AgentChatResponse]

# Set by whoever runs an answer for someone who may stop wanting it (kb serve: the request's deadline
# and its client's disconnect). An LLM that honours it (kb's local model) asks it after every token
# and, when it says True, ends the generation by raising GenerationStopped: a cut answer is never
# passed on as a complete one (a chat turn stopped so is not remembered).
GENERATION_STOP: ContextVar[Optional[Callable[[], bool]]] = ContextVar("kb_generation_stop", default=None)


class GenerationStopped(Exception):
    """The LLM stopped generating because :data:`GENERATION_STOP` said the answer is no longer wanted."""


def generation_stopped() -> bool:
    """Whether the current context's answer is no longer wanted."""
    stop = GENERATION_STOP.get()
    return stop is not None and bool(stop())


@dataclass
class Source:
    """One cited chunk: the document it comes from, the chunk text and its retrieval score."""

    node_id: str
    text: str
    score: Optional[float]
    path: Optional[str] = None
    title: Optional[str] = None
    metadata: dict[str, Any] = field(default_factory=dict)
    in_prompt: Optional[bool] = None  # whether the LLM read it (None: not known)

    @classmethod
    def from_node(cls, hit: NodeWithScore, in_prompt: Optional[bool] = None) -> Source:
        md = dict(hit.node.metadata)
        return cls(
            node_id=hit.node.node_id,
            text=hit.node.get_content(),
            score=hit.score,
            path=md.get("file_path") or hit.node.ref_doc_id,
            title=md.get("title"),
            metadata=md,
            in_prompt=in_prompt,
        )

    def label(self) -> str:
        return self.path or self.title or self.node_id


@dataclass
class Attempt:
    """One SQL statement tried for a question, and why it did not answer (None: it did).
    ``written_by`` is "model", or "kb" for a statement kb wrote or changed itself (a repair of one
    the server rejected, or kb's rewrite of one with a defect)."""

    sql: str
    error: Optional[str] = None
    written_by: Literal["model", "kb"] = "model"


@dataclass
class Answer:
    """An answer with its sources (documents), SQL and rows (database), route and costs."""

    question: str
    text: str
    sources: list[Source] = field(default_factory=list)
    route: str = "documents"
    route_reason: str = ""
    sql: Optional[str] = None
    rows: Optional[list[dict[str, Any]]] = None
    refused: bool = False
    refusal_reason: Optional[str] = None
    attempts: list[Attempt] = field(default_factory=list)
    candidates: Optional[dict[str, Any]] = None  # written, ran, agreeing, greedy_chosen (several candidates)
    sql_examples: list[dict[str, Any]] = field(default_factory=list)  # approved pairs the SQL prompts showed
    context: Optional[dict[str, Any]] = None  # documents read by the LLM: retrieved, in_prompt (ids), excerpts, tokens
    condensed_question: Optional[str] = None
    session_id: Optional[str] = None
    answer_id: Optional[str] = None  # given when the answer is logged: what feedback names it by
    cost_usd: Optional[float] = None  # given when the answer is logged (kb.operations.cost); None: a price is unknown
    timings: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=lambda: {"in": 0, "out": 0})

    @classmethod
    def from_response(cls, question: str, response: AnyResponse) -> Answer:
        md = dict(response.metadata or {})
        in_prompt = set((md.get("context") or {}).get("in_prompt", []))

        def read(hit: NodeWithScore) -> Optional[bool]:
            return hit.node.node_id in in_prompt if md.get("context") else None

        if isinstance(response, StreamingResponse):
            text = response.response_txt or ""
        else:  # Response, AgentChatResponse (and LlamaIndex's other response kinds: their text, if any)
            text = str(getattr(response, "response", None) or "")
        return cls(
            question=question,
            text=text.strip(),
            sources=[Source.from_node(n, read(n)) for n in response.source_nodes],
            route=md.get("route", "documents"),
            route_reason=md.get("route_reason", ""),
            sql=md.get("sql_query"),
            rows=md.get("rows"),
            refused=bool(md.get("refused")),
            answer_id=md.get("answer_id"),
            refusal_reason=md.get("refusal_reason"),
            attempts=[a if isinstance(a, Attempt) else Attempt(**a) for a in md.get("attempts", [])],
            candidates=md.get("candidates"),
            sql_examples=list(md.get("sql_examples") or []),
            context=md.get("context"),
            condensed_question=md.get("condensed_question"),
            session_id=md.get("session_id"),
            timings=dict(md.get("timings", {})),
        )

    @property
    def best_score(self) -> Optional[float]:
        scores = [s.score for s in self.sources if s.score is not None]
        return max(scores) if scores else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def memory_text(self, max_rows: int = 5) -> str:
        """The answer as a chat history entry: the text plus what later turns may refer back to."""
        parts = [self.text.strip()]
        if self.sources:
            parts.append("[sources: " + ", ".join(dict.fromkeys(s.label() for s in self.sources)) + "]")
        if self.sql:
            parts.append(f"[SQL: {self.sql}]")
        if self.rows:
            shown = "; ".join(", ".join(f"{k}={v}" for k, v in row.items()) for row in self.rows[:max_rows])
            more = f" (+{len(self.rows) - max_rows} more)" if len(self.rows) > max_rows else ""
            parts.append(f"[rows: {shown}{more}]")
        return "\n".join(parts)


def timed_stream(
    pieces: Iterable[str],
    metadata: dict[str, Any],
    clock: Stopwatch,
    on_end: Optional[Callable[[str], object]] = None,
) -> Generator[str, None, None]:
    """Pass ``pieces`` through as the step "generation" of ``clock``; when they end, write the clock
    into ``metadata['timings']`` (generation and total time are only known then) and call ``on_end``
    with the whole text. Closed early, it closes ``pieces`` at once: an LLM's stream stops generating
    (and releases the model) when it is closed."""
    text = []
    with clock.step("generation"):
        try:
            for piece in pieces:
                text.append(piece)
                yield piece
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
    metadata.setdefault("timings", {}).update(clock.milliseconds())
    if on_end:
        on_end("".join(text))


class StreamingAnswer:
    """A streaming response as the CLI and ``KnowledgeBase.stream_query`` use it: iterate for the
    text; ``answer`` is complete afterwards. ``sources`` (and the route) are known before the first token.
    """

    def __init__(
        self,
        question: str,
        response: Any,
        pieces: Optional[Iterator[str]] = None,
        finish: Optional[Callable[[Answer], object]] = None,
    ) -> None:
        self.response = response
        self.answer = Answer.from_response(question, response)
        self._question = question
        self._pieces = pieces if pieces is not None else response.response_gen
        self._finish = finish
        self._done = False

    @property
    def sources(self) -> list[Source]:
        return self.answer.sources

    def stop(self) -> None:
        """Stop generating: the text so far is all there will be (a chat turn stopped so is not remembered)."""
        stop = getattr(self.response, "stop", None)
        if stop is not None:
            stop()
        close = getattr(self._pieces, "close", None)
        if close is not None and not hasattr(self.response, "stop"):
            close()

    def __iter__(self) -> Iterator[str]:
        if self._done:
            return
        pieces = []
        for piece in self._pieces:
            pieces.append(piece)
            yield piece
        self._done = True
        self.answer = Answer.from_response(self._question, self.response)
        self.answer.text = "".join(pieces).strip()
        if self._finish:
            self._finish(self.answer)
