"""What every engine returns: the answer, where it came from, and what it cost."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Optional

from llama_index.core.schema import NodeWithScore


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
    def from_node(cls, hit: NodeWithScore) -> "Source":
        md = dict(hit.node.metadata)
        return cls(node_id=hit.node.node_id, text=hit.node.get_content(), score=hit.score,
                   path=md.get("file_path") or hit.node.ref_doc_id, title=md.get("title"), metadata=md)

    def label(self) -> str:
        return self.path or self.title or self.node_id


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
    condensed_question: Optional[str] = None
    session_id: Optional[str] = None
    timings: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=lambda: {"in": 0, "out": 0})

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


class StreamingAnswer:
    """Iterate for the answer's text as it is generated; ``answer`` is complete afterwards.

    ``sources`` (and the route) are known before the first token.
    """

    def __init__(self, answer: Answer, chunks: Iterator[str], finish: Callable[[Answer], None]) -> None:
        self.answer = answer
        self._chunks = chunks
        self._finish = finish
        self._done = False

    @property
    def sources(self) -> list[Source]:
        return self.answer.sources

    def __iter__(self) -> Iterator[str]:
        if self._done:
            return
        pieces = []
        for chunk in self._chunks:
            pieces.append(chunk)
            yield chunk
        self.answer.text = "".join(pieces).strip()
        self._done = True
        self._finish(self.answer)
