"""Answers from the indexed documents: retrieve chunks, then have the LLM answer from them only.

A LlamaIndex ``CustomQueryEngine`` built from LlamaIndex parts (any retriever, the response
synthesizer, node postprocessors), so that it works with any LlamaIndex LLM and anywhere a query
engine fits (a tool, a router, an evaluator). It returns a ``Response`` (a ``StreamingResponse``
with ``streaming=True``) whose ``source_nodes`` are the cited chunks and whose metadata carries the
route and the timings (see :mod:`kb.engines.answer`). The prompt is short: small local models read
it in seconds, not tens of seconds; with a :class:`~kb.engines.context.ContextBudget` it holds only
the chunks the budget chooses, while every retrieved chunk stays a source (``metadata["context"]``
says which were read, and how many tokens they were).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Optional

from llama_index.core import PromptTemplate, get_response_synthesizer
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.response.schema import RESPONSE_TYPE, Response, StreamingResponse
from llama_index.core.bridge.pydantic import Field
from llama_index.core.callbacks.schema import CBEventType, EventPayload
from llama_index.core.llms import LLM
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.query_engine import CustomQueryEngine
from llama_index.core.response_synthesizers import BaseSynthesizer, ResponseMode
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from kb.engines.answer import timed_stream
from kb.engines.callbacks import EventHandler, add_handler_once
from kb.engines.context import ContextBudget, Reading, token_counter
from kb.engines.timing import Stopwatch

QA_PROMPT = PromptTemplate(
    "Answer the question using only the context below. Be brief and factual. "
    "If the context does not contain the answer, say that you do not know.\n\n"
    "Context:\n{context_str}\n\nQuestion: {query_str}\nAnswer: "
)
NOTHING_FOUND = "I found nothing in the indexed documents about that."
_LLM_ERRORS: ContextVar[Optional[list[BaseException]]] = ContextVar("kb_llm_errors", default=None)


class _LLMErrorRecorder(EventHandler):
    """Records the exceptions of the LLM calls made in the current context while
    :func:`llm_errors_raised` watches (LlamaIndex ends a failed call's event with its exception)."""

    def on_event_end(
        self, event_type: CBEventType, payload: Optional[dict[str, Any]] = None, event_id: str = "", **kwargs: Any
    ) -> None:
        seen = _LLM_ERRORS.get()
        if seen is not None and payload and EventPayload.EXCEPTION in payload:  # an LLM event that failed
            error = payload.get(EventPayload.EXCEPTION)
            if isinstance(error, BaseException):
                seen.append(error)


_RECORDER = _LLMErrorRecorder()


@contextmanager
def llm_errors_raised(llm: LLM) -> Iterator[None]:
    """Re-raise the first error of an LLM call made inside the block. LlamaIndex's refine
    synthesizer (behind every response mode) catches a ValueError or TypeError from the LLM and
    answers "Empty Response": a context window exceeded, or a client library's own error, would
    reach the user as an empty answer instead of the model's error."""
    add_handler_once(llm, _RECORDER)
    seen: list[BaseException] = []
    token = _LLM_ERRORS.set(seen)
    try:
        yield
    finally:
        _LLM_ERRORS.reset(token)
    if seen:
        raise seen[0]


class DocumentsQueryEngine(CustomQueryEngine):
    """Question -> cited answer over a retriever (retrieval and generation timed apart)."""

    retriever: BaseRetriever
    llm: LLM
    response_mode: str = Field(default="compact", description="how the synthesizer packs the chunks")
    qa_prompt: PromptTemplate = Field(default=QA_PROMPT)
    node_postprocessors: list[BaseNodePostprocessor] = Field(default_factory=list)
    context: Optional[ContextBudget] = Field(default=None, description="which chunks the prompt gets (None: all)")
    streaming: bool = False

    # LlamaIndex's BaseQueryEngine.retrieve: the cited chunks of a question, postprocessed.
    def retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._postprocess(query_bundle, self.retriever.retrieve(query_bundle))

    async def aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._postprocess(query_bundle, await self.retriever.aretrieve(query_bundle))

    def _postprocess(self, query_bundle: QueryBundle, nodes: list[NodeWithScore]) -> list[NodeWithScore]:
        for postprocessor in self.node_postprocessors:
            nodes = postprocessor.postprocess_nodes(nodes, query_bundle=query_bundle)
        return nodes

    def reading(self, nodes: Sequence[NodeWithScore], embedding: Optional[Sequence[float]] = None) -> Reading:
        """What the answer prompt gets of the retrieved chunks (all of them without a context budget);
        ``embedding``, the question's, lets the budget widen them (:class:`ContextBudget`)."""
        if self.context is None:
            return Reading(list(nodes))
        return self.context.read(nodes, token_counter(self.llm), embedding)

    def context_report(self, nodes: Sequence[NodeWithScore], read: Reading) -> dict[str, Any]:
        """What ``metadata["context"]`` says: the chunks read, whole or in excerpts (``excerpts``: the
        chunk given -> the chunks its excerpts come from), out of those retrieved, and their tokens."""
        count = token_counter(self.llm)
        return {
            "retrieved": len(nodes),
            "in_prompt": read.node_ids,
            "excerpts": read.excerpts,
            "tokens": sum(count(n.node.get_content(metadata_mode=MetadataMode.LLM)) for n in read.chunks),
        }

    def _synthesizer(self, streaming: bool) -> BaseSynthesizer:
        return get_response_synthesizer(
            llm=self.llm,
            response_mode=ResponseMode(self.response_mode),
            text_qa_template=self.qa_prompt,
            streaming=streaming,
            callback_manager=self.callback_manager,
        )

    def _written(self, question: str, read: Sequence[NodeWithScore]) -> str:
        """The model's whole answer from the chunks ``read``."""
        response = self._synthesizer(False).synthesize(QueryBundle(question), nodes=list(read))
        assert isinstance(response, Response)  # a synthesizer built without streaming
        return str(response.response or "").strip()

    async def _awritten(self, question: str, read: Sequence[NodeWithScore]) -> str:
        response = await self._synthesizer(False).asynthesize(QueryBundle(question), nodes=list(read))
        assert isinstance(response, Response)
        return str(response.response or "").strip()

    def _streamed(self, question: str, read: Sequence[NodeWithScore]) -> Iterator[str]:
        """The model's answer from the chunks ``read``, token by token."""
        response = self._synthesizer(True).synthesize(QueryBundle(question), nodes=list(read))
        assert isinstance(response, StreamingResponse) and response.response_gen is not None
        return iter(response.response_gen)

    def answer_from(
        self,
        query: QueryBundle,
        nodes: Sequence[NodeWithScore],
        *,
        streaming: Optional[bool] = None,
        clock: Optional[Stopwatch] = None,
    ) -> RESPONSE_TYPE:
        """The response to ``query`` written from ``nodes`` (already retrieved; ``clock`` timed the
        retrieval; the query's embedding, when it has one, is the question's: see :meth:`reading`)."""
        clock = Stopwatch() if clock is None else clock
        streaming = self.streaming if streaming is None else streaming
        metadata: dict[str, Any] = {"route": "documents", "timings": clock.milliseconds()}
        nodes = list(nodes)
        question = query.query_str
        reading = self.reading(nodes, query.embedding)
        read = reading.chunks
        metadata["context"] = self.context_report(nodes, reading)
        if streaming:
            pieces = self._streamed(question, read) if read else iter([NOTHING_FOUND])
            return StreamingResponse(
                response_gen=timed_stream(pieces, metadata, clock), source_nodes=nodes, metadata=metadata
            )
        text = NOTHING_FOUND
        with clock.step("generation"):
            if read:
                with llm_errors_raised(self.llm):
                    text = self._written(question, read)
        metadata["timings"].update(clock.milliseconds())
        return Response(response=text, source_nodes=nodes, metadata=metadata)

    def custom_query(self, query_str: str) -> RESPONSE_TYPE:
        clock = Stopwatch()
        query = QueryBundle(query_str)
        with clock.step("retrieval"):
            nodes = self.retrieve(query)  # a StoreRetriever leaves the question's embedding in ``query``
        return self.answer_from(query, nodes, clock=clock)

    async def acustom_query(self, query_str: str) -> RESPONSE_TYPE:
        clock = Stopwatch()
        query = QueryBundle(query_str)
        with clock.step("retrieval"):
            nodes = await self.aretrieve(query)
        if self.streaming or not nodes:
            return self.answer_from(query, nodes, clock=clock)
        reading = self.reading(nodes, query.embedding)
        with clock.step("generation"), llm_errors_raised(self.llm):
            text = await self._awritten(query_str, reading.chunks)
        return Response(
            response=text,
            source_nodes=nodes,
            metadata={
                "route": "documents",
                "context": self.context_report(nodes, reading),
                "timings": clock.milliseconds(),
            },
        )
