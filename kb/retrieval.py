"""Retrieval options (mode, top_k, filters, fusion settings) -> a LlamaIndex retriever and rerankers.

The configured ``retrieval`` section gives the defaults; every option can be overridden per call,
and a mistake (an unknown mode or option, a top_k out of range) is a :class:`~kb.errors.KBError`
naming it, not a silent default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import LLM
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.vector_stores.types import (
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQueryMode,
)

from kb.config import RetrievalSettings, Settings
from kb.engines.retriever import StoreRetriever
from kb.errors import KBError
from kb.stores import MariaDBVectorStore

MODES = {
    "dense": VectorStoreQueryMode.DEFAULT,
    "text": VectorStoreQueryMode.TEXT_SEARCH,
    "hybrid": VectorStoreQueryMode.HYBRID,
    "mmr": VectorStoreQueryMode.MMR,
}
_STORE_OPTIONS = {"fusion", "rrf_k", "both_boost", "vector_pool", "text_candidates", "ef_search"}
_OPTIONS = _STORE_OPTIONS | {"alpha", "sparse_top_k", "mmr_lambda"}


def filters_from(spec: MetadataFilters | Mapping[str, Any] | None) -> MetadataFilters | None:
    """``{"key": value}`` (equality, ANDed) or ready ``MetadataFilters``."""
    if spec is None or isinstance(spec, MetadataFilters):
        return spec
    return MetadataFilters(
        filters=[
            MetadataFilter(
                key=key, value=value, operator=FilterOperator.IN if isinstance(value, list) else FilterOperator.EQ
            )
            for key, value in spec.items()
        ]
    )


def build_retriever(
    defaults: RetrievalSettings,
    store: MariaDBVectorStore,
    embed_model: Callable[[], BaseEmbedding],
    *,
    top_k: int | None = None,
    mode: str | None = None,
    filters: MetadataFilters | Mapping[str, Any] | None = None,
    **options: Any,
) -> StoreRetriever:
    """A retriever over ``store`` with ``defaults`` and the given overrides (``fusion``, ``alpha``,
    ``rrf_k``, ``both_boost``, ``sparse_top_k``, ``vector_pool``, ``text_candidates``, ``ef_search``,
    ``mmr_lambda``). ``embed_model`` is called only by the modes that embed the question."""
    mode = mode or defaults.mode
    if mode not in MODES:
        raise KBError(f"unknown retrieval mode {mode!r}; choose one of {', '.join(MODES)}")
    if top_k is not None and not 1 <= int(top_k) <= 1000:
        raise KBError(f"top_k must be between 1 and 1000, got {top_k}")
    unknown = set(options) - _OPTIONS
    if unknown:
        raise KBError(f"unknown retrieval option(s): {', '.join(sorted(unknown))}")
    store_options = {key: options[key] for key in _STORE_OPTIONS if options.get(key) is not None}
    if "ef_search" not in store_options and defaults.ef_search:
        store_options["ef_search"] = defaults.ef_search
    return StoreRetriever(
        store,
        embed_model,
        mode=MODES[mode],
        top_k=top_k or defaults.top_k,
        filters=filters_from(filters),
        alpha=options.get("alpha", defaults.alpha),
        sparse_top_k=options.get("sparse_top_k", defaults.sparse_top_k),
        mmr_threshold=options.get("mmr_lambda", defaults.mmr_lambda) if mode == "mmr" else None,
        store_options=store_options,
    )


def candidates_to_retrieve(settings: Settings, top_k: int | None) -> int | None:
    """How many chunks the documents side retrieves for ``top_k`` (None: ``retrieval.top_k``): with a
    reranker, ``engine.rerank_candidates`` times as many, for it to choose ``top_k`` among them."""
    if not settings.engine.reranker:
        return top_k
    return (top_k or settings.retrieval.top_k) * settings.engine.rerank_candidates


def rerankers(settings: Settings, llm: Callable[[], LLM]) -> list[BaseNodePostprocessor]:
    """The configured reranker as LlamaIndex node postprocessors (none, the LLM, or a cross-encoder)."""
    reranker, top_n = settings.engine.reranker, settings.retrieval.top_k
    if not reranker:
        return []
    if reranker == "llm":
        from llama_index.core.postprocessor import LLMRerank

        return [LLMRerank(llm=llm(), top_n=top_n)]
    from llama_index.core.postprocessor import SentenceTransformerRerank

    return [SentenceTransformerRerank(model=reranker, top_n=top_n)]
