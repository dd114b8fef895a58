"""Which side answers a question (documents, database or both), and why.

Two selectors:

* ``LLMSelector`` asks the LLM to pick one of three named routes. Its reply is validated: only
  ``documents``, ``database``, ``both`` (or 1, 2, 3) are accepted; anything else, including an
  out-of-range number, is not guessed at but handed to the offline selector, and the reason says so
  (LlamaIndex's own selectors silently route a 0-based or malformed answer somewhere).
* ``OfflineSelector`` needs no LLM: the question's embedding is compared with descriptions of each
  side (the business tables and their columns; the titles of the indexed documents) and combined
  with language cues (counting and aggregation words point to the database; "policy", "procedure",
  "according to" point to the documents; both kinds at once mean both). A question that names a
  row the database holds and one of that row's other columns ("What is the price of the Barista
  Pro?": a value of ``products.name``, and ``products.price``) asks the database, however close its
  words are to that product's guide, unless it also has document words; so does a question with a
  counting word that names such a row and another table ("How many Barista Pro machines were
  ordered?": a value of ``products.name``, and ``orders``).

Both take the asker's metadata filters (an API key's collections): the documents side is described
by the titles of the documents within them and compared with the nearest chunk within them, so a
route decision (and the similarity its reason shows) says nothing about text the asker cannot read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np
from llama_index.core import PromptTemplate
from llama_index.core.vector_stores.types import MetadataFilters

from kb.engines.sql.values import RowsAsked

if TYPE_CHECKING:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.llms import LLM

    from kb.engines.database_side import DatabaseSide
    from kb.stores.vector_store import MariaDBVectorStore

ROUTES = ("documents", "database", "both")
# HNSW search width for the nearest chunk a route reason shows (the store's default is 40).
ROUTE_EF_SEARCH = 200
# Language cues, in general language only: no word taken from a labelled question or from one
# domain's records (asking for a quantity, an extreme, a share, a list, a period of time).
ANALYTIC = re.compile(
    r"\b(how many(?! (?:days|weeks|months|years|hours|minutes)\b)|number of|count|counts|total|sum|average|avg|the mean|mean (?:of|value)|"
    r"median|most|least|highest|lowest|top \d+|top (five|ten|three)|per (?!cent\b)\w+|share of|percentage|"
    r"ratio|list the|show the|so far|last (month|year|week|quarter)|this (month|year)|in 20\d\d|since 20\d\d|"
    r"trend|were any|are there any|did any|have any)\b",
    re.I,
)
DOCUMENT = re.compile(
    r"\b(policy|policies|procedure|procedures|guide|manual|faq|according to|allowed|allow|rules?|"
    r"what does .{0,40} say|says?|steps|how do i|how to|how should|why|can i|explain|recommend\w*)\b",
    re.I,
)
EXPLICIT_DOCUMENT = re.compile(r"\b(policy|policies|procedure|guide|according to|say|says|under the)\b", re.I)

# The fixed part first and the question last (the prompt cache reuses everything before it); the
# examples are generic, not taken from any labelled set. (Tried and measured worse on the 1.5B
# model: the documents' closest sentence as evidence in the prompt, and two yes/no questions.)
SELECT_PROMPT = PromptTemplate(
    "Decide where the answer to a question can be found.\n"
    "documents: {documents}. They hold rules, policies, procedures, instructions and product facts.\n"
    "database: {database}. It holds records: questions that count, sum, average, rank or list records.\n"
    "both: the question needs a figure or records from the database AND a rule from the documents, "
    "e.g. counting the records that break a rule, or asking for a rule and a figure together.\n\n"
    "Examples:\n"
    "How do I reset my password? -> documents\n"
    "What does the travel policy say about taxis? -> documents\n"
    "How many invoices were paid late in May? -> database\n"
    "Which supplier sent the most shipments? -> database\n"
    "How many expense claims exceed the limit set by the travel policy? -> both\n"
    "What is the refund rule, and how many refunds did we make this year? -> both\n\n"
    "Reply with one word: documents, database or both.\n"
    "{question} -> "
)


@dataclass
class RouteDecision:
    route: str
    reason: str
    selector: str
    scores: dict[str, float] = field(default_factory=dict)
    embedding: Optional[list[float]] = None  # the question's, when deciding computed it: retrieval reuses it


DocumentTexts = Callable[[Optional[MetadataFilters]], Sequence[str]]


def _fixed(texts: Sequence[str]) -> DocumentTexts:
    return lambda filters: texts


class OfflineSelector:
    """Embedding similarity to each side's description, plus language cues. No LLM."""

    def __init__(
        self,
        embed_model: Any,
        database_texts: Sequence[str],
        document_texts: Sequence[str] | DocumentTexts,
        cue_weight: float = 0.12,
        chunk_similarity: Optional[Callable[[list[float], Optional[MetadataFilters]], float]] = None,
        rows_asked: Optional[Callable[[str], RowsAsked]] = None,
    ) -> None:
        self.embed_model = embed_model
        self.cue_weight = cue_weight
        # The documents are described by their titles and, when given, by their chunks themselves
        # (the similarity of the nearest chunk in the vector index), both within the asker's filters.
        self.chunk_similarity = chunk_similarity
        # What a question asks of rows it names that the database holds: a field ("products.price of
        # 'Barista Pro'") asks the database even without a counting word, however close its words are
        # to a document about that row (the product's guide); another table's records ("orders of
        # 'Cold Brew Tower'") with a counting word count that row's records in the database.
        self.rows_asked = rows_asked
        self.database_texts = list(database_texts)
        self.document_texts = document_texts if callable(document_texts) else _fixed(list(document_texts))
        self._vectors: dict[tuple[str, ...], np.ndarray] = {}

    def _matrix(self, texts: Sequence[str]) -> np.ndarray:
        key = tuple(texts) or ("(nothing)",)
        if key not in self._vectors:
            matrix = np.asarray(self.embed_model.get_text_embedding_batch(list(key)), dtype=np.float32)
            self._vectors[key] = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
        return self._vectors[key]

    def warm_up(self) -> None:
        """Embed the descriptions of both sides now (unfiltered), not in the first question's time."""
        self._matrix(self.database_texts)
        self._matrix(self.document_texts(None))

    def similarity(
        self, question: str, filters: Optional[MetadataFilters] = None, embedding: Optional[list[float]] = None
    ) -> dict[str, float]:
        raw = embedding if embedding is not None else self.embed_model.get_query_embedding(question)
        q = np.asarray(raw, dtype=np.float32)
        q /= np.linalg.norm(q)
        scores = {}
        for name, texts in (("database", self.database_texts), ("documents", self.document_texts(filters))):
            sims = np.sort(self._matrix(texts) @ q)[::-1]
            scores[name] = float(sims[:3].mean())
        if self.chunk_similarity is not None:
            scores["documents"] = max(scores["documents"], float(self.chunk_similarity(list(raw), filters)))
        return scores

    def select(self, question: str, filters: Optional[MetadataFilters] = None) -> RouteDecision:
        embedding = list(self.embed_model.get_query_embedding(question))
        decision = self._decide(question, filters, embedding)
        if decision.route == "both":
            return decision
        parts = questions_within(question)
        if len(parts) > 1:
            sides = [(part, self._decide(part, filters, None)) for part in parts]
            routes = {d.route for _, d in sides}
            if "both" in routes or routes == {"documents", "database"}:
                asked = "; ".join(f"{part!r} -> {d.route}" for part, d in sides)
                return RouteDecision(
                    "both", f"its questions ask different sides ({asked})", "offline", decision.scores, embedding
                )
        return decision

    def _decide(
        self, question: str, filters: Optional[MetadataFilters], embedding: Optional[list[float]]
    ) -> RouteDecision:
        """One question's route from its similarity to each side and its cues."""
        if embedding is None:
            embedding = list(self.embed_model.get_query_embedding(question))
        scores = self.similarity(question, filters, embedding)
        analytic = bool(ANALYTIC.search(question))
        documentary = bool(DOCUMENT.search(question))
        explicit = bool(EXPLICIT_DOCUMENT.search(question))
        asked = self.rows_asked(question) if self.rows_asked is not None else RowsAsked()
        fields, records = asked.fields, asked.records if analytic else ()
        if fields and not documentary:
            reason = f"asks for what the database holds of a row it names ({'; '.join(fields[:3])})"
            return RouteDecision("database", reason, "offline", scores, embedding)
        if records and not documentary:
            reason = f"counts records the database holds of a row it names ({'; '.join(records[:3])})"
            return RouteDecision("database", reason, "offline", scores, embedding)
        db = scores["database"] + (self.cue_weight if analytic or fields else 0.0)
        docs = scores["documents"] + (self.cue_weight if documentary else 0.0)
        scores.update({"database_total": db, "documents_total": docs})
        named = ("a field of a row it names", bool(fields))
        cues = [c for c, on in (("counting/aggregation words", analytic), named, ("document words", documentary)) if on]
        if (analytic or fields) and explicit:
            reason = f"asks for figures and refers to the documents' rules ({', '.join(cues)})"
            return RouteDecision("both", reason, "offline", scores, embedding)
        route = "database" if db > docs else "documents"
        reason = (
            f"closer to the {'business tables' if route == 'database' else 'indexed documents'} "
            f"(similarity: tables {db:.2f}, documents {docs:.2f}" + (f"; cues: {', '.join(cues)}" if cues else "") + ")"
        )
        return RouteDecision(route, reason, "offline", scores, embedding)


