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
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from os import PathLike
from typing import Any, Optional

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import LLM, ChatMessage
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import (
    MetadataFilters,
)

from kb.business_database.examples import (
    ExampleSource,
    SQLExample,
    SQLExampleStore,
    load_sql_examples,
)
from kb.business_database.sql_engine import build_database_side
from kb.collections import ALL_COLLECTIONS, DEFAULT_COLLECTION, CollectionVersions
from kb.config import Settings, load_settings
from kb.engines.answer import Answer, StreamingAnswer
from kb.engines.callbacks import add_handler_once
from kb.engines.chat import SessionChatEngine
from kb.engines.context import ContextBudget
from kb.engines.database_side import DatabaseSide, Unavailable
from kb.engines.documents import DocumentsQueryEngine
from kb.engines.retriever import StoreRetriever
from kb.engines.router import RoutedQueryEngine
from kb.engines.selectors import LLMSelector, RouteDecision, Selector, build_selector
from kb.engines.sql.engine import SQLEngine
from kb.engines.timing import Stopwatch
from kb.errors import ConfigError, KBError
from kb.ingest.file_scan import FolderIdentity
from kb.ingest.indexing import DirectoryIndexer, IndexReport
from kb.ingest.reembedding import (
    REFRESH_S,
    Generation,
    GenerationRecord,
    GenerationRegistry,
    Reembedding,
    ReembedReport,
    embedding_profile_of,
    table_for,
    wait_for_followers,
)
from kb.models import factories
from kb.models.token_counts import Counts, TokenCounter
from kb.operations.cost import Prices
from kb.operations.evaluation import EvalQuestion, EvalReport, Setting, evaluate, load_questions
from kb.operations.query_log import QueryLog
from kb.private_dirs import make_private_dir
from kb.retrieval import build_retriever, candidates_to_retrieve, filters_from, rerankers
from kb.server.database import connect
from kb.stores import MariaDBConnection, MariaDBKVStore, MariaDBVectorStore
from kb.stores.chat_store import MariaDBChatStore
from kb.stores.connection import quote_identifier, table_exists
from kb.stores.errors import DimensionMismatch
from kb.stores.vector_schema import table_dimension

log = logging.getLogger(__name__)
_INDEXING_WAIT_S = 3600.0  # how long an indexing run waits for the one before it
_INDEXING_POLL_S = 1.0  # how often it asks


@contextmanager
def _user_mistakes() -> Iterator[None]:
    """The engines and stores (which know nothing of kb's errors) raise ValueError for a caller's
    mistake (an unknown route or option, a route without its database): kb's users get a KBError."""
    try:
        yield
    except ValueError as exc:
        raise KBError(str(exc)) from None


