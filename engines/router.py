"""Every question goes to the documents, the database, or both; the answer says which and why.

Two selectors:

* ``LLMSelector`` asks the LLM to pick one of three named routes. Its reply is validated: only
  ``documents``, ``database``, ``both`` (or 1, 2, 3) are accepted; anything else, including an
  out-of-range number, is not guessed at but handed to the offline selector, and the reason says so
  (LlamaIndex's own selectors silently route a 0-based or malformed answer somewhere).
* ``OfflineSelector`` needs no LLM: the question's embedding is compared with descriptions of each
  side (the business tables and their columns; the titles of the indexed documents) and combined
  with language cues (counting and aggregation words point to the database; "policy", "procedure",
  "according to" point to the documents; both kinds at once mean both).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
from llama_index.core import PromptTemplate

from engines.answer import Answer

ROUTES = ("documents", "database", "both")
ANALYTIC = re.compile(
    r"\b(how many(?! (?:days|weeks|months|years|hours|minutes)\b)|number of|count|counts|total|sum|average|avg|mean|median|most|least|highest|lowest|"
    r"top \d+|top (five|ten|three)|per (month|year|week|day|country|city|product|customer)|share of|percentage|"
    r"ratio|list the|show the|so far|last (month|year|week|quarter)|this (month|year)|in 20\d\d|since 20\d\d|"
    r"trend|revenue|sales|sold|signed up|overdue|still open|are open|were (placed|requested|approved|refused)|"
    r"were any|are there any|did any|have any)\b",
    re.I)
DOCUMENT = re.compile(
    r"\b(policy|policies|procedure|procedures|guide|manual|faq|according to|allowed|allow|rules?|"
    r"what does .{0,40} say|says?|steps|how do i|how to|how should|why|can i|explain|recommend\w*)\b", re.I)
EXPLICIT_DOCUMENT = re.compile(r"\b(policy|policies|procedure|guide|according to|say|says|under the)\b", re.I)

SELECT_PROMPT = PromptTemplate(
    "Decide where the answer to the question can be found.\n"
    "documents: {documents}\n"
    "database: {database}\n"
    "both: the question needs rules or facts from the documents and figures from the database.\n\n"
    "Question: {question}\n"
    "Reply with exactly one word: documents, database or both.\nRoute: "
)


@dataclass
class RouteDecision:
    route: str
    reason: str
    selector: str
    scores: dict[str, float] = field(default_factory=dict)


class OfflineSelector:
    """Embedding similarity to each side's description, plus language cues. No LLM."""

    def __init__(self, embed_model: Any, database_texts: Sequence[str], document_texts: Sequence[str],
                 cue_weight: float = 0.12, chunk_similarity: Optional[Callable[[list[float]], float]] = None) -> None:
        self.embed_model = embed_model
        self.cue_weight = cue_weight
        # The documents are described by their titles and, when given, by their chunks themselves
        # (the mean similarity of the nearest chunks in the vector index).
        self.chunk_similarity = chunk_similarity
        self._texts = {"database": list(database_texts), "documents": list(document_texts)}
        self._vectors: dict[str, np.ndarray] = {}

    def _side(self, name: str) -> np.ndarray:
        if name not in self._vectors:
            texts = self._texts[name] or ["(nothing)"]
            matrix = np.asarray(self.embed_model.get_text_embedding_batch(texts), dtype=np.float32)
            self._vectors[name] = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
        return self._vectors[name]

    def similarity(self, question: str) -> dict[str, float]:
        raw = self.embed_model.get_query_embedding(question)
        q = np.asarray(raw, dtype=np.float32)
        q /= np.linalg.norm(q)
        scores = {}
        for name in ("database", "documents"):
            sims = np.sort(self._side(name) @ q)[::-1]
            scores[name] = float(sims[:3].mean())
        if self.chunk_similarity is not None:
            scores["documents"] = max(scores["documents"], float(self.chunk_similarity(list(raw))))
        return scores

    def select(self, question: str) -> RouteDecision:
        scores = self.similarity(question)
        analytic = bool(ANALYTIC.search(question))
        documentary = bool(DOCUMENT.search(question))
        explicit = bool(EXPLICIT_DOCUMENT.search(question))
        db = scores["database"] + (self.cue_weight if analytic else 0.0)
        docs = scores["documents"] + (self.cue_weight if documentary else 0.0)
        scores.update({"database_total": db, "documents_total": docs})
        cues = [c for c, on in (("counting/aggregation words", analytic), ("document words", documentary)) if on]
        if analytic and explicit:
            return RouteDecision("both", "asks for figures and refers to the documents' rules "
                                 f"({', '.join(cues)})", "offline", scores)
        route = "database" if db > docs else "documents"
        reason = (f"closer to the {'business tables' if route == 'database' else 'indexed documents'} "
                  f"(similarity {db:.2f} vs {docs:.2f}" + (f"; cues: {', '.join(cues)}" if cues else "") + ")")
        return RouteDecision(route, reason, "offline", scores)