# A question that asks two things joins them with a comma or "and" before the second's question
# word or auxiliary verb ("What is the refund rule, and how many refunds did we make?").
_QUESTION_START = r"(?:how|what|which|when|who|whom|whose|where|why|is|are|was|were|does|do|did|can|could|should)\b"
# A run of whitespace is entered only at its start ((?<!\s)): without that, a question with a long
# run of spaces costs time quadratic in the run's length (each position of it scanned to its end).
_JOINS = re.compile(
    r"(?<!\s)\s*,\s*(?:and\s+)?(?=" + _QUESTION_START + r")|(?<!\s)\s+and\s+(?=" + _QUESTION_START + r")", re.I
)
# A sentence's clauses (database_part): split at every comma, not only before a question, since a
# clause that only points at the documents ("..., which the return policy does not allow") is no
# question of its own; and at "and" before a question word, as _JOINS does.
_CLAUSES = re.compile(r",\s*(?:and\s+)?|(?<!\s)\s+and\s+(?=how|what|which|when|who)")


def questions_within(question: str) -> list[str]:
    """The questions a sentence asks, when it asks more than one, each starting with a question word
    or an auxiliary verb; ``[question]`` otherwise. Each part is routed on its own: a question whose
    parts go to different sides needs both."""
    parts = [p.strip(" ?.!") for p in _JOINS.split(question.strip())]
    parts = [p for p in parts if p]
    if len(parts) < 2 or not all(re.match(_QUESTION_START, p, re.I) for p in parts):
        return [question]
    return [p[0].upper() + p[1:] + "?" for p in parts]


