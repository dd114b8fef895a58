"""The query modes of ``MariaDBVectorStore``: DEFAULT, TEXT_SEARCH, HYBRID and MMR.

The store builds a :class:`ChunkSearch` per query from its current settings. Dense search goes
through :mod:`kb.stores.dense` (index or exact scan), full-text ranking through :mod:`kb.stores.lexical`
(BM25), HYBRID fuses the two (:mod:`kb.stores.fusion`) and MMR is LlamaIndex's own
``get_top_k_mmr_embeddings`` over the stored vectors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
from llama_index.core.schema import BaseNode, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode, VectorStoreQueryResult
from llama_index.core.vector_stores.utils import metadata_dict_to_node

from kb.stores import dense
from kb.stores.connection import MariaDBConnection, quote_identifier
from kb.stores.filters import compile_filters
from kb.stores.fusion import Ranked, fuse
from kb.stores.lexical import BM25Params, LexicalIndex
from kb.stores.sql_utils import from_bytes, placeholders, to_bytes

RETRIEVAL_KEY = "retrieval"  # result metadata: which list(s) found a node, its rank and score in each
QUERY_OPTIONS = {
    "ef_search",
    "exact_scan_max",
    "text_candidates",
    "fusion",
    "rrf_k",
    "weights",
    "both_boost",
    "vector_pool",
    "mmr_pool",
    "mmr_threshold",
}


@dataclass(frozen=True)
class SearchSettings:
    """The store's search settings as they are when a query runs (the store's fields may change)."""

    embed_dim: int
    distance: str
    ef_search: int
    exact_scan_max: int
    hybrid_fusion: str
    rrf_k: float
    rrf_weights: tuple[float, float]
    both_boost: float
    sparse_top_k: int
    vector_pool: int
    text_candidates: int
    mmr_pool: int
    bm25: BM25Params


def row_to_node(node_id: str, text: str, metadata: Any, content: Any) -> BaseNode:
    """A stored row (node_id, text, metadata, node_content) as the LlamaIndex node it was written from."""
    try:
        stored = json.loads(content) if isinstance(content, (str, bytes)) else content
        node = metadata_dict_to_node(stored, text=text)
    except Exception:  # a row written by another tool: keep what we can
        node = TextNode(id_=node_id, text=text)
    node.metadata = json.loads(metadata) if isinstance(metadata, (str, bytes)) else dict(metadata or {})
    return node


class ChunkSearch:
    """One query's search over a chunks table and its lexical side (``None``: the store keeps none)."""

    def __init__(
        self,
        connection: MariaDBConnection,
        table_name: str,
        lexical: Optional[LexicalIndex],
        settings: SearchSettings,
    ) -> None:
        self._conn = connection
        self.table_name = table_name
        self._table = quote_identifier(table_name)
        self._lexical = lexical
        self.settings = settings

    def _vector_bytes(self, embedding: Optional[Sequence[float]]) -> bytes:
        if embedding is None:
            raise ValueError("this query mode needs query_embedding")
        if len(embedding) != self.settings.embed_dim:
            raise ValueError(
                f"query embedding has {len(embedding)} dimensions; this store holds {self.settings.embed_dim}"
            )
        return to_bytes(embedding)

    # -- queries ------------------------------------------------------------------------------
    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """:meth:`MariaDBVectorStore.query`: ``kwargs`` override the settings (:data:`QUERY_OPTIONS`)."""
        unknown = set(kwargs) - QUERY_OPTIONS
        if unknown:
            raise ValueError(
                f"unknown query option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(QUERY_OPTIONS))}"
            )
        top_k = (
            int(query.hybrid_top_k or query.similarity_top_k)
            if query.mode == VectorStoreQueryMode.HYBRID
            else int(query.similarity_top_k)
        )
        if top_k <= 0:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        mode = query.mode
        if mode == VectorStoreQueryMode.DEFAULT:
            return self._dense_result(query, top_k, kwargs)
        if mode in (VectorStoreQueryMode.TEXT_SEARCH, VectorStoreQueryMode.SPARSE):
            ranked = self._text_ranking(query, top_k, kwargs)
            return self._fetch_result(ranked.ids, ranked.scores)
        if mode == VectorStoreQueryMode.HYBRID:
            return self._hybrid_result(query, top_k, kwargs)
        if mode == VectorStoreQueryMode.MMR:
            return self._mmr_result(query, top_k, kwargs)
        raise NotImplementedError(
            f"query mode {mode.value!r} is not supported by MariaDBVectorStore "
            "(supported: default, text_search, sparse, hybrid, mmr)"
        )

    def _query_where(self, query: VectorStoreQuery, alias: str = "") -> tuple[str, list[Any]]:
        prefix = f"{alias}." if alias else ""
        clauses, params = [], []
        filter_sql, filter_params = compile_filters(query.filters, column=f"{prefix}`metadata`")
        clauses.append(filter_sql)
        params.extend(filter_params)
        # An empty list means "no restriction", as in every LlamaIndex store: VectorStoreIndex's
        # retriever passes node_ids=[] when the index keeps no node list of its own.
        for column, values in (("ref_doc_id", query.doc_ids), ("node_id", query.node_ids)):
            if values:
                values = list(dict.fromkeys(values))
                clauses.append(f"{prefix}{column} IN ({placeholders(len(values))})")
                params.extend(values)
        return " AND ".join(clauses), params

    def _dense_sql(self, query: VectorStoreQuery, k: int, kwargs: dict, columns: str) -> tuple[str, list[Any]]:
        where, params = self._query_where(query)
        vector = self._vector_bytes(query.query_embedding)
        planned = dense.plan(
            self._conn,
            self._table,
            self.table_name,
            where,
            params,
            k,
            int(kwargs.get("ef_search") or self.settings.ef_search),
            int(kwargs.get("exact_scan_max", self.settings.exact_scan_max)),
        )
        return dense.statement(self._table, self.settings.distance, columns, where, k, planned), [vector, *params]

    def _dense_result(self, query: VectorStoreQuery, k: int, kwargs: dict) -> VectorStoreQueryResult:
        sql, params = self._dense_sql(query, k, kwargs, "node_id, text, metadata, node_content")
        nodes, similarities, ids = [], [], []
        for node_id, text, metadata, content, distance in self._conn.fetchall(sql, params):
            nodes.append(row_to_node(node_id, text, metadata, content))
            similarities.append(dense.similarity(self.settings.distance, distance))
            ids.append(node_id)
        return VectorStoreQueryResult(nodes=nodes, similarities=similarities, ids=ids)

    def _dense_ranking(
        self, query: VectorStoreQuery, k: int, kwargs: dict, with_vectors: bool = False
    ) -> tuple[Ranked, dict[str, np.ndarray]]:
        sql, params = self._dense_sql(query, k, kwargs, "node_id, embedding" if with_vectors else "node_id")
        rows = self._conn.fetchall(sql, params)
        ranked = Ranked(
            ids=[r[0] for r in rows], scores=[dense.similarity(self.settings.distance, r[-1]) for r in rows]
        )
        return ranked, ({r[0]: from_bytes(r[1]) for r in rows} if with_vectors else {})

    def explain(self, query: VectorStoreQuery, **kwargs: Any) -> list[dict[str, Any]]:
        """The EXPLAIN rows of the statement :meth:`query` runs for ``query`` in DEFAULT mode."""
        sql, params = self._dense_sql(query, int(query.similarity_top_k), kwargs, "node_id")
        sql = sql.replace(" FOR SELECT ", " FOR EXPLAIN SELECT ", 1)
        with self._conn.cursor() as cur:
            cur.execute(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    def _require_lexical(self) -> LexicalIndex:
        if self._lexical is None:
            raise ValueError("this store was created with full_text=False: TEXT_SEARCH and HYBRID need full_text=True")
        return self._lexical

    def _text_ranking(self, query: VectorStoreQuery, k: int, kwargs: dict) -> Ranked:
        lexical = self._require_lexical()
        if not query.query_str:
            raise ValueError("a text search needs query_str")
        where, params = self._query_where(query, alias="n")
        return lexical.rank(
            self._conn,
            query.query_str,
            self._table,
            where,
            params,
            k,
            int(kwargs.get("text_candidates", self.settings.text_candidates)),
            self.settings.bm25,
        )

    def _hybrid_result(self, query: VectorStoreQuery, k: int, kwargs: dict) -> VectorStoreQueryResult:
        strategy = kwargs.get("fusion", self.settings.hybrid_fusion)
        sparse_k = int(query.sparse_top_k or self.settings.sparse_top_k)
        vector_k = int(kwargs.get("vector_pool", self.settings.vector_pool))
        dense_ranking, _ = self._dense_ranking(query, max(k, vector_k), kwargs)
        text = self._text_ranking(query, max(k, sparse_k), kwargs) if query.query_str else Ranked([], [])
        rescore: dict[str, dict[str, float]] = {}
        if strategy == "text_then_vector":
            rescore["vector"] = self._vector_scores(query, text.ids)
        elif strategy == "vector_then_text":
            rescore["text"] = self._require_lexical().scores_for(
                self._conn, query.query_str or "", dense_ranking.ids, self.settings.bm25
            )
        alpha = 0.5 if query.alpha is None else float(query.alpha)
        fused = fuse(
            dense_ranking,
            text,
            strategy=strategy,
            rrf_k=float(kwargs.get("rrf_k", self.settings.rrf_k)),
            weights=tuple(kwargs.get("weights", self.settings.rrf_weights)),
            alpha=alpha,
            both_boost=float(kwargs.get("both_boost", self.settings.both_boost)),
            rescore=rescore,
        )[:k]
        result = self._fetch_result([f.node_id for f in fused], [f.score for f in fused])
        for node, entry in zip(result.nodes or [], fused):
            node.metadata[RETRIEVAL_KEY] = {
                "lists": entry.lists,
                "ranks": entry.ranks,
                "scores": entry.scores,
                "fusion": strategy,
            }
            for excluded in (node.excluded_llm_metadata_keys, node.excluded_embed_metadata_keys):
                if RETRIEVAL_KEY not in excluded:
                    excluded.append(RETRIEVAL_KEY)
        return result

    def _vector_scores(self, query: VectorStoreQuery, node_ids: Sequence[str]) -> dict[str, float]:
        """Similarity of the query to each candidate's stored vector (one query for all)."""
        if not node_ids:
            return {}
        rows = self._conn.fetchall(
            f"SELECT node_id, {dense.distance_function(self.settings.distance)}(embedding, ?) FROM {self._table} "
            f"WHERE node_id IN ({placeholders(len(node_ids))})",
            [self._vector_bytes(query.query_embedding), *node_ids],
        )
        return {node_id: dense.similarity(self.settings.distance, distance) for node_id, distance in rows}

    def _mmr_result(self, query: VectorStoreQuery, k: int, kwargs: dict) -> VectorStoreQueryResult:
        """Maximal marginal relevance (LlamaIndex's) over a pool of nearest chunks' stored vectors."""
        pool = max(k, int(kwargs.get("mmr_pool", self.settings.mmr_pool)))
        ranked, vectors = self._dense_ranking(query, pool, kwargs, with_vectors=True)
        if not ranked.ids:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        lam = float(query.mmr_threshold if query.mmr_threshold is not None else kwargs.get("mmr_threshold", 0.5))
        if not 0.0 <= lam <= 1.0:
            raise ValueError("mmr_threshold (lambda) must be between 0 and 1")
        scores, ids = get_top_k_mmr_embeddings(
            list(map(float, query.query_embedding or [])),
            [vectors[i].tolist() for i in ranked.ids],
            similarity_top_k=k,
            embedding_ids=list(ranked.ids),
            mmr_threshold=lam,
        )
        return self._fetch_result(ids, scores)

    def _fetch_result(self, ids: Sequence[str], scores: Sequence[float]) -> VectorStoreQueryResult:
        """The nodes for ranked ids, in that order, with the given scores as similarities."""
        if not ids:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        rows = self._conn.fetchall(
            f"SELECT node_id, text, metadata, node_content FROM {self._table} "
            f"WHERE node_id IN ({placeholders(len(ids))})",
            list(ids),
        )
        by_id = {row[0]: row_to_node(*row) for row in rows}
        kept = [(i, s) for i, s in zip(ids, scores) if i in by_id]  # deleted meanwhile: skipped
        return VectorStoreQueryResult(
            nodes=[by_id[i] for i, _ in kept], similarities=[s for _, s in kept], ids=[i for i, _ in kept]
        )
