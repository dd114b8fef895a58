"""Answers from the indexed documents: retrieve chunks, then have the LLM answer from them only.

Built from LlamaIndex parts (a retriever over ``MariaDBVectorStore`` and a response synthesizer) so
that any LlamaIndex LLM works; the prompt is short because the offline default model is small
(135M parameters, a 2,048-token window), and the synthesizer's ``compact`` mode packs the chunks
into whatever window the LLM declares.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator, Optional, Sequence

from llama_index.core import PromptTemplate, get_response_synthesizer
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle

from engines.answer import Answer, Source, StreamingAnswer

QA_PROMPT = PromptTemplate(
    "Answer the question using only the context below. Be brief and factual. "
    "If the context does not contain the answer, say that you do not know.\n\n"
    "Context:\n{context_str}\n\nQuestion: {query_str}\nAnswer: "
)
NOTHING_FOUND = "I found nothing in the indexed documents about that."


def token_counter_for(llm: Any) -> TokenCountingHandler:
    """Count tokens with the LLM's own tokenizer when it has one (llama.cpp), else tiktoken.

    Attached to the LLM by its owner (``KnowledgeBase``), so that every call is counted whatever
    engine makes it: condensing, routing, SQL writing and answering."""
    model = getattr(llm, "_model", None)
    if model is not None and hasattr(model, "tokenize"):
        return TokenCountingHandler(tokenizer=lambda text: model.tokenize(text.encode("utf-8"), add_bos=False))
    return TokenCountingHandler()


class DocumentsEngine:
    """Question -> cited answer over the vector index (retrieval and generation timed apart)."""

    def __init__(self, llm: Any, retriever_factory: Callable[..., BaseRetriever], *,
                 response_mode: str = "compact", qa_prompt: PromptTemplate = QA_PROMPT,
                 node_postprocessors: Sequence[BaseNodePostprocessor] = (),
                 callback_manager: Optional[CallbackManager] = None) -> None:
        self.llm = llm
        self.retriever_factory = retriever_factory
        self.response_mode = response_mode
        self.qa_prompt = qa_prompt
        self.node_postprocessors = list(node_postprocessors)
        self.callback_manager = callback_manager or llm.callback_manager

    def retrieve(self, question: str, **options: Any) -> tuple[list[NodeWithScore], float]:
        started = time.perf_counter()
        nodes = self.retriever_factory(**options).retrieve(QueryBundle(question))
        for postprocessor in self.node_postprocessors:
            nodes = postprocessor.postprocess_nodes(nodes, query_bundle=QueryBundle(question))
        return nodes, (time.perf_counter() - started) * 1000

    def _synthesizer(self, streaming: bool):
        return get_response_synthesizer(llm=self.llm, response_mode=self.response_mode,
                                        text_qa_template=self.qa_prompt, streaming=streaming,
                                        callback_manager=self.callback_manager)

    def answer(self, question: str, *, nodes: Optional[list[NodeWithScore]] = None, **options: Any) -> Answer:
        started = time.perf_counter()
        retrieval_ms = 0.0
        if nodes is None:
            nodes, retrieval_ms = self.retrieve(question, **options)
        answer = Answer(question=question, text="", sources=[Source.from_node(n) for n in nodes])
        generation_started = time.perf_counter()
        if nodes:
            response = self._synthesizer(streaming=False).synthesize(QueryBundle(question), nodes=nodes)
            answer.text = str(response.response or "").strip()
        else:
            answer.text = NOTHING_FOUND
        self._finish(answer, retrieval_ms, generation_started, started)
        return answer

    def stream(self, question: str, *, on_done: Callable[[Answer], None] = lambda a: None, **options: Any) -> StreamingAnswer:
        started = time.perf_counter()
        nodes, retrieval_ms = self.retrieve(question, **options)
        answer = Answer(question=question, text="", sources=[Source.from_node(n) for n in nodes])
        generation_started = time.perf_counter()

        def chunks() -> Iterator[str]:
            if not nodes:
                yield NOTHING_FOUND
                return
            response = self._synthesizer(streaming=True).synthesize(QueryBundle(question), nodes=nodes)
            yield from response.response_gen

        def finish(done: Answer) -> None:
            self._finish(done, retrieval_ms, generation_started, started)
            on_done(done)

        return StreamingAnswer(answer, chunks(), finish)

    def _finish(self, answer: Answer, retrieval_ms: float, generation_started: float, started: float) -> None:
        now = time.perf_counter()
        answer.timings = {"retrieval_ms": round(retrieval_ms, 2),
                          "generation_ms": round((now - generation_started) * 1000, 2),
                          "total_ms": round((now - started) * 1000, 2)}