def database_part(question: str) -> str:
    """What the database is asked on the both-route: the question without its clauses that only
    point at the documents ("..., which the return policy does not allow"), or, in a sentence of
    several questions, without those with a document cue and no counting cue ("How do I descale it,
    and how many ...?"). Given those, a small model turns the rule's words into a filter
    (``status <> 'approved'``); the rule itself is the documents' side, and the answer is written
    from both."""
    parts = questions_within(question)
    if len(parts) > 1:  # a sentence of several questions: those asking the documents only are left out
        asked = [p for p in parts if ANALYTIC.search(p) or not DOCUMENT.search(p)]
        if asked and len(asked) < len(parts):
            return " ".join(asked)
    clauses = _CLAUSES.split(question.strip())
    kept = [c for c in clauses if not (EXPLICIT_DOCUMENT.search(c) and not ANALYTIC.search(c))]
    if not kept or len(kept) == len(clauses):
        return question
    text = ", ".join(c.strip() for c in kept).rstrip("?.! ")
    return text[0].upper() + text[1:] + "?"


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


def brief_reply(llm: Any, prompt: PromptTemplate, max_tokens: int = 8, **arguments: Any) -> str:
    """The reply to a prompt answered in a word or two. Where the LLM takes a per-call ``max_tokens``
    (kb's local model, OpenAI and compatible servers) generation stops there: a small local model
    otherwise goes on for hundreds of tokens, seconds each on a CPU."""
    text = prompt.format(llm=llm, **arguments)
    try:
        return str(llm.complete(text, max_tokens=max_tokens).text)
    except TypeError:  # an LLM whose complete() takes no such argument
        return str(llm.complete(text).text)