class KnowledgeBase:
    """One knowledge base: its configuration, its MariaDB, its models and engines."""

    def __init__(
        self, settings: Settings, *, llm: Optional[LLM] = None, embed_model: Optional[BaseEmbedding] = None
    ) -> None:
        self.settings = settings
        make_private_dir(settings.home_path)  # caches, logs and model files of any collection live below
        self._llm = llm
        self._given_embed_model = embed_model
        self._llm_given = llm is not None
        self._embed_given = embed_model is not None
        self._wrap_embedding: Optional[Callable[[BaseEmbedding, str], BaseEmbedding]] = None
        self._live: Optional[Generation] = None
        self._live_read_at = 0.0
        self._embed_models: dict[str, BaseEmbedding] = {}
        self._stores: dict[str, MariaDBVectorStore] = {}
        self._example_stores: dict[str, SQLExampleStore] = {}
        self._selector: Optional[tuple[int, Selector]] = None

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

    # -- the live generation of vectors (kb.ingest.reembedding) ---------------------------------------------
    @cached_property
    def generations(self) -> GenerationRegistry:
        return GenerationRegistry(self.kv_store, self.settings.vector_store.table_name)

    def live_generation(self, *, fresh: bool = False) -> Generation:
        """The table and embedding model questions are answered from: the record ``kb reembed``
        keeps, read again at most every :data:`~kb.ingest.reembedding.REFRESH_S` seconds (``fresh``: now);
        with no record, the configured table and model."""
        now = time.monotonic()
        if fresh or self._live is None or now - self._live_read_at > REFRESH_S:
            record = self.generations.read()
            self._live = record.live if record else self._first_generation
            self._live_read_at = now
        return self._live

    @cached_property
    def _first_generation(self) -> Generation:
        """The configured table and model, before any switch (measuring an unknown model's dimension once)."""
        return Generation(
            version=1,
            table=self.settings.vector_store.table_name,
            profile=None,
            model=self._configured_model_name(),
            dim=factories.embedding_dimension(self.settings, self._given_embed_model),
        )

    def _configured_model_name(self) -> str:
        if not self._embed_given:
            return factories.embedding_model_name(self.settings)
        name = getattr(self._given_embed_model, "model_name", None) or type(self._given_embed_model).__name__
        return f"custom:{name}"

    def embedding_for(self, generation: Generation) -> BaseEmbedding:
        """The embedding model that made ``generation``'s vectors (built once per process)."""
        model = self._embed_models.get(generation.model)
        if model is not None:
            return model
        profile = embedding_profile_of(generation, self.settings, self._configured_model_name(), self._embed_given)
        if profile is None:
            model = self._given_embed_model or factories.build_embedding(self.settings)
        else:
            model = factories.build_embedding(self.settings, profile)
        if self._wrap_embedding is not None:
            model = self._wrap_embedding(model, generation.model)
        self._embed_models[generation.model] = model
        return model

    def wrap_embedding_models(self, wrap: Callable[[BaseEmbedding, str], BaseEmbedding]) -> None:
        """Put ``wrap(model, model_name)`` around every embedding model this knowledge base uses, those
        already built included (``kb serve`` sends question embeddings through its shared cache this
        way). A second wrapper goes around the first; the index keeps the inner model's name."""
        inner = self._wrap_embedding
        self._wrap_embedding = wrap if inner is None else (lambda model, name: wrap(inner(model, name), name))
        self._embed_models = {name: wrap(model, name) for name, model in self._embed_models.items()}
        self._selector = None  # it holds the model it was built with

    def store_for(self, generation: Generation) -> MariaDBVectorStore:
        """The vector store of ``generation``'s table (opened once per process)."""
        store = self._stores.get(generation.table)
        if store is not None:
            return store
        vs, r = self.settings.vector_store, self.settings.retrieval
        try:
            store = MariaDBVectorStore(
                self.connection,
                table_name=generation.table,
                embed_dim=generation.dim,
                distance=vs.distance,
                hnsw_m=vs.hnsw_m,
                ef_search=vs.ef_search,
                embed_model_name=generation.model,
                hybrid_fusion=r.fusion,
                rrf_k=r.rrf_k,
                rrf_weights=r.rrf_weights,
                both_boost=r.both_boost,
                sparse_top_k=r.sparse_top_k,
                vector_pool=r.vector_pool,
                text_candidates=r.text_candidates,
            )
        except DimensionMismatch as exc:
            raise KBError(
                f"{exc}; or move the index to this model: kb reembed --profile {self.settings.profile}"
            ) from None
        found = {name for name in store.embedding_models() if name}
        if found and generation.model not in found:
            raise KBError(
                f"the index in table {store.table_name} was built with {', '.join(sorted(found))}, but the "
                f"configured embedding model is {generation.model}: vectors from different models cannot "
                "be compared. Switch back, or move the index to the new model with kb reembed --profile NAME"
            )
        self._stores[generation.table] = store
        return store

    def sql_examples_for(self, generation: Generation) -> SQLExampleStore:
        """The example store of ``generation``: its table of approved question/SQL pairs
        (``sql.examples_table``, suffixed as the chunks' table is), embedded with its model."""
        table = table_for(self.settings.sql.examples_table, generation.version)
        store = self._example_stores.get(table)
        if store is None:
            vectors = MariaDBVectorStore(
                self.connection,
                table_name=table,
                embed_dim=generation.dim,
                distance="cosine",
                embed_model_name=generation.model,
                full_text=False,
            )
            store = self._example_stores[table] = SQLExampleStore(vectors, self.embedding_for(generation))
        return store

    @property
    def sql_examples(self) -> SQLExampleStore:
        """The live generation's example store (:mod:`kb.business_database.examples`)."""
        return self.sql_examples_for(self.live_generation())

    @property
    def embed_model(self) -> BaseEmbedding:
        """The live generation's embedding model (it changes with ``kb reembed``)."""
        return self.embedding_for(self.live_generation())

    @property
    def vector_store(self) -> MariaDBVectorStore:
        """The live generation's vector store (it changes with ``kb reembed``)."""
        return self.store_for(self.live_generation())

    @property
    def embed_model_name(self) -> str:
        return self.live_generation().model

    @cached_property
    def token_counter(self) -> TokenCounter:
        """Counts every LLM call into the question or turn that made it (see :mod:`kb.models.token_counts`)."""
        tokenize = getattr(self._llm if self._llm is not None else None, "tokenize", None)
        return TokenCounter(tokenizer=tokenize)

    @property
    def llm(self) -> LLM:
        if self._llm is None:
            self._llm = factories.build_llm(self.settings)
            self.__dict__.pop("token_counter", None)  # now the model's own tokenizer can count
        add_handler_once(self._llm, self.token_counter)  # added beside the caller's own handlers, never instead
        return self._llm

    @property
    def small_llm(self) -> bool:
        """A profile marked ``small`` (the 135M model): too small to condense follow-ups or pick routes."""
        return not self._llm_given and self.settings.small_llm

    @cached_property
    def llm_model_name(self) -> str:
        if not self._llm_given:
            llm = self.settings.active_profile.llm
            return f"{llm.provider}:{llm.model}"
        return f"custom:{getattr(self._llm, 'model', None) or type(self._llm).__name__}"

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
        :func:`kb.business_database.sql_engine.build_database_side`)."""
        return build_database_side(
            self.settings,
            llm=lambda: self.llm,
            embed_model=lambda: self.embed_model,
            connect=lambda: self.connection,
            examples=lambda: self.sql_examples,
        )

    @property
    def routes_with_llm(self) -> bool:
        """Whether choosing a route asks the LLM (else it needs no model time at all)."""
        return isinstance(self.selector, LLMSelector)

    @property
    def selector(self) -> Selector:
        """The route selector, built for the live generation's store and embedding model."""
        return self._selector_for(self.live_generation())

    def _selector_for(self, generation: Generation) -> Selector:
        """The route selector of ``generation`` (its store and embedding model: the question embedding
        it makes is handed to that generation's retriever)."""
        if self._selector is None or self._selector[0] != generation.version:
            mode = self.settings.route_selector
            if self._llm_given and self.settings.router.selector == "auto":
                mode = "llm"  # an LLM handed in by the application: the profile's measurement is not about it
            selector = build_selector(
                mode,
                llm=self.llm,
                embed_model=self.embedding_for(generation),
                store=self.store_for(generation),
                database=self.sql_engine,
            )
            self._selector = (generation.version, selector)
        return self._selector[1]

    def warm_up(self) -> None:
        """Load the models, open the stores and prepare the router now, so that the first question
        does not pay for it (``kb serve`` calls this before it accepts requests, then
        :meth:`warm_sql_prompts` while it does)."""
        self.vector_store, self.llm, self.chat_store, self.query_log, self.sql_engine  # built now
        self.embed_model.get_query_embedding("warm up")
        self.selector.warm_up()

    def warm_sql_prompts(self) -> int:
        """Evaluate the business database's SQL prompts up to the question into the local model's
        prompt cache (:meth:`SQLEngine.warm_prompt_cache`; kept on disk, so later processes find it
        too); how many prompts were warmed: 0 without a database side or a local model."""
        engine = self.sql_engine
        if isinstance(engine, Unavailable):
            return 0
        clock = Stopwatch()
        warmed = engine.warm_prompt_cache()
        if warmed:
            log.info(
                "SQL prompts of %s warmed in the prompt cache: %d in %.1f s", engine.database, warmed, clock.elapsed()
            )
        return warmed

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
        echo: Optional[Callable[[str], None]] = None,
        collection: str = DEFAULT_COLLECTION,
        expect_folder: Optional[FolderIdentity] = None,
    ) -> IndexReport:
        """Index a folder incrementally into ``collection`` (see :mod:`kb.ingest.indexing`); returns what was done.

        ``collection`` gets its own copy of each file: another collection's copies of the same files
        are neither changed nor named in the report. ``expect_folder``: index only if ``path`` is
        still that folder (:func:`kb.ingest.file_scan.folder_below` checked it earlier)."""
        with self._writing(echo) as generation:
            return self._indexer(generation, progress=progress, echo=echo).index(
                path,
                include=include,
                exclude=exclude,
                recursive=recursive,
                dry_run=dry_run,
                collection=collection,
                expect_folder=expect_folder,
            )

    @contextmanager
    def _writing(self, echo: Optional[Callable[[str], None]] = None) -> Iterator[Generation]:
        """Hold the generation lock while writing chunks, and yield the live generation as it is
        then: ``kb reembed`` switches only between indexing runs, and indexing runs of one knowledge
        base take turns (each waits for the one before, saying so)."""
        # The wait is a poll: GET_LOCK with a timeout would hold a pooled connection the whole time,
        # and a few runs queued behind a long one (kb serve's indexing jobs) would empty the pool.
        deadline = time.monotonic() + _INDEXING_WAIT_S
        told = False
        while True:
            with self.generations.lock(0) as held:
                if held:
                    yield self.live_generation(fresh=True)
                    return
            if time.monotonic() > deadline:
                raise KBError("another indexing run or kb reembed has held the knowledge base for an hour; try later")
            if not told:
                (echo or log.warning)("waiting for another indexing run or kb reembed on this knowledge base to finish")
                told = True
            time.sleep(_INDEXING_POLL_S)

    def _indexer(
        self, generation: Generation, *, progress: bool | None = None, echo: Optional[Callable[[str], None]] = None
    ) -> DirectoryIndexer:
        return DirectoryIndexer(
            self.store_for(generation),
            self.kv_store,
            lambda: self.embedding_for(generation),
            generation.model,
            self.settings.indexing,
            registry=self.settings.vector_store.table_name,
            protected=[self.settings.home_path, self.settings.model_cache_path],
            progress=progress,
            echo=echo,
        )

    def forget_directory(
        self, path: str | PathLike[str], *, may_write: Sequence[str] = (ALL_COLLECTIONS,)
    ) -> list[str]:
        """Remove everything indexed from under ``path`` (a folder that may be gone) in the collections
        of ``may_write`` (default: every collection); the document ids removed."""
        with self._writing() as generation:
            return self._indexer(generation).forget(path, may_write=may_write)

    async def aforget_directory(self, path: str | PathLike[str], **options: Any) -> list[str]:
        return await asyncio.to_thread(self.forget_directory, path, **options)

    async def aindex_directory(self, path: str | PathLike[str], **options: Any) -> IndexReport:
        return await asyncio.to_thread(self.index_directory, path, **options)

    # -- changing embedding models (kb.ingest.reembedding) ------------------------------------------------
    def _recorded_generations(self) -> GenerationRecord:
        """The generation record; before the first switch, one made from the table as it is (its
        vectors' model, whatever the configuration says now)."""
        record = self.generations.read()
        if record is not None:
            return record
        table = self.settings.vector_store.table_name
        dim = table_dimension(self.connection, quote_identifier(table))
        if dim is None:
            raise KBError(
                "nothing is indexed yet, so there is nothing to re-embed: index with the profile you want "
                "(KB_PROFILE=NAME kb index DIR)"
            )
        store = MariaDBVectorStore(self.connection, table_name=table, embed_dim=dim, perform_setup=False)
        stored = [name for name in store.embedding_models() if name]
        if len(stored) > 1:
            raise KBError(f"table {table} mixes vectors of {', '.join(sorted(stored))}; re-index it into a new table")
        model = stored[0] if stored else self._configured_model_name()
        names = {name: factories.embedding_model_name(self.settings, name) for name in self.settings.profiles}
        candidates = [self.settings.profile, *sorted(names)]
        profile = next((name for name in candidates if names.get(name) == model), None)
        return GenerationRecord(live=Generation(version=1, table=table, profile=profile, model=model, dim=dim))

    def reembed(self, profile: str, *, progress: Optional[Callable[[int, int], None]] = None) -> ReembedReport:
        """Move the knowledge base to ``profile``'s embedding model without downtime: build its
        vectors in a table beside the live one, then switch (see :mod:`kb.ingest.reembedding`). Resumes a
        build that was cut off; switching back to a model whose table was kept catches it up."""
        clock = Stopwatch()
        try:
            target_model = factories.embedding_model_name(self.settings, profile)
        except ConfigError as exc:
            raise KBError(str(exc)) from None
        logical = self.settings.vector_store.table_name
        with self.generations.build_lock() as held:
            if not held:
                raise KBError("another kb reembed of this knowledge base is running; wait for it to finish")
            record = self._recorded_generations()
            previous = record.live
            if previous.model == target_model:
                return ReembedReport(previous=previous, live=previous, chunks=self.store_for(previous).count())
            target = next(
                (g for g in [record.building, *record.old] if g is not None and g.model == target_model), None
            )
            if record.building is not None and record.building is not target:
                self.store_for(record.building).drop()  # a build for another model, abandoned
                record.building = None
            resumed = target is not None
            if target is None:
                version = 1 + max(g.version for g in [previous, *record.old])
                target = Generation(
                    version=version,
                    table=table_for(logical, version),
                    profile=profile,
                    model=target_model,
                    dim=factories.embedding_dimension(self.settings, None, profile),
                )
            target = target.model_copy(update={"profile": profile})
            build = Reembedding(
                registry=self.generations,
                record=record,
                live=self.store_for(previous),
                target=target,
                embed_model=self.embedding_for(target),
                new=self.store_for(target),
            )
            examples = (
                Reembedding(
                    registry=self.generations,
                    record=record,
                    live=self.sql_examples_for(previous).store,
                    target=target,
                    embed_model=self.embedding_for(target),
                    new=self.sql_examples_for(target).store,
                )
                if self._has_table(table_for(self.settings.sql.examples_table, previous.version))
                else None
            )
            if examples is not None:
                examples.catch_up()  # the approved pairs are few: copied before the switch, and after it
            build.run(progress)
            if examples is not None:
                examples.catch_up()  # what was approved meanwhile
        self.live_generation(fresh=True)
        versions = self.collection_versions
        versions.bump(versions.current([ALL_COLLECTIONS]))  # cached answers came from the old vectors
        return ReembedReport(
            previous=previous,
            live=target,
            chunks=self.store_for(target).count(),
            copied=build.copied,
            embedded=build.embedded,
            resumed=resumed,
            seconds=clock.elapsed(),
        )

    def _has_table(self, table: str) -> bool:
        with self.connection.cursor() as cur:
            return table_exists(cur, quote_identifier(table))

    def drop_old_generations(self) -> list[str]:
        """Drop the tables of vectors kept after switches (``kb reembed --drop-old``); their names.
        Waits until every process has followed the last switch."""
        record = self.generations.read()
        if record is None or not record.old:
            return []
        wait_for_followers()
        dropped = []
        for generation in record.old:
            MariaDBVectorStore(
                self.connection, table_name=generation.table, embed_dim=generation.dim, perform_setup=False
            ).drop()
            self._stores.pop(generation.table, None)
            dropped.append(generation.table)
            examples = table_for(self.settings.sql.examples_table, generation.version)
            if self._has_table(examples):
                MariaDBVectorStore(
                    self.connection, table_name=examples, embed_dim=generation.dim, full_text=False, perform_setup=False
                ).drop()
                self._example_stores.pop(examples, None)
                dropped.append(examples)
        record.old = []
        self.generations.write(record)
        return dropped

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
        return self._retriever(self.live_generation(), top_k=top_k, mode=mode, filters=filters, **options)

    def _retriever(
        self,
        generation: Generation,
        *,
        top_k: int | None = None,
        mode: str | None = None,
        filters: MetadataFilters | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> StoreRetriever:
        """A retriever over ``generation``'s table that embeds with that generation's model: one engine
        never pairs a question embedded by one model with vectors of another, even across a switch."""
        return build_retriever(
            self.settings.retrieval,
            self.store_for(generation),
            lambda: self.embedding_for(generation),
            top_k=top_k,
            mode=mode,
            filters=filters,
            **options,
        )

    def documents_engine(self, *, streaming: bool = False, **options: Any) -> DocumentsQueryEngine:
        """The documents side alone, a LlamaIndex query engine (retrieval options as :meth:`as_retriever`)."""
        return self._documents_engine(self.live_generation(), streaming=streaming, **options)

    def _documents_engine(self, generation: Generation, *, streaming: bool, **options: Any) -> DocumentsQueryEngine:
        e = self.settings.engine
        options["top_k"] = candidates_to_retrieve(self.settings, options.get("top_k"))
        return DocumentsQueryEngine(
            retriever=self._retriever(generation, **options),
            llm=self.llm,
            response_mode=e.response_mode,
            node_postprocessors=rerankers(self.settings, lambda: self.llm),
            context=(
                ContextBudget(
                    e.context_tokens,
                    e.min_relative_score,
                    window_tokens=e.window_tokens,
                    embed_texts=lambda texts: factories.embed_texts(self.embedding_for(generation), texts),
                )
                if e.context_tokens
                else None
            ),
            streaming=streaming,
            callback_manager=self.llm.callback_manager,
        )

    def as_query_engine(self, *, streaming: bool = False, database: bool = True, **options: Any) -> RoutedQueryEngine:
        """kb's routed query engine (documents | database | both), a LlamaIndex ``BaseQueryEngine``:
        usable as a ``QueryEngineTool``, under LlamaIndex's own ``RouterQueryEngine``, by its evaluators.
        ``database=False`` leaves the business database out (an API key without that grant)."""
        filters = filters_from(options.get("filters"))  # the documents side is judged within them too
        generation = self.live_generation()  # one for the selector and the documents: see _retriever
        return RoutedQueryEngine(
            select=lambda question: self._selector_for(generation).select(question, filters),
            documents=self._documents_engine(generation, streaming=False, **options),
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
        """What the active profile's models cost per 1,000 tokens (:mod:`kb.operations.cost`; also for a model
        passed in as ``llm=``: the profile's prices are the operator's statement of what it costs)."""
        return Prices.of(self.settings.active_profile)

    def _log(self, answer: Answer, kind: str, counts: Optional[Counts] = None) -> Answer:
        if counts is not None:
            answer.tokens = counts.as_dict()
        llm_cost = self.prices.llm_cost(int(answer.tokens.get("in", 0)), int(answer.tokens.get("out", 0)))
        embed_cost = self.prices.embedding_cost(len(self.token_counter.tokenizer(answer.question)))
        answer.cost_usd = None if llm_cost is None or embed_cost is None else round(llm_cost + embed_cost, 8)
        self.query_log.record(answer, kind=kind, llm_model=self.llm_model_name, embed_model=self.embed_model_name)
        return answer

    def _engine(self, options: dict[str, Any], streaming: bool = False) -> RoutedQueryEngine:
        with _user_mistakes():
            return self.as_query_engine(streaming=streaming, **options)

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
        with _user_mistakes():
            response = self._engine(options).answer(question, route)
        return self._log(Answer.from_response(question, response), "query", counts)

    async def aquery(self, question: str, **options: Any) -> Answer:
        return await asyncio.to_thread(self.query, question, **options)

    def stream_query(self, question: str, *, route: Optional[str] = None, **options: Any) -> StreamingAnswer:
        """Like :meth:`query`, streamed: iterate for text; ``.sources`` first, ``.answer`` at the end."""
        self._check_question(question)
        counts = self.token_counter.start()
        with _user_mistakes():
            response = self._engine(options, streaming=True).stream(question, route)
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

    def session_messages(self, session_id: str) -> list[ChatMessage]:
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
        found = self.query_log.rate(answer_id, rating, comment)
        if not found:
            raise KBError(f"no answer {answer_id!r} in the query log")

    def feedback(self, *, rating: Optional[str] = None, limit: int = 100) -> list[dict[str, Any]]:
        """Rated answers, newest first (only those rated ``rating``: positive, negative or neutral)."""
        return self.query_log.feedback(rating=rating, limit=limit)

    # -- approved question/SQL pairs (kb.business_database.examples) ----------------------------------
    def _sql_side(self) -> SQLEngine:
        engine = self.sql_engine
        if not isinstance(engine, SQLEngine):
            raise KBError(f"there is no business database to check the pair on: {engine.reason}")
        return engine

    def add_sql_example(
        self, question: str, sql: str, *, source: ExampleSource = "api", added_by: Optional[str] = None
    ) -> tuple[SQLExample, bool]:
        """Approve a question/SQL pair for the business database, once its SQL passes the read-only
        guard and runs there (:class:`ExampleRefused` says why not); the pair and whether it is new."""
        engine = self._sql_side()
        return self.sql_examples.add(
            engine.database, question, sql, verify=engine.verify_example, source=source, added_by=added_by
        )

    def import_sql_examples(
        self,
        pairs: str | PathLike[str] | Sequence[tuple[str, str]],
        *,
        source: ExampleSource = "file",
        added_by: Optional[str] = None,
    ) -> tuple[int, int, list[tuple[str, str]]]:
        """Approve every pair of a YAML file (``[{q: ..., sql: ...}]``) or of (question, SQL) ``pairs``
        that passes: (added, already there, [(question, why refused)])."""
        if isinstance(pairs, (str, PathLike)):
            pairs = load_sql_examples(str(pairs))
        engine = self._sql_side()
        return self.sql_examples.import_pairs(
            engine.database, pairs, verify=engine.verify_example, source=source, added_by=added_by
        )

    def list_sql_examples(self) -> list[SQLExample]:
        """The approved pairs of the business database, oldest first."""
        return self.sql_examples.pairs(self.settings.sql.database)

    def remove_sql_example(self, example_id: str) -> bool:
        """Remove one approved pair of the business database; whether there was one."""
        return self.sql_examples.remove(example_id, self.settings.sql.database)

    def check_sql_examples(self) -> list[tuple[SQLExample, str]]:
        """The approved pairs that no longer pass the guard or run (after a schema change), with why."""
        engine = self._sql_side()
        return self.sql_examples.check(engine.database, engine.verify_example)

    def sql_example_from_answer(
        self,
        answer_id: str,
        *,
        sql: Optional[str] = None,
        source: ExampleSource = "answer",
        added_by: Optional[str] = None,
        asker: Optional[str] = None,
    ) -> tuple[SQLExample, bool]:
        """Approve what a logged database answer ran for its question, or ``sql`` instead (a
        correction of it); with ``asker`` only an answer that key asked for."""
        logged = self.query_log.answer(answer_id, asker=asker)
        if logged is None:
            raise KBError(f"no answer {answer_id!r} in the query log")
        return self._example_from_logged(answer_id, logged, sql=sql, source=source, added_by=added_by)

    def _example_from_logged(
        self,
        answer_id: str,
        logged: dict[str, Any],
        *,
        sql: Optional[str],
        source: ExampleSource,
        added_by: Optional[str] = None,
    ) -> tuple[SQLExample, bool]:
        statement = sql or (logged["sql"] if not logged["refused"] else None)
        if not statement:
            raise KBError(
                f"answer {answer_id} ran no SQL (route {logged['route']}): give the statement that answers "
                "its question with --sql"
            )
        return self.add_sql_example(logged["question"], statement, source=source, added_by=added_by)

    def learn_from_rating(
        self,
        answer_id: str,
        rating: str,
        *,
        sql: Optional[str] = None,
        asker: Optional[str] = None,
        may_add: bool = True,
    ) -> Optional[str]:
        """What a rating teaches (``sql.learn_from_feedback``): a positive rating of a database answer
        adds its pair (auto) or says how to (approve); a negative one with ``sql`` adds the corrected
        pair. Without ``may_add`` (a caller who may not change the example store) a pair is only
        offered. A sentence saying what was done or offered; None when nothing applies."""
        mode = self.settings.sql.learn_from_feedback
        if mode == "auto" and not may_add:
            mode = "approve"
        if sql and not may_add:
            raise KBError("only an admin may add a corrected statement to the approved examples")
        logged = self.query_log.answer(answer_id, asker=asker)
        if logged is None or mode == "off":
            return None
        if rating == "negative" and sql:
            example, new = self._example_from_logged(answer_id, logged, sql=sql, source="feedback")
            return f"{'added' if new else 'already approved'}: example {example.id}, the corrected statement"
        if rating != "positive" or not logged["sql"] or logged["refused"]:
            return None
        if mode == "auto":
            example, new = self._example_from_logged(answer_id, logged, sql=None, source="feedback")
            return f"{'added' if new else 'already approved'}: example {example.id}"
        return f"to teach kb this statement: kb sql examples add --from-answer {answer_id}"

    # -- evaluation --------------------------------------------------------------------------------
    def evaluate(
        self,
        questions: str | PathLike[str] | Sequence[EvalQuestion],
        settings: Sequence[Setting] | None = None,
        *,
        answers: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> EvalReport:
        """Score retrieval settings (a :func:`kb.operations.evaluation.grid`; default: the configured one) on an
        operator's questions (an evaluation file or :class:`EvalQuestion` s); with ``answers``, also
        answer each question with the best setting. See :mod:`kb.operations.evaluation`."""
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
            engine.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
