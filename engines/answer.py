"""kb's engines answer with LlamaIndex ``Response`` objects; :class:`Answer` is the plain view of one.

What kb adds to a LlamaIndex response travels in ``response.metadata`` under these keys, so that
any LlamaIndex component (a tool, a router, an evaluator) passes it along untouched:

* ``route``, ``route_reason``, ``selector``: which side answered (documents, database, both) and why;
* ``sql_query`` (LlamaIndex's own key for it), ``rows``, ``attempts``, ``refused``, ``refusal_reason``:
  the database side's final statement, its rows, every statement tried with its error, and whether
  the read-only guard refused it;
* ``timings``: retrieval, generation and total milliseconds.

The cited chunks are the response's ``source_nodes``. :class:`Answer` (for the CLI, the query log
and the Python API's ``query()``) is built from a response with :meth:`Answer.from_response`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Union

from llama_index.core.base.response.schema import RESPONSE_TYPE, StreamingResponse
from llama_index.core.chat_engine.types import AgentChatResponse
from llama_index.core.schema import NodeWithScore

AnyResponse = Union[RESPONSE_TYPE, AgentChatResponse]


@dataclass
class Source:
    """One cited chunk: the document it comes from, the chunk text and its retrieval score."""

    node_id: str
    text: str
    score: Optional[float]
    path: Optional[str] = None
    title: Optional[str] = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_node(cls, hit: NodeWithScore) -> Source:
        md = dict(hit.node.metadata)
        return cls(
            node_id=hit.node.node_id,
            text=hit.node.get_content(),
            score=hit.score,
            path=md.get("file_path") or hit.node.ref_doc_id,
            title=md.get("title"),
            metadata=md,
        )

    def label(self) -> str:
        return self.path or self.title or self.node_id


@dataclass
class Attempt:
    """One SQL statement the model wrote for a question, and why it did not answer (None: it did)."""

    sql: str
    error: Optional[str] = None


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
    condensed_question: Optional[str] = None
    session_id: Optional[str] = None
    timings: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=lambda: {"in": 0, "out": 0})

    @classmethod
    def from_response(cls, question: str, response: AnyResponse) -> Answer:
        md = dict(response.metadata or {})
        if isinstance(response, StreamingResponse):
            text = response.response_txt or ""
        else:  # Response, AgentChatResponse (and LlamaIndex's other response kinds: their text, if any)
            text = str(getattr(response, "response", None) or "")
        return cls(
            question=question,
            text=text.strip(),
            sources=[Source.from_node(n) for n in response.source_nodes],
            route=md.get("route", "documents"),
            route_reason=md.get("route_reason", ""),
            sql=md.get("sql_query"),
            rows=md.get("rows"),
            refused=bool(md.get("refused")),
            refusal_reason=md.get("refusal_reason"),
            attempts=[a if isinstance(a, Attempt) else Attempt(**a) for a in md.get("attempts", [])],
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
    pieces: Iterable[str], metadata: dict[str, Any], started: float, on_end: Optional[Callable[[str], object]] = None
) -> Generator[str, None, None]:
    """Pass ``pieces`` through; when they end, complete ``metadata['timings']`` (generation and
    total time are only known then) and call ``on_end`` with the whole text."""
    generation_started = time.perf_counter()
    text = []
    for piece in pieces:
        text.append(piece)
        yield piece
    now = time.perf_counter()
    timings = metadata.setdefault("timings", {})
    timings["generation_ms"] = round(timings.get("generation_ms", 0.0) + (now - generation_started) * 1000, 2)
    timings["total_ms"] = round((now - started) * 1000, 2)
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