def parse_route(reply: str) -> Optional[str]:
    """``documents``/``database``/``both`` or 1/2/3 (1-based) from an LLM reply; None otherwise."""
    text = (reply or "").strip().lower()
    words = re.findall(r"[a-z]+|-?\d+", text)
    if not words:
        return None
    first = words[0]
    if first in ROUTES:
        return first
    if re.fullmatch(r"-?\d+", first):
        number = int(first)
        return ROUTES[number - 1] if 1 <= number <= len(ROUTES) else None
    return None


class LLMSelector:
    """The LLM picks the route; an invalid reply falls back to ``fallback`` (never a silent guess)."""

    def __init__(self, llm: Any, database_summary: str, documents_summary: str,
                 fallback: Optional[OfflineSelector] = None) -> None:
        self.llm = llm
        self.database_summary = database_summary
        self.documents_summary = documents_summary
        self.fallback = fallback

    def select(self, question: str) -> RouteDecision:
        reply = str(self.llm.predict(SELECT_PROMPT, documents=self.documents_summary, database=self.database_summary,
                                     question=question))
        route = parse_route(reply)
        if route is not None:
            return RouteDecision(route, f"chosen by the LLM (reply: {reply.strip()[:40]!r})", "llm")
        if self.fallback is None:
            return RouteDecision("documents", f"the LLM's reply {reply.strip()[:40]!r} is not a route; "
                                 "answered from the documents", "llm")
        decision = self.fallback.select(question)
        decision.reason = f"the LLM's reply {reply.strip()[:40]!r} is not a route; offline selector: {decision.reason}"
        decision.selector = "llm+offline"
        return decision


BOTH_PROMPT = PromptTemplate(
    "Answer the question using the document excerpts and the database result below. Be brief; say which "
    "figures come from the database and which rules come from the documents.\n\n"
    "Documents:\n{context}\n\nDatabase (SQL: {sql}):\n{rows}\n\nQuestion: {question}\nAnswer: "
)


class Router:
    """Routes a question and answers it; ``both`` writes one answer from both results.

    ``both`` retrieves chunks and runs the SQL, then makes a single LLM call over chunks and rows
    (asking each side for its own written answer first would cost two generations thrown away).
    """

    def __init__(self, select: Callable[[str], RouteDecision], documents: Any, database: Optional[Any], llm: Any,
                 unavailable_reason: str = "", documents_options: Optional[dict[str, Any]] = None) -> None:
        self._select = select
        self._documents = documents  # a DocumentsEngine: answer(q, **options), retrieve(q, **options)
        self._database = database    # an SQLEngine: answer(q, synthesize=...)
        self._options = documents_options or {}
        self.llm = llm
        self.unavailable_reason = unavailable_reason

    def decide(self, question: str) -> RouteDecision:
        if self._database is None:
            return RouteDecision("documents", f"no business database ({self.unavailable_reason})", "none")
        return self._select(question)

    def answer(self, question: str, route: Optional[str] = None) -> Answer:
        started = time.perf_counter()
        if route is not None:
            if route not in ROUTES:
                raise ValueError(f"unknown route {route!r}; choose one of {', '.join(ROUTES)}")
            if route != "documents" and self._database is None:
                raise ValueError(f"the {route} route needs a business database ({self.unavailable_reason})")
            decision = RouteDecision(route, "forced by the caller", "forced")
        else:
            decision = self.decide(question)
        if decision.route == "documents":
            answer = self._documents.answer(question, **self._options)
        elif decision.route == "database":
            answer = self._database.answer(question)
        else:
            answer = self._both(question)
        answer.route, answer.route_reason = decision.route, decision.reason
        answer.timings["total_ms"] = round((time.perf_counter() - started) * 1000, 2)
        return answer

    def _both(self, question: str) -> Answer:
        from engines.answer import Source
        from engines.sql import format_rows

        nodes, retrieval_ms = self._documents.retrieve(question, **self._options)
        sources = [Source.from_node(n) for n in nodes]
        data = self._database.answer(question, synthesize=False)
        context = "\n\n".join(f"[{s.label()}] {s.text}" for s in sources[:4]) or "(nothing found)"
        if data.refused:
            rows_text = f"(not run: {data.refusal_reason})"
        else:
            rows_text = data.text if data.text else format_rows(data.rows or [])
        started = time.perf_counter()
        text = str(self.llm.predict(BOTH_PROMPT, context=context, sql=data.sql or "-", rows=rows_text,
                                    question=question)).strip()
        timings = {"retrieval_ms": retrieval_ms + data.timings.get("retrieval_ms", 0.0),
                   "generation_ms": data.timings.get("generation_ms", 0.0) + (time.perf_counter() - started) * 1000}
        return Answer(question=question, text=text, sources=sources, route="both", sql=data.sql, rows=data.rows,
                      refused=data.refused, refusal_reason=data.refusal_reason, timings=timings)