class LLMSelector:
    """The LLM picks the route; an invalid reply falls back to ``fallback`` (never a silent guess)."""

    def __init__(
        self,
        llm: Any,
        database_summary: str,
        documents_summary: str | Callable[[Optional[MetadataFilters]], str],
        fallback: Optional[OfflineSelector] = None,
    ) -> None:
        self.llm = llm
        self.database_summary = database_summary
        self.documents_summary = (
            documents_summary if callable(documents_summary) else (lambda filters: documents_summary)
        )
        self.fallback = fallback

    def warm_up(self) -> None:
        if self.fallback is not None:
            self.fallback.warm_up()

    def select(self, question: str, filters: Optional[MetadataFilters] = None) -> RouteDecision:
        reply = brief_reply(
            self.llm,
            SELECT_PROMPT,
            documents=self.documents_summary(filters),
            database=self.database_summary,
            question=question,
        )
        route = parse_route(reply)
        if route is not None:
            return RouteDecision(route, f"chosen by the LLM (reply: {reply.strip()[:40]!r})", "llm")
        if self.fallback is None:
            return RouteDecision(
                "documents",
                f"the LLM's reply {reply.strip()[:40]!r} is not a route; answered from the documents",
                "llm",
            )
        decision = self.fallback.select(question, filters)
        decision.reason = f"the LLM's reply {reply.strip()[:40]!r} is not a route; offline selector: {decision.reason}"
        decision.selector = "llm+offline"
        return decision


def describe_database(tables_info: Sequence[tuple[str, str]]) -> list[str]:
    """What the database holds, in words, for the offline selector: each table's schema and typical
    questions over it."""
    database: list[str] = []
    for table, info in tables_info:
        noun = table.replace("_", " ")
        database += [
            info,
            f"How many {noun} are there?",
            f"Count the {noun} per month.",
            f"What is the total and the average in {noun}?",
            f"Which {noun} have the highest values?",
        ]
        columns = re.findall(r"^\s+(\w+) ", info, re.M)
        database += [f"{noun} by {c.replace('_', ' ')}" for c in columns[:8]]
    return database


def describe_documents(titles: Sequence[str]) -> list[str]:
    """What the documents hold, in words: their titles and typical questions over them."""
    documents = list(titles) + [f"What does the {t} say?" for t in titles]
    return documents + ["What is the policy?", "How do I do this?", "Explain the procedure.", "Why does this happen?"]


class DocumentTitles:
    """The titles of the indexed documents within a filter, read once per distinct filter."""

    def __init__(self, store: Any, limit: int = 300) -> None:
        self.store = store
        self.limit = limit
        self._seen: dict[str, list[str]] = {}

    def __call__(self, filters: Optional[MetadataFilters]) -> list[str]:
        key = filters.model_dump_json() if filters is not None else ""
        if key not in self._seen:
            found = self.store.distinct_metadata("title", limit=self.limit, filters=filters)
            self._seen[key] = sorted(str(t) for t in found)
        return self._seen[key]


Selector = Union[OfflineSelector, LLMSelector]


def build_selector(
    mode: str, *, llm: LLM, embed_model: BaseEmbedding, store: MariaDBVectorStore, database: DatabaseSide
) -> Selector:
    """The configured selector: ``offline``, or ``llm`` with the offline one as its validated fallback.

    ``database`` is the SQL engine (or why there is none); ``store`` the documents' vector store.
    """
    from llama_index.core.vector_stores.types import VectorStoreQuery

    from kb.engines.sql.engine import SQLEngine

    tables = list(database.tables) if isinstance(database, SQLEngine) else []
    tables_info = (
        [(t, database.sql_database.get_single_table_info(t)) for t in tables] if isinstance(database, SQLEngine) else []
    )
    titles = DocumentTitles(store)

    def chunk_similarity(embedding: list[float], filters: Optional[MetadataFilters]) -> float:
        query = VectorStoreQuery(query_embedding=embedding, similarity_top_k=1, filters=filters)
        # A route reason reports this figure: search the graph wider than a top-1 search would
        # (HNSW at ef 40 missed the nearest chunk of a small collection once), so it is the true one.
        hits = store.query(query, ef_search=ROUTE_EF_SEARCH).similarities or []
        return hits[0] if hits else 0.0

    offline = OfflineSelector(
        embed_model,
        describe_database(tables_info),
        lambda filters: describe_documents(titles(filters)),
        chunk_similarity=chunk_similarity,
        rows_asked=database.rows_asked if isinstance(database, SQLEngine) else None,
    )
    if mode == "offline":
        return offline

    def documents_summary(filters: Optional[MetadataFilters]) -> str:
        examples = "; ".join(titles(filters)[:12])
        return "the indexed documents" + (f" (e.g. {examples})" if examples else "")

    return LLMSelector(
        llm, f"the business database (tables {', '.join(tables) or 'none'})", documents_summary, fallback=offline
    )
