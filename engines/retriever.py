"""A LlamaIndex retriever over a vector store that embeds the question only when the mode needs it.

LlamaIndex's ``VectorIndexRetriever`` embeds every question, full-text search included, so the
embedding model (several seconds to load on a CPU) would load for ``kb search --mode text``, which
never uses a vector. This retriever builds the ``VectorStoreQuery`` itself: the embedding model is
called (and loaded, through the function it is given) for the dense, hybrid and MMR modes only, and
the embedding is left in the ``QueryBundle`` for what comes after retrieval (kb's context budget), so
that a question is embedded once per answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)


class StoreRetriever(BaseRetriever):
    """Chunks for a question from ``store`` in one query mode, with fixed options."""

    def __init__(
        self,
        store: BasePydanticVectorStore,
        embed_model: Callable[[], BaseEmbedding],
        *,
        mode: VectorStoreQueryMode = VectorStoreQueryMode.HYBRID,
        top_k: int = 5,
        filters: Optional[MetadataFilters] = None,
        alpha: Optional[float] = None,
        sparse_top_k: Optional[int] = None,
        mmr_threshold: Optional[float] = None,
        store_options: Optional[dict[str, Any]] = None,
        callback_manager: Optional[CallbackManager] = None,
    ) -> None:
        super().__init__(callback_manager=callback_manager)
        self.store = store
        self._embed_model = embed_model
        self.mode = mode
        self.top_k = top_k
        self.filters = filters
        self.alpha = alpha
        self.sparse_top_k = sparse_top_k
        self.mmr_threshold = mmr_threshold
        self.store_options = dict(store_options or {})

    @property
    def needs_embedding(self) -> bool:
        return self.mode not in (VectorStoreQueryMode.TEXT_SEARCH, VectorStoreQueryMode.SPARSE)

    def _query(self, bundle: QueryBundle, embedding: Optional[list[float]]) -> VectorStoreQuery:
        return VectorStoreQuery(
            query_embedding=embedding,
            query_str=bundle.query_str,
            similarity_top_k=self.top_k,
            mode=self.mode,
            filters=self.filters,
            alpha=self.alpha,
            sparse_top_k=self.sparse_top_k,
            hybrid_top_k=self.top_k,
            mmr_threshold=self.mmr_threshold,
        )

    @staticmethod
    def _hits(result: VectorStoreQueryResult) -> list[NodeWithScore]:
        nodes = result.nodes or []
        scores: list[Optional[float]] = list(result.similarities) if result.similarities else [None] * len(nodes)
        return [NodeWithScore(node=node, score=score) for node, score in zip(nodes, scores)]

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        embedding = query_bundle.embedding
        if self.needs_embedding and embedding is None:
            embedding = query_bundle.embedding = self._embed_model().get_query_embedding(query_bundle.query_str)
        return self._hits(self.store.query(self._query(query_bundle, embedding), **self.store_options))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        embedding = query_bundle.embedding
        if self.needs_embedding and embedding is None:
            embedding = query_bundle.embedding = await self._embed_model().aget_query_embedding(query_bundle.query_str)
        return self._hits(await self.store.aquery(self._query(query_bundle, embedding), **self.store_options))
