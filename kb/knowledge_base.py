"""``KnowledgeBase``: the public Python API. Reads the configuration, builds the stores, the models
and the engines, and exposes what users do: index, retrieve, ask, chat.

Everything heavy (the database connection, the models) is created on first use, so that building a
``KnowledgeBase`` is cheap and a mistake in one part does not break commands that do not need it.
"""

from __future__ import annotations

import asyncio
import re
from functools import cached_property
from os import PathLike
from typing import Any, Mapping, Optional

from llama_index.core import VectorStoreIndex
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import (
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from kb import models
from kb.config import Settings, load_settings
from kb.database import connect
from kb.errors import KBError
from engines.answer import Answer, StreamingAnswer
from engines.chat import ChatSession
from engines.documents import DocumentsEngine, token_counter_for
from engines.router import LLMSelector, OfflineSelector, RouteDecision, Router
from engines.sql import SQLEngine
from kb.indexing import DirectoryIndexer, IndexReport
from kb.query_log import QueryLog
from stores import MariaDBConnection, MariaDBKVStore, MariaDBVectorStore
from stores.chat_store import MariaDBChatStore

MODES = {
    "dense": VectorStoreQueryMode.DEFAULT,
    "text": VectorStoreQueryMode.TEXT_SEARCH,
    "hybrid": VectorStoreQueryMode.HYBRID,
    "mmr": VectorStoreQueryMode.MMR,
}
_STORE_OPTIONS = {"fusion", "rrf_k", "both_boost", "vector_pool", "text_candidates", "ef_search"}


def filters_from(spec: MetadataFilters | Mapping[str, Any] | None) -> MetadataFilters | None:
    """``{"key": value}`` (equality, ANDed) or ready ``MetadataFilters``."""
    if spec is None or isinstance(spec, MetadataFilters):
        return spec
    return MetadataFilters(filters=[
        MetadataFilter(key=key, value=value, operator=FilterOperator.IN if isinstance(value, list) else FilterOperator.EQ)
        for key, value in spec.items()
    ])


class KnowledgeBase:
    """One knowledge base: its configuration, its MariaDB, its models and engines."""

    def __init__(self, settings: Settings, *, llm: Any | None = None, embed_model: Any | None = None) -> None:
        self.settings = settings
        self._llm = llm
        self._embed_model = embed_model
        self._llm_given = llm is not None
        self._embed_given = embed_model is not None
        self.sql_unavailable = ""

    @classmethod
    def from_config(
        cls,
        source: str | PathLike[str] | Mapping[str, Any] | None = None,
        *,
        llm: Any | None = None,
        embed_model: Any | None = None,
    ) -> "KnowledgeBase":
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
    def embed_model(self) -> Any:
        if self._embed_model is None:
            self._embed_model = models.build_embedding(self.settings)
        return self._embed_model

    @property
    def llm(self) -> Any:
        if self._llm is None:
            self._llm = models.build_llm(self.settings)
        return self._llm

    @cached_property
    def tokens(self) -> Any:
        """Counts the tokens of every LLM call; reset at the start of each question or turn
        (one KnowledgeBase answering in several threads at once would mix the counts)."""
        from llama_index.core.callbacks import CallbackManager

        counter = token_counter_for(self.llm)
        self.llm.callback_manager = CallbackManager([counter])
        return counter

    @property
    def small_offline_llm(self) -> bool:
        """The 135M offline default: too small to condense follow-ups or pick routes by itself."""
        return not self._llm_given and self.settings.active_profile.llm.provider == "llama_cpp"

    @cached_property
    def embed_model_name(self) -> str:
        if not self._embed_given:
            return models.embedding_model_name(self.settings)
        name = getattr(self._embed_model, "model_name", None) or type(self._embed_model).__name__
        return f"custom:{name}"

    @cached_property
    def vector_store(self) -> MariaDBVectorStore:
        vs = self.settings.vector_store
        r = self.settings.retrieval
        dim = models.embedding_dimension(self.settings, self._embed_model)
        store = MariaDBVectorStore(
            self.connection, table_name=vs.table_name, embed_dim=dim, distance=vs.distance,
            hnsw_m=vs.hnsw_m, ef_search=vs.ef_search, embed_model_name=self.embed_model_name,
            hybrid_fusion=r.fusion, rrf_k=r.rrf_k, rrf_weights=r.rrf_weights, both_boost=r.both_boost,
            sparse_top_k=r.sparse_top_k, vector_pool=r.vector_pool, text_candidates=r.text_candidates,
        )
        self._check_embedding_model(store)
        return store

    def _check_embedding_model(self, store: MariaDBVectorStore) -> None:
        found = {name for name in store.embedding_models() if name}
        if found and self.embed_model_name not in found:
            raise KBError(
                f"the index in table {store.table_name} was built with {', '.join(sorted(found))}, but the "
                f"configured embedding model is {self.embed_model_name}: vectors from different models cannot "
                "be compared. Switch back, or re-index into another table (vector_store.table_name)"
            )

    @cached_property
    def kv_store(self) -> MariaDBKVStore:
        """Key-value collections: the file registry and the embedding cache."""
        return MariaDBKVStore(self.connection, table_name=self.settings.indexing.kv_table)

    # -- indexing ----------------------------------------------------------------------------------
    def index_directory(self, path: str | PathLike[str], *, include: list[str] | None = None,
                        exclude: list[str] | None = None, recursive: bool | None = None, dry_run: bool = False,
                        progress: bool | None = None, echo: Any = None) -> IndexReport:
        """Index a folder incrementally (see :mod:`kb.indexing`); returns what was done."""
        indexer = DirectoryIndexer(self.vector_store, self.kv_store, lambda: self.embed_model, self.embed_model_name,
                                   self.settings.indexing, progress=progress, echo=echo)
        return indexer.index(path, include=include, exclude=exclude, recursive=recursive, dry_run=dry_run)

    @cached_property
    def index(self) -> VectorStoreIndex:
        return VectorStoreIndex.from_vector_store(self.vector_store, embed_model=self.embed_model)

    # -- retrieval ---------------------------------------------------------------------------------
    def retriever(self, *, top_k: int | None = None, mode: str | None = None,
                  filters: MetadataFilters | Mapping[str, Any] | None = None, **options: Any):
        """A LlamaIndex retriever over the chunks, with the configured defaults and any overrides
        (``fusion``, ``alpha``, ``rrf_k``, ``both_boost``, ``sparse_top_k``, ``vector_pool``,
        ``text_candidates``, ``ef_search``, ``mmr_lambda``)."""
        r = self.settings.retrieval
        mode = mode or r.mode
        if mode not in MODES:
            raise KBError(f"unknown retrieval mode {mode!r}; choose one of {', '.join(MODES)}")
        unknown = set(options) - _STORE_OPTIONS - {"alpha", "sparse_top_k", "mmr_lambda"}
        if unknown:
            raise KBError(f"unknown retrieval option(s): {', '.join(sorted(unknown))}")
        store_kwargs = {key: options[key] for key in _STORE_OPTIONS if options.get(key) is not None}
        if "ef_search" not in store_kwargs and r.ef_search:
            store_kwargs["ef_search"] = r.ef_search
        if mode == "mmr":
            store_kwargs["mmr_threshold"] = options.get("mmr_lambda", r.mmr_lambda)
        return self.index.as_retriever(
            similarity_top_k=top_k or r.top_k,
            vector_store_query_mode=MODES[mode],
            filters=filters_from(filters),
            alpha=options.get("alpha", r.alpha),
            sparse_top_k=options.get("sparse_top_k", r.sparse_top_k),
            vector_store_kwargs=store_kwargs,
        )

    def retrieve(self, question: str, **options: Any) -> list[NodeWithScore]:
        """The chunks that best match ``question`` (see :meth:`retriever` for the options)."""
        self._check_question(question)
        return self.retriever(**options).retrieve(QueryBundle(question))

    async def aretrieve(self, question: str, **options: Any) -> list[NodeWithScore]:
        self._check_question(question)
        return await self.retriever(**options).aretrieve(QueryBundle(question))

    # -- answering ---------------------------------------------------------------------------------
    @cached_property
    def llm_model_name(self) -> str:
        if not self._llm_given:
            llm = self.settings.active_profile.llm
            return f"{llm.provider}:{llm.model}"
        return f"custom:{getattr(self._llm, 'model', None) or type(self._llm).__name__}"

    @cached_property
    def query_log(self) -> QueryLog:
        return QueryLog(self.connection, self.settings.engine.log_table)

    @cached_property
    def chat_store(self) -> MariaDBChatStore:
        return MariaDBChatStore(self.connection, table_name=self.settings.engine.chat_table)

    def _postprocessors(self) -> list[Any]:
        reranker = self.settings.engine.reranker
        top_n = self.settings.retrieval.top_k
        if not reranker:
            return []
        if reranker == "llm":
            from llama_index.core.postprocessor import LLMRerank

            return [LLMRerank(llm=self.llm, top_n=top_n)]
        from llama_index.core.postprocessor import SentenceTransformerRerank

        return [SentenceTransformerRerank(model=reranker, top_n=top_n)]

    @cached_property
    def documents_engine(self) -> DocumentsEngine:
        e = self.settings.engine
        widen = e.rerank_candidates if e.reranker else 1

        def retriever(**options: Any):
            if widen > 1:
                options["top_k"] = (options.get("top_k") or self.settings.retrieval.top_k) * widen
            return self.retriever(**options)

        self.index  # load the embedding model now, not inside the first query's retrieval time
        self.tokens  # the counter is attached to the LLM before the engine takes its callback manager
        return DocumentsEngine(self.llm, retriever, response_mode=e.response_mode,
                               node_postprocessors=self._postprocessors(), callback_manager=self.llm.callback_manager)

    def _start(self, question: str) -> None:
        """Every public question or turn starts here: checked, token count reset."""
        self._check_question(question)
        self.tokens.reset_counts()

    def _log(self, answer: Answer, kind: str) -> Answer:
        answer.tokens = {"in": self.tokens.prompt_llm_token_count, "out": self.tokens.completion_llm_token_count}
        self.query_log.record(answer, kind=kind, llm_model=self.llm_model_name, embed_model=self.embed_model_name)
        return answer

    # -- the business database and the router -------------------------------------------------------
    @cached_property
    def sql_engine(self) -> Optional[SQLEngine]:
        """The NL->SQL engine, or None when there is no usable business database (see sql_unavailable)."""
        from kb.business import readonly_url

        sql = self.settings.sql
        if not sql.enabled:
            self.sql_unavailable = "sql.enabled is false"
            return None
        try:
            if not self.settings.sql.url:
                self.connection  # the private server is started (and checked) first
            readonly = MariaDBConnection(readonly_url(self.settings), pool_size=2)
            tables = list(sql.tables) or [row[0] for row in readonly.fetchall("SHOW TABLES")]
        except Exception as exc:  # noqa: BLE001 - reported in every routing decision instead
            self.sql_unavailable = f"cannot read {sql.database}: {str(exc).splitlines()[0][:200]}; run `kb demo` or set sql.url"
            return None
        if not tables:
            self.sql_unavailable = f"the account has no table to read in {sql.database}"
            return None
        return SQLEngine(self.llm, readonly, database=sql.database, tables=tables, row_limit=sql.row_limit,
                         timeout_s=sql.timeout_s, max_tables_in_prompt=sql.max_tables_in_prompt,
                         embed_model=self.embed_model)

    def _descriptions(self) -> tuple[list[str], list[str]]:
        """What each side holds, in words: the tables and columns; the titles of the documents."""
        database: list[str] = []
        engine = self.sql_engine
        for table in engine.tables if engine else []:
            info = engine.sql_database.get_single_table_info(table)
            noun = table.replace("_", " ")
            database += [info, f"How many {noun} are there?", f"Count the {noun} per month.",
                         f"What is the total and the average in {noun}?", f"Which {noun} have the highest values?"]
            columns = re.findall(r"(\w+) \(", info)
            database += [f"{noun} by {c.replace('_', ' ')}" for c in columns[:8]]
        titles = [str(t) for t in self.vector_store.distinct_metadata("title", limit=300)]
        documents = titles + [f"What does the {t} say?" for t in titles]
        documents += ["What is the policy?", "How do I do this?", "Explain the procedure.", "Why does this happen?"]
        return database, documents

    @cached_property
    def selector(self) -> Any:
        database, documents = self._descriptions()
        store = self.vector_store

        def chunk_similarity(embedding: list[float]) -> float:
            hits = store.query(VectorStoreQuery(query_embedding=embedding, similarity_top_k=1)).similarities or []
            return hits[0] if hits else 0.0

        offline = OfflineSelector(self.embed_model, database, documents, chunk_similarity=chunk_similarity)
        mode = self.settings.router.selector
        if mode == "auto":
            mode = "offline" if self.small_offline_llm else "llm"
        if mode == "offline":
            return offline
        tables = ", ".join(self.sql_engine.tables) if self.sql_engine else "none"
        return LLMSelector(self.llm, f"business tables ({tables}): figures, counts, totals, lists of records",
                           "indexed documents (policies, product guides, FAQs, procedures)", fallback=offline)

    def router(self, **options: Any) -> Router:
        """The router, its documents side answering with the given retrieval options."""
        engine = self.sql_engine
        return Router(lambda q: self.selector.select(q), self.documents_engine, engine, self.llm,
                      self.sql_unavailable, documents_options=options)

    def route(self, question: str) -> RouteDecision:
        """Where ``question`` would go (documents, database or both) and why, without answering."""
        self._check_question(question)
        return self.router().decide(question)

    def sql(self, question: str) -> Answer:
        """Answer from the business database directly: the answer, the SQL and the rows.

        A statement the guard refuses is not run; the Answer says it was refused and why.
        """
        self._start(question)
        if self.sql_engine is None:
            raise KBError(f"no business database: {self.sql_unavailable}")
        answer = self.sql_engine.answer(question)
        answer.route, answer.route_reason = "database", "asked with kb sql"
        return self._log(answer, "sql")

    def _routed(self, question: str, route: Optional[str], options: dict[str, Any]) -> Answer:
        try:
            return self.router(**options).answer(question, route)
        except ValueError as exc:
            raise KBError(str(exc)) from None

    def query(self, question: str, *, route: Optional[str] = None, **options: Any) -> Answer:
        """Answer ``question`` from the documents, the database or both, as the router decides
        (``route=`` forces one). Document options as :meth:`retrieve`."""
        self._start(question)
        return self._log(self._routed(question, route, options), "query")

    def stream_query(self, question: str, *, route: Optional[str] = None, **options: Any) -> StreamingAnswer:
        """Like :meth:`query`, streamed: iterate for text; ``.sources`` first, ``.answer`` at the end.
        Database and both-routes answers arrive in one piece (they are written from complete rows)."""
        self._start(question)
        return self._routed_stream(question, lambda a: self._log(a, "query"), route, options)

    async def aquery(self, question: str, **options: Any) -> Answer:
        return await asyncio.to_thread(self.query, question, **options)

    # -- chat --------------------------------------------------------------------------------------
    def session(self, session_id: str) -> ChatSession:
        """The chat engine of one session; its history is read from MariaDB on every turn."""
        if not isinstance(session_id, str) or not session_id.strip() or len(session_id) > 255:
            raise KBError("a session name must be 1 to 255 characters")
        limit = min(self.settings.engine.memory_tokens, max(256, self._context_window() // 2))
        return ChatSession(session_id, self.llm, self.chat_store, token_limit=limit,
                           answer=lambda q: self._routed(q, None, {}),
                           stream=lambda q, done: self._routed_stream(q, done),
                           tokenizer_fn=self.tokens.tokenizer,
                           condense_with_llm=self._condense_with_llm())

    def _routed_stream(self, question: str, done: Any, route: Optional[str] = None,
                       options: Optional[dict[str, Any]] = None) -> StreamingAnswer:
        """Stream a routed answer: documents answers token by token; database and both answers
        in one piece (they are written from complete rows)."""
        options = options or {}
        decision = RouteDecision(route, "forced by the caller", "forced") if route else self.route(question)
        if decision.route == "documents":
            def finish(answer: Answer) -> None:
                answer.route, answer.route_reason = decision.route, decision.reason
                done(answer)

            streaming = self.documents_engine.stream(question, on_done=finish, **options)
            streaming.answer.route, streaming.answer.route_reason = decision.route, decision.reason
            return streaming
        answer = self._routed(question, decision.route, options)
        answer.route_reason = decision.reason
        return StreamingAnswer(answer, iter([answer.text]), done)

    def _condense_with_llm(self) -> bool:
        mode = self.settings.engine.condense
        if mode == "auto":
            return not self.small_offline_llm
        return mode == "llm"

    def _context_window(self) -> int:
        try:
            return int(self.llm.metadata.context_window)
        except Exception:
            return self.settings.active_profile.llm.context_window

    def chat(self, session_id: str, message: str) -> Answer:
        """One chat turn: condensed with the session's history, answered, remembered."""
        self._start(message)
        return self._log(self.session(session_id).chat(message), "chat")

    def stream_chat(self, session_id: str, message: str) -> StreamingAnswer:
        self._start(message)
        return self.session(session_id).stream_chat(message, on_done=lambda a: self._log(a, "chat"))

    async def achat(self, session_id: str, message: str) -> Answer:
        return await asyncio.to_thread(self.chat, session_id, message)

    def sessions(self) -> list[dict[str, Any]]:
        """Every chat session: name, number of messages, first and last activity."""
        return self.chat_store.sessions()

    def session_messages(self, session_id: str):
        return self.chat_store.get_messages(session_id)

    def session_turns(self, session_id: str) -> list[dict[str, Any]]:
        """A session's turns as logged: question, condensed question, route, answer, sources, SQL."""
        return self.query_log.turns(session_id)

    def delete_session(self, session_id: str) -> bool:
        """Forget a session (its messages and its log rows); False when there was none."""
        existed = self.chat_store.delete_messages(session_id) is not None
        self.query_log.delete_session(session_id)
        return existed

    def stats(self) -> dict[str, Any]:
        return self.query_log.stats()

    @staticmethod
    def _check_question(question: str) -> None:
        if not isinstance(question, str) or not question.strip():
            raise KBError("the question is empty")

    # -- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        if "connection" in self.__dict__:
            self.connection.dispose()
        engine = self.__dict__.get("sql_engine")
        if engine is not None:
            engine.readonly.dispose()

    def __enter__(self) -> "KnowledgeBase":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
