"""``KnowledgeBase``: the public Python API. Reads the configuration, builds the stores, the models
and the engines, and exposes what users do: index, retrieve, ask, chat.

It wires and delegates: the engines are LlamaIndex engines (:mod:`kb.engines`), handed out by
:meth:`KnowledgeBase.as_query_engine`, :meth:`~KnowledgeBase.as_chat_engine` and
:meth:`~KnowledgeBase.as_retriever` for use anywhere LlamaIndex takes one; ``query``, ``chat`` and
friends answer through them and keep the query log. Everything heavy (the database connection, the
models) is created on first use, so that building a ``KnowledgeBase`` is cheap and a mistake in one
part does not break commands that do not need it. Every question method has an async twin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from os import PathLike
from typing import Any, Optional

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import LLM
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import (
    MetadataFilters,
)

from kb import models
from kb.collections import ALL_COLLECTIONS, DEFAULT_COLLECTION, CollectionVersions
from kb.config import Settings, load_settings
from kb.cost import Prices
from kb.database import connect
from kb.engines.answer import Answer, StreamingAnswer
from kb.engines.chat import SessionChatEngine
from kb.engines.context import ContextBudget
from kb.engines.documents import DocumentsQueryEngine
from kb.engines.retriever import StoreRetriever
from kb.engines.router import DatabaseSide, RoutedQueryEngine, Unavailable
from kb.engines.selectors import LLMSelector, RouteDecision, build_selector
from kb.engines.sql import SQLEngine
from kb.errors import KBError
from kb.evaluation import EvalQuestion, EvalReport, Setting, evaluate, load_questions
from kb.indexing import DirectoryIndexer, IndexReport
from kb.query_log import QueryLog
from kb.retrieval import build_retriever, filters_from, rerankers
from kb.sql_side import build_database_side
from kb.stores import MariaDBConnection, MariaDBKVStore, MariaDBVectorStore
from kb.stores.chat_store import MariaDBChatStore
from kb.tokens import TokenCounter, attach


class KnowledgeBase:
    """One knowledge base: its configuration, its MariaDB, its models and engines."""

    def __init__(
        self, settings: Settings, *, llm: Optional[LLM] = None, embed_model: Optional[BaseEmbedding] = None
    ) -> None:
        self.settings = settings
        self._llm = llm
        self._embed_model = embed_model
        self._llm_given = llm is not None
        self._embed_given = embed_model is not None
        # Set before first use to put something around the embedding model (the service caches
        # question embeddings this way); the index keeps the model's own name.
        self.wrap_embed_model: Optional[Callable[[BaseEmbedding], BaseEmbedding]] = None

    @classmethod
    def from_config(
        cls,
        source: str | PathLike[str] | Mapping[str, Any] | None = None,
        *,
        llm: Optional[LLM] = None,
        embed_model: Optional[BaseEmbedding] = None,
    ) -> KnowledgeBase:
        """From a config file path, a dict, or the default places (``KB_CONFIG``, ./config.yaml).

        ``llm`` and ``embed_model`` (LlamaIndex objects) replace the configured profile's models:
        for tests, and for applications that already hold their models.
        """
        return cls(load_settings(source), llm=llm, embed_model=embed_model)

    # -- parts, created on first use ---------------------------------------------------------------
    @cached_property
    def connection(self) -> MariaDBConnection:
        return connect(self.settings)

    @property
    def embed_model(self) -> BaseEmbedding:
        if self._embed_model is None:
            model = models.build_embedding(self.settings)
            self._embed_model = self.wrap_embed_model(model) if self.wrap_embed_model else model
        return self._embed_model

    @cached_property
    def token_counter(self) -> TokenCounter:
        """Counts every LLM call into the question or turn that made it (see :mod:`kb.tokens`)."""
        tokenize = getattr(self._llm if self._llm is not None else None, "tokenize", None)
        return TokenCounter(tokenizer=tokenize)

    @property
    def llm(self) -> LLM:
        if self._llm is None:
            self._llm = models.build_llm(self.settings)
            self.__dict__.pop("token_counter", None)  # now the model's own tokenizer can count
        attach(self._llm, self.token_counter)  # added beside the caller's own handlers, never instead
        return self._llm

    @property
    def small_llm(self) -> bool:
        """A profile marked ``small`` (the 135M model): too small to condense follow-ups or pick routes."""
        return not self._llm_given and self.settings.small_llm

    @cached_property
    def embed_model_name(self) -> str:
        if not self._embed_given:
            return models.embedding_model_name(self.settings)
        name = getattr(self._embed_model, "model_name", None) or type(self._embed_model).__name__
        return f"custom:{name}"

    @cached_property
    def llm_model_name(self) -> str:
        if not self._llm_given:
            llm = self.settings.active_profile.llm
            return f"{llm.provider}:{llm.model}"
        return f"custom:{getattr(self._llm, 'model', None) or type(self._llm).__name__}"

    @cached_property
    def vector_store(self) -> MariaDBVectorStore:
        vs, r = self.settings.vector_store, self.settings.retrieval
        store = MariaDBVectorStore(
            self.connection,
            table_name=vs.table_name,
            embed_dim=models.embedding_dimension(self.settings, self._embed_model),
            distance=vs.distance,
            hnsw_m=vs.hnsw_m,
            ef_search=vs.ef_search,
            embed_model_name=self.embed_model_name,
            hybrid_fusion=r.fusion,
            rrf_k=r.rrf_k,
            rrf_weights=r.rrf_weights,
            both_boost=r.both_boost,
            sparse_top_k=r.sparse_top_k,
            vector_pool=r.vector_pool,
            text_candidates=r.text_candidates,
        )
        found = {name for name in store.embedding_models() if name}
        if found and self.embed_model_name not in found:
            raise KBError(
                f"the index in table {store.table_name} was built with {', '.join(sorted(found))}, but the "
                f"configured embedding model is {self.embed_model_name}: vectors from different models cannot "
                "be compared. Switch back, or re-index into another table (vector_store.table_name)"
            )
        return store

    @cached_property
    def kv_store(self) -> MariaDBKVStore:
        """Key-value collections: the file registry and the embedding cache."""
        return MariaDBKVStore(self.connection, table_name=self.settings.indexing.kv_table)

    @cached_property
    def query_log(self) -> QueryLog:
        return QueryLog(self.connection, self.settings.engine.log_table)

    @cached_property
    def collection_versions(self) -> CollectionVersions:
        """Changes with every indexing run that touches a collection: what cached answers are keyed by."""
        return CollectionVersions(self.kv_store, self.settings.vector_store.table_name)

    @cached_property
    def chat_store(self) -> MariaDBChatStore:
        return MariaDBChatStore(self.connection, table_name=self.settings.engine.chat_table)

    @cached_property
    def sql_engine(self) -> DatabaseSide:
        """The NL->SQL engine, or :class:`Unavailable` with the reason there is none (see
        :func:`kb.sql_side.build_database_side`)."""
        return build_database_side(
            self.settings, llm=lambda: self.llm, embed_model=lambda: self.embed_model, connect=lambda: self.connection
        )

    @property
    def routes_with_llm(self) -> bool:
        """Whether choosing a route asks the LLM (else it needs no model time at all)."""
        return isinstance(self.selector, LLMSelector)

    @cached_property
    def selector(self) -> Any:
        mode = self.settings.route_selector
        if self._llm_given and self.settings.router.selector == "auto":
            mode = "llm"  # an LLM handed in by the application: the profile's measurement is not about it
        return build_selector(
            mode, llm=self.llm, embed_model=self.embed_model, store=self.vector_store, database=self.sql_engine
        )

    def warm_up(self) -> None:
        """Load the models, open the stores and prepare the router now, so that the first question
        does not pay for it (``kb serve`` calls this before it accepts requests)."""
        self.vector_store, self.llm, self.chat_store, self.query_log, self.sql_engine  # built now
        self.embed_model.get_query_embedding("warm up")
        self.selector.warm_up()

    # -- indexing ----------------------------------------------------------------------------------
    def index_directory(
        self,
        path: str | PathLike[str],
        *,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        recursive: bool | None = None,
        dry_run: bool = False,
        progress: bool | None = None,
        echo: Any = None,
        collection: str = DEFAULT_COLLECTION,
        may_write: Sequence[str] | None = None,
    ) -> IndexReport:
        """Index a folder incrementally into ``collection`` (see :mod:`kb.indexing`); returns what was done.

        Files under ``path`` already indexed in another collection are left alone and reported as
        skipped, unless that collection is in ``may_write`` (``["*"]``: any), which moves them."""
        indexer = self._indexer(progress=progress, echo=echo)
        return indexer.index(
            path,
            include=include,
            exclude=exclude,
            recursive=recursive,
            dry_run=dry_run,
            collection=collection,
            may_write=may_write,
        )

    def _indexer(self, *, progress: bool | None = None, echo: Any = None) -> DirectoryIndexer:
        return DirectoryIndexer(
            self.vector_store,
            self.kv_store,
            lambda: self.embed_model,
            self.embed_model_name,
            self.settings.indexing,
            protected=[self.settings.home_path, self.settings.model_cache_path],
            progress=progress,
            echo=echo,
        )

    def forget_directory(
        self, path: str | PathLike[str], *, may_write: Sequence[str] = (ALL_COLLECTIONS,)
    ) -> list[str]:
        """Remove everything indexed from under ``path`` (a folder that may be gone) in the collections
        of ``may_write`` (default: every collection); the document ids removed."""
        return self._indexer().forget(path, may_write=may_write)

    async def aforget_directory(self, path: str | PathLike[str], **options: Any) -> list[str]:
        return await asyncio.to_thread(self.forget_directory, path, **options)

    async def aindex_directory(self, path: str | PathLike[str], **options: Any) -> IndexReport:
        return await asyncio.to_thread(self.index_directory, path, **options)

    # -- LlamaIndex objects --------------------------------------------------------------------------
    def as_retriever(
        self,
        *,
        top_k: int | None = None,
        mode: str | None = None,
        filters: MetadataFilters | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> StoreRetriever:
        """A LlamaIndex retriever over the chunks, with the configured defaults and any overrides
        (``fusion``, ``alpha``, ``rrf_k``, ``both_boost``, ``sparse_top_k``, ``vector_pool``,
        ``text_candidates``, ``ef_search``, ``mmr_lambda``). Full-text mode never loads the embedding model."""
        return build_retriever(
            self.settings.retrieval,
            self.vector_store,
            lambda: self.embed_model,
            top_k=top_k,
            mode=mode,
            filters=filters,
            **options,
        )

    def documents_engine(self, *, streaming: bool = False, **options: Any) -> DocumentsQueryEngine:
        """The documents side alone, a LlamaIndex query engine (retrieval options as :meth:`as_retriever`)."""
        e = self.settings.engine
        if e.reranker:  # the reranker chooses top_k among more candidates
            options["top_k"] = (options.get("top_k") or self.settings.retrieval.top_k) * e.rerank_candidates
        return DocumentsQueryEngine(
            retriever=self.as_retriever(**options),
            llm=self.llm,
            response_mode=e.response_mode,
            node_postprocessors=rerankers(self.settings, lambda: self.llm),
            context=ContextBudget(e.context_tokens, e.min_relative_score) if e.context_tokens else None,
            streaming=streaming,
            callback_manager=self.llm.callback_manager,
        )

    def as_query_engine(self, *, streaming: bool = False, database: bool = True, **options: Any) -> RoutedQueryEngine:
        """kb's routed query engine (documents | database | both), a LlamaIndex ``BaseQueryEngine``:
        usable as a ``QueryEngineTool``, under LlamaIndex's own ``RouterQueryEngine``, by its evaluators.
        ``database=False`` leaves the business database out (an API key without that grant)."""
        filters = filters_from(options.get("filters"))  # the documents side is judged within them too
        return RoutedQueryEngine(
            select=lambda question: self.selector.select(question, filters),
            documents=self.documents_engine(**options),
            database=self.sql_engine if database else Unavailable("not granted to this API key"),
            llm=self.llm,
            streaming=streaming,
            callback_manager=self.llm.callback_manager,
        )

    def as_chat_engine(self, session_id: str, **options: Any) -> SessionChatEngine:
        """The chat engine of one session, a LlamaIndex ``BaseChatEngine``; its history lives in MariaDB."""
        if not isinstance(session_id, str) or not session_id.strip() or len(session_id) > 255:
            raise KBError("a session name must be 1 to 255 characters")
        e = self.settings.engine
        condense = e.condense if e.condense != "auto" else ("concat" if self.small_llm else "llm")
        limit = min(e.memory_tokens, max(256, int(self.llm.metadata.context_window) // 2))
        return SessionChatEngine(
            session_id,
            self.as_query_engine(**options),
            self.llm,
            self.chat_store,
            token_limit=limit,
            tokenizer_fn=self.token_counter.tokenizer,
            condense_with_llm=condense == "llm",
            # the turn's LLM calls (condensing, SQL, answer) are done when it is logged: its count is complete
            on_turn=lambda a: self._log(a, "chat", self.token_counter.current()),
            on_stopped=self.token_counter.add_unfinished,  # a stream stopped early still spent its tokens
        )

    # -- questions -----------------------------------------------------------------------------------
    def _check_question(self, question: str) -> None:
        if not isinstance(question, str) or not question.strip():
            raise KBError("the question is empty")
        window = self.settings.active_profile.llm.context_window
        if len(question) > window:  # about a quarter of the window in tokens: room for context and answer
            raise KBError(
                f"the question is {len(question):,} characters long; questions are limited to {window:,} "
                f"characters with this model's {window:,}-token context window"
            )

    @cached_property
    def prices(self) -> Prices:
        """What the active profile's models cost per 1,000 tokens (:mod:`kb.cost`; also for a model
        passed in as ``llm=``: the profile's prices are the operator's statement of what it costs)."""
        return Prices.of(self.settings.active_profile)

    def _log(self, answer: Answer, kind: str, counts: Any = None) -> Answer:
        if counts is not None:
            answer.tokens = counts.as_dict()
        llm_cost = self.prices.llm_cost(int(answer.tokens.get("in", 0)), int(answer.tokens.get("out", 0)))
        embed_cost = self.prices.embedding_cost(len(self.token_counter.tokenizer(answer.question)))
        answer.cost_usd = None if llm_cost is None or embed_cost is None else round(llm_cost + embed_cost, 8)
        self.query_log.record(answer, kind=kind, llm_model=self.llm_model_name, embed_model=self.embed_model_name)
        return answer

    def _engine(self, options: dict[str, Any], streaming: bool = False) -> RoutedQueryEngine:
        try:
            return self.as_query_engine(streaming=streaming, **options)
        except ValueError as exc:
            raise KBError(str(exc)) from None

    def retrieve(self, question: str, **options: Any) -> list[NodeWithScore]:
        """The chunks that best match ``question`` (see :meth:`as_retriever` for the options)."""
        self._check_question(question)
        return self.as_retriever(**options).retrieve(QueryBundle(question))

    async def aretrieve(self, question: str, **options: Any) -> list[NodeWithScore]:
        self._check_question(question)
        return await self.as_retriever(**options).aretrieve(QueryBundle(question))

    def route(self, question: str, **options: Any) -> RouteDecision:
        """Where ``question`` would go (documents, database or both) and why, without answering
        (options as :meth:`as_query_engine`: ``database=False`` leaves the database out)."""
        self._check_question(question)
        return self._engine(options).decide(question)

    async def aroute(self, question: str, **options: Any) -> RouteDecision:
        return await asyncio.to_thread(self.route, question, **options)

    def query(self, question: str, *, route: Optional[str] = None, **options: Any) -> Answer:
        """Answer ``question`` from the documents, the database or both, as the router decides
        (``route=`` forces one). Document options as :meth:`as_retriever`."""
        self._check_question(question)
        counts = self.token_counter.start()
        try:
            response = self._engine(options).answer(question, route)
        except ValueError as exc:
            raise KBError(str(exc)) from None
        return self._log(Answer.from_response(question, response), "query", counts)

    async def aquery(self, question: str, **options: Any) -> Answer:
        return await asyncio.to_thread(self.query, question, **options)

    def stream_query(self, question: str, *, route: Optional[str] = None, **options: Any) -> StreamingAnswer:
        """Like :meth:`query`, streamed: iterate for text; ``.sources`` first, ``.answer`` at the end."""
        self._check_question(question)
        counts = self.token_counter.start()
        try:
            response = self._engine(options, streaming=True).stream(question, route)
        except ValueError as exc:
            raise KBError(str(exc)) from None
        return StreamingAnswer(question, response, finish=lambda answer: self._log(answer, "query", counts))

    async def astream_query(self, question: str, **options: Any) -> StreamingAnswer:
        return await asyncio.to_thread(self.stream_query, question, **options)

    def sql(self, question: str) -> Answer:
        """Answer from the business database directly: the answer, the SQL and the rows.

        A statement the guard refuses is not run; the Answer says it was refused and why.
        """
        self._check_question(question)
        engine = self.sql_engine
        if isinstance(engine, Unavailable):
            raise KBError(f"no business database: {engine.reason}")
        counts = self.token_counter.start()
        answer = Answer.from_response(question, engine.query(question))
        answer.route, answer.route_reason = "database", "asked with kb sql"
        return self._log(answer, "sql", counts)

    async def asql(self, question: str) -> Answer:
        return await asyncio.to_thread(self.sql, question)

    # -- chat --------------------------------------------------------------------------------------
    def chat(self, session_id: str, message: str, **options: Any) -> Answer:
        """One chat turn: condensed with the session's history, routed, answered, remembered.
        Options as :meth:`as_query_engine` (``filters``, ``database``, ...)."""
        self._check_question(message)
        counts = self.token_counter.start()
        response = self.as_chat_engine(session_id, **options).chat(message)
        answer = Answer.from_response(message, response)
        answer.tokens = counts.as_dict()
        return answer

    async def achat(self, session_id: str, message: str, **options: Any) -> Answer:
        return await asyncio.to_thread(self.chat, session_id, message, **options)

    def stream_chat(self, session_id: str, message: str, **options: Any) -> StreamingAnswer:
        self._check_question(message)
        counts = self.token_counter.start()  # the turn's generation thread runs in a copy of this context
        turn = self.as_chat_engine(session_id, **options).stream_chat(message)
        return StreamingAnswer(
            message, turn, pieces=turn.response_gen, finish=lambda answer: setattr(answer, "tokens", counts.as_dict())
        )

    async def astream_chat(self, session_id: str, message: str, **options: Any) -> StreamingAnswer:
        return await asyncio.to_thread(self.stream_chat, session_id, message, **options)

    def sessions(self) -> list[dict[str, Any]]:
        """Every chat session: name, number of messages, first and last activity."""
        return self.chat_store.sessions()

    def session_messages(self, session_id: str) -> list[Any]:
        return self.chat_store.get_messages(session_id)

    def session_turns(self, session_id: str) -> list[dict[str, Any]]:
        """A session's turns as logged: question, condensed question, route, answer, sources, SQL."""
        return self.query_log.turns(session_id)

    def delete_session(self, session_id: str, *, keep_log: bool = False) -> bool:
        """Forget a session: its messages, and its query-log rows unless ``keep_log`` (a throw-away
        session's turns stay in the log, for ``kb stats``); False when there was none."""
        existed = self.chat_store.delete_messages(session_id) is not None
        if not keep_log:
            self.query_log.delete_session(session_id)
        return existed

    def stats(self) -> dict[str, Any]:
        return self.query_log.stats()

    # -- feedback --------------------------------------------------------------------------------------
    def rate(self, answer_id: str, rating: str, comment: Optional[str] = None) -> None:
        """Rate a logged answer (``Answer.answer_id``): positive, negative or neutral, with an optional
        comment; a later rating replaces an earlier one. ``kb stats`` shows satisfaction from them."""
        if comment is not None and len(comment) > 2000:
            raise KBError("a feedback comment is limited to 2,000 characters")
        try:
            found = self.query_log.rate(answer_id, rating, comment)
        except ValueError as exc:
            raise KBError(str(exc)) from None
        if not found:
            raise KBError(f"no answer {answer_id!r} in the query log")

    def feedback(self, *, rating: Optional[str] = None, limit: int = 100) -> list[dict[str, Any]]:
        """Rated answers, newest first (only those rated ``rating``: positive, negative or neutral)."""
        return self.query_log.feedback(rating=rating, limit=limit)

    # -- evaluation --------------------------------------------------------------------------------
    def evaluate(
        self,
        questions: str | PathLike[str] | Sequence[EvalQuestion],
        settings: Sequence[Setting] | None = None,
        *,
        answers: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> EvalReport:
        """Score retrieval settings (a :func:`kb.evaluation.grid`; default: the configured one) on an
        operator's questions (an evaluation file or :class:`EvalQuestion` s); with ``answers``, also
        answer each question with the best setting. See :mod:`kb.evaluation`."""
        items = load_questions(questions) if isinstance(questions, (str, PathLike)) else list(questions)
        r = self.settings.retrieval
        chosen = list(settings) if settings else [Setting(r.mode, fusion=r.fusion if r.mode == "hybrid" else None)]

        def answer(question: str, setting: Setting) -> Answer:
            return self.query(question, route="documents", mode=setting.mode, **setting.options())

        return evaluate(
            items,
            chosen,
            retrieve=self.retrieve,
            route=self.route if any(q.route for q in items) else None,
            answer=answer if answers else None,
            progress=progress,
        )

    # -- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        if "connection" in self.__dict__:
            self.connection.dispose()
        engine = self.__dict__.get("sql_engine")
        if isinstance(engine, SQLEngine):
            engine.readonly.dispose()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
