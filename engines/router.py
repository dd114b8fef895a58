"""Every question goes to the documents, the database, or both; the answer says which and why.

``RoutedQueryEngine`` is a LlamaIndex query engine over a documents engine and a SQL engine (or the
reason there is none). It asks a selector for the route, then answers from one side, or, for
``both``, retrieves chunks and runs the SQL and writes a single answer from the two (asking each side
for its own written answer first would cost two generations thrown away). ``answer()`` returns a
``Response``, ``stream()`` a ``StreamingResponse`` (every route streams its written answer); the
route, its reason and the database side's SQL, rows and attempts are in the response's metadata.

The selectors (:mod:`kb.engines.selectors`) decide; :func:`build_selector` makes the configured one.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from llama_index.core import PromptTemplate
from llama_index.core.base.response.schema import RESPONSE_TYPE, Response, StreamingResponse
from llama_index.core.llms import LLM
from llama_index.core.query_engine import CustomQueryEngine
from llama_index.core.schema import QueryBundle

from kb.engines.answer import timed_stream
from kb.engines.answer_rows import left_out_note, with_left_out_note
from kb.engines.database_side import DatabaseSide, Unavailable
from kb.engines.documents import DocumentsQueryEngine
from kb.engines.selectors import ROUTES, RouteDecision, database_part
from kb.engines.sql.answering import format_rows
from kb.engines.sql.engine import SQLEngine
from kb.engines.timing import Stopwatch

BOTH_PROMPT = PromptTemplate(
    "Answer the question in one or two sentences from the document excerpts and the database result "
    "below: the figure from the result, exactly as it is there, and the rule from the documents that it "
    "concerns.\n\n"
    "Documents:\n{context}\n\nDatabase (SQL: {sql}):\n{rows}\n\nQuestion: {question}\nAnswer: "
)


class RoutedQueryEngine(CustomQueryEngine):
    """Routes each question (documents | database | both) and answers it, as a LlamaIndex query engine."""

    select: Callable[[str], RouteDecision]
    documents: DocumentsQueryEngine
    database: DatabaseSide
    llm: LLM
    streaming: bool = False
    context_chunks: int = 3  # chunks shown with the rows on the both-route, at most (within the documents' budget)

    def decide(self, question: str) -> RouteDecision:
        if isinstance(self.database, Unavailable):
            return RouteDecision("documents", f"no business database ({self.database.reason})", "none")
        return self.select(question)

    def _sql(self) -> SQLEngine:
        """The database side; a decision other than "documents" is only made when there is one."""
        if isinstance(self.database, Unavailable):
            raise ValueError(f"no business database ({self.database.reason})")
        return self.database

    def _decision(self, question: str, route: Optional[str]) -> RouteDecision:
        if route is None:
            return self.decide(question)
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; choose one of {', '.join(ROUTES)}")
        if route != "documents" and isinstance(self.database, Unavailable):
            raise ValueError(f"the {route} route needs a business database ({self.database.reason})")
        return RouteDecision(route, "forced by the caller", "forced")

    def _respond(self, question: str, route: Optional[str], streaming: bool) -> RESPONSE_TYPE:
        clock = Stopwatch()
        decision = self._decision(question, route)
        bundle = QueryBundle(question, embedding=decision.embedding)  # embedded once, by the selector
        if decision.route == "documents":
            with clock.step("retrieval"):
                nodes = self.documents.retrieve(bundle)
            response = self.documents.answer_from(bundle, nodes, streaming=streaming, clock=clock)
        elif decision.route == "database":
            outcome = self._sql().compute(question, clock=clock)
            response = self._sql().respond(outcome, streaming=streaming, clock=clock)
        else:
            response = self._both(bundle, streaming, clock)
        response.metadata = {
            **(response.metadata or {}),
            "route": decision.route,
            "route_reason": decision.reason,
            "selector": decision.selector,
        }
        return response

    def answer(self, question: str, route: Optional[str] = None) -> Response:
        """The routed answer (``route`` forces a side)."""
        response = self._respond(question, route, streaming=False)
        assert isinstance(response, Response)
        return response

    def stream(self, question: str, route: Optional[str] = None) -> StreamingResponse:
        """The routed answer as it is written; sources, SQL and rows are known before the first token."""
        response = self._respond(question, route, streaming=True)
        assert isinstance(response, StreamingResponse)
        return response

    def custom_query(self, query_str: str) -> RESPONSE_TYPE:
        return self._respond(query_str, None, self.streaming)

    def _both(self, bundle: QueryBundle, streaming: bool, clock: Stopwatch) -> RESPONSE_TYPE:
        """The database side runs in a thread of its own (in this context: token counts, deadlines)
        while the documents are retrieved; one answer is written from both."""
        question = bundle.query_str
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kb-both") as pool:
            database = pool.submit(
                contextvars.copy_context().run, self._sql().compute, database_part(question), clock=clock
            )
            with clock.step("retrieval"):
                nodes = self.documents.retrieve(bundle)
            outcome = database.result()
        metadata = outcome.metadata()
        metadata["timings"] = clock.milliseconds()
        reading = self.documents.reading(nodes, bundle.embedding).first(self.context_chunks)
        metadata["context"] = self.documents.context_report(nodes, reading)
        context = (
            "\n\n".join(
                f"[{n.node.metadata.get('file_path') or n.node.node_id}] {n.node.get_content()}" for n in reading.chunks
            )
            or "(nothing found)"
        )
        rows = (
            f"(not available: {outcome.failure})"
            if outcome.failure
            else self._sql().column_notes(outcome.sql or "") + format_rows(outcome.rows or [])
        )
        arguments = dict(context=context, sql=outcome.sql or "-", rows=rows, question=question)
        shown = outcome.rows or []  # the rows an answer that leaves some out is followed by (SQLEngine.respond)
        if streaming:
            pieces = with_left_out_note(
                self.llm.stream(BOTH_PROMPT, **arguments), shown, metadata, truncated=outcome.truncated
            )
            return StreamingResponse(
                response_gen=timed_stream(pieces, metadata, clock), source_nodes=nodes, metadata=metadata
            )
        with clock.step("generation"):
            text = str(self.llm.predict(BOTH_PROMPT, **arguments)).strip()
            text += left_out_note(text, shown, metadata, truncated=outcome.truncated)
        metadata["timings"].update(clock.milliseconds())
        return Response(response=text, source_nodes=nodes, metadata=metadata)
