"""``KnowledgeBase``: the public Python API. Reads the configuration, builds the stores, the models
and the engines, and exposes what users do: index, retrieve, ask, chat.

Everything heavy (the database connection, the models) is created on first use, so that building a
``KnowledgeBase`` is cheap and a mistake in one part does not break commands that do not need it.
"""

from __future__ import annotations

from functools import cached_property
from os import PathLike
from typing import Any, Mapping

from llama_index.core import VectorStoreIndex
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import (
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQueryMode,
)

from kb import models
from kb.config import Settings, load_settings
from kb.database import connect
from kb.errors import KBError
from kb.indexing import DirectoryIndexer, IndexReport
from stores import MariaDBConnection, MariaDBKVStore, MariaDBVectorStore

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
    def embed_model_name(self) -> str:
        if self._embed_model is None:
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
        if not question or not question.strip():
            raise KBError("the question is empty")
        return self.retriever(**options).retrieve(QueryBundle(question))

    async def aretrieve(self, question: str, **options: Any) -> list[NodeWithScore]:
        if not question or not question.strip():
            raise KBError("the question is empty")
        return await self.retriever(**options).aretrieve(QueryBundle(question))

    # -- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        if "connection" in self.__dict__:
            self.connection.dispose()

    def __enter__(self) -> "KnowledgeBase":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
