"""``MariaDBVectorStore``: a LlamaIndex vector store on MariaDB 11.8's VECTOR type and HNSW index.

The chunks live in one table (:mod:`kb.stores.vector_schema`); beside it, ``<table>_lexical`` holds each
chunk's Porter stems under a FULLTEXT index (:mod:`kb.stores.lexical`), for full-text and hybrid search
with BM25 scores. Writes are batched ``INSERT ... ON DUPLICATE KEY UPDATE`` through the connector's
bulk ``executemany``, with vectors bound as little-endian float32 bytes; the chunks of one call are
committed in one transaction: a call writes all of its chunks or none. Dense queries use the index's
own shape (:mod:`kb.stores.dense`), HYBRID fuses the two rankings (:mod:`kb.stores.fusion`), MMR is
LlamaIndex's own over the stored vectors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Literal, Optional

import numpy as np
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import node_to_metadata_dict
from sqlalchemy.engine import URL

from kb.stores.connection import MariaDBConnection, StoreError, pool_from_params, quote_identifier, replica_read
from kb.stores.filters import compile_filters, json_path
from kb.stores.fusion import FusionStrategy
from kb.stores.lexical import Analyzer, BM25Params, LexicalIndex, text_hash
from kb.stores.sql_utils import as_matrix, batched, from_bytes, placeholders
from kb.stores.vector_schema import DOC_ID_MAX, ID_MAX, check_table, create_table
from kb.stores.vector_search import RETRIEVAL_KEY, ChunkSearch, SearchSettings, row_to_node

Distance = Literal["cosine", "euclidean"]
_WRITE_LOCK_WAIT = 3600.0  # seconds a writer waits for another writer of the same table


class MariaDBVectorStore(BasePydanticVectorStore):
    """LlamaIndex vector store on MariaDB >= 11.7 (VECTOR + HNSW), usable on its own.

    Build it with :meth:`from_params` (a URL or host/port/user/... parameters) or give it a
    :class:`~kb.stores.connection.MariaDBConnection` to share a pool with other stores.
    """

    stores_text: bool = True
    flat_metadata: bool = False

    table_name: str = Field(default="llama_index_nodes", description="table holding the chunks")
    embed_dim: int = Field(default=384, gt=0, le=16383, description="vector dimension")
    distance: Distance = Field(default="cosine", description="HNSW distance: cosine or euclidean")
    hnsw_m: int = Field(default=16, ge=3, le=200, description="HNSW graph degree M")
    ef_search: int = Field(default=40, ge=1, le=10000, description="HNSW search width (mhnsw_ef_search)")
    batch_size: int = Field(default=1000, ge=1, description="rows per executemany batch")
    full_text: bool = Field(default=True, description="keep the lexical (BM25) side for TEXT_SEARCH and HYBRID queries")
    exact_scan_max: int = Field(
        default=4000, ge=0, description="a restricted dense search passing at most this many rows is exact"
    )
    hybrid_fusion: FusionStrategy = Field(default="weighted", description="how HYBRID combines the two rankings")
    rrf_k: float = Field(default=60.0, gt=0, description="reciprocal rank fusion constant")
    rrf_weights: tuple[float, float] = Field(default=(1.0, 1.0), description="(vector, text) weights for rrf")
    both_boost: float = Field(default=0.0, ge=0, description="extra weight for chunks found by both lists")
    sparse_top_k: int = Field(default=100, ge=1, description="full-text candidates fused in HYBRID")
    vector_pool: int = Field(default=100, ge=1, description="vector candidates fused in HYBRID")
    text_candidates: int = Field(default=300, ge=1, description="FULLTEXT matches re-scored with BM25")
    mmr_pool: int = Field(default=40, ge=1, description="vector candidates MMR chooses from")
    bm25: BM25Params = Field(default_factory=BM25Params, description="BM25 k1 and b")
    parallel_threshold: int = Field(
        default=200, ge=1, description="from this many nodes, add() writes the lexical side on a second connection"
    )
    embed_model_name: Optional[str] = Field(default=None, description="stored with each vector")
    perform_setup: bool = Field(default=True, description="create the table when missing")

    _conn: MariaDBConnection = PrivateAttr()
    _table: str = PrivateAttr()
    _lexical: Optional[LexicalIndex] = PrivateAttr(default=None)

    def __init__(self, connection: MariaDBConnection, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._conn = connection
        self._table = quote_identifier(self.table_name)
        if self.full_text:
            self._lexical = LexicalIndex(connection, self.table_name, Analyzer())
        if self.perform_setup:
            self._setup()

    @classmethod
    def from_params(cls, url: str | URL | None = None, **kwargs: Any) -> MariaDBVectorStore:
        """The store on a connection pool of its own (:func:`~kb.stores.connection.pool_from_params`)."""
        connection, own = pool_from_params(url, **kwargs)
        return cls(connection, **own)

    @classmethod
    def class_name(cls) -> str:
        return "MariaDBVectorStore"

    @property
    def client(self) -> MariaDBConnection:
        return self._conn

    @property
    def connection(self) -> MariaDBConnection:
        return self._conn

    def _setup(self) -> None:
        self._conn.check_vector_support()
        with self._conn.cursor() as cur:
            create_table(cur, self._table, self.embed_dim, self.hnsw_m, self.distance)
            if self._lexical:
                self._lexical.create(cur)
        check_table(self._conn, self.table_name, self._table, self.embed_dim, self.distance)
        self.repair()

    # -- writes -------------------------------------------------------------------------------
    def _validate(self, nodes: Sequence[BaseNode]) -> np.ndarray:
        """Check every node and return the embeddings as float32; raises before anything is written."""
        vectors = []
        for node in nodes:
            if not isinstance(node.node_id, str) or not node.node_id or len(node.node_id) > ID_MAX:
                raise ValueError(f"node id {node.node_id!r} must be a non-empty string of at most {ID_MAX} characters")
            if node.ref_doc_id is not None and len(node.ref_doc_id) > DOC_ID_MAX:
                raise ValueError(f"node {node.node_id!r}: document id longer than {DOC_ID_MAX} characters")
            if node.embedding is None:
                raise ValueError(f"node {node.node_id!r} has no embedding; embed it before adding it to the store")
            if len(node.embedding) != self.embed_dim:
                raise ValueError(
                    f"node {node.node_id!r} has a {len(node.embedding)}-dimensional embedding; "
                    f"this store holds {self.embed_dim}-dimensional vectors"
                )
            vectors.append(node.embedding)
        matrix = as_matrix(vectors, self.embed_dim)
        if not np.isfinite(matrix).all():
            bad = next(n.node_id for n, row in zip(nodes, matrix) if not np.isfinite(row).all())
            raise ValueError(f"node {bad!r} has a NaN or infinite value in its embedding")
        return matrix

    def _rows(self, nodes: Sequence[BaseNode], matrix: np.ndarray) -> list[tuple]:
        rows = []
        for node, vector in zip(nodes, matrix):
            content = node_to_metadata_dict(node, remove_text=True, flat_metadata=False)
            text = node.get_content()
            rows.append(
                (
                    node.node_id,
                    node.ref_doc_id,
                    text,
                    text_hash(text),
                    json.dumps(node.metadata, ensure_ascii=False, default=str),
                    json.dumps(
                        {"_node_content": content["_node_content"], "_node_type": content["_node_type"]},
                        ensure_ascii=False,
                    ),
                    vector.tobytes(),
                    self.embed_model_name,
                )
            )
        return rows

    _UPSERT = (
        "INSERT INTO {table} (node_id, ref_doc_id, text, text_hash, metadata, node_content, embedding, embed_model) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE ref_doc_id = VALUES(ref_doc_id), "
        "text = VALUES(text), text_hash = VALUES(text_hash), metadata = VALUES(metadata), "
        "node_content = VALUES(node_content), embedding = VALUES(embedding), embed_model = VALUES(embed_model), "
        "updated_at = CURRENT_TIMESTAMP(6)"  # every write counts as a change, even of equal values (differences())
    )

    @property
    def _write_lock(self) -> str:
        """The named lock a parallel add holds between its two commits (see :meth:`repair`)."""
        return f"kb_write:{self._conn.url.database}.{self.table_name}"

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Upsert ``nodes``; returns their ids. All chunks are committed in one transaction.

        Every node is checked before anything is written. From ``parallel_threshold`` nodes on,
        the lexical side is analysed and written on a second connection while this one inserts
        into the vector index (the server maintains each index single-threaded; InnoDB tokenizes
        FULLTEXT rows at commit), and committed first, under the table's write lock. If the chunk
        transaction then fails, the lexical rows of these nodes are re-derived from the chunks table
        before the error propagates; if the process dies in between, :meth:`repair` does the same.
        """
        if not nodes:
            return []
        matrix = self._validate(nodes)
        sql = self._UPSERT.format(table=self._table)
        batches = self._batches(nodes)
        if len(nodes) < self.parallel_threshold or self._lexical is None:
            with self._conn.cursor() as cur:
                for start, end in batches:
                    if self._lexical:
                        self._lexical.upsert(cur, [(n.node_id, n.get_content()) for n in nodes[start:end]])
                    cur.executemany(sql, self._rows(nodes[start:end], matrix[start:end]))
            return [node.node_id for node in nodes]
        lexical = self._lexical

        def write_lexical() -> None:
            for start, end in batches:
                with self._conn.cursor() as lex_cur:
                    lexical.upsert(lex_cur, [(n.node_id, n.get_content()) for n in nodes[start:end]])

        with self._conn.named_lock(self._write_lock, _WRITE_LOCK_WAIT) as held:
            if not held:
                raise StoreError(
                    f"another writer has held table {self.table_name} for over "
                    f"{_WRITE_LOCK_WAIT:.0f} s; try again when it is done"
                )
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kb-lexical") as pool:
                lexical_done = pool.submit(write_lexical)
                try:
                    with self._conn.cursor() as cur:
                        for start, end in batches:
                            # serializing the next batch overlaps the lexical thread's server work
                            cur.executemany(sql, self._rows(nodes[start:end], matrix[start:end]))
                        lexical_done.result()  # a lexical failure rolls the chunks back too
                except BaseException:
                    wait([lexical_done])
                    self._resync_lexical([node.node_id for node in nodes])
                    raise
        return [node.node_id for node in nodes]

    def _batches(self, nodes: Sequence[BaseNode]) -> list[tuple[int, int]]:
        """(start, end) slices of at most ``batch_size`` nodes and about 8 MB of payload each, so
        that one bulk statement stays under the server's ``max_allowed_packet`` (16 MB default)."""
        budget = 8 * 1024 * 1024
        slices, start, size = [], 0, 0
        for i, node in enumerate(nodes):
            # text twice (chunk + serialized node) and metadata, as UTF-8 (<= 4 bytes a character)
            weight = self.embed_dim * 4 + 4 * (2 * len(node.get_content()) + len(str(node.metadata))) + 1024
            if weight > budget:
                raise ValueError(
                    f"node {node.node_id!r} is too large to store ({weight // 1024} KB); split it into smaller chunks"
                )
            if i > start and (i - start >= self.batch_size or size + weight > budget):
                slices.append((start, i))
                start, size = i, 0
            size += weight
        slices.append((start, len(nodes)))
        return slices

    def _resync_lexical(self, node_ids: Sequence[str]) -> None:
        """Make the lexical rows of ``node_ids`` match the chunks table again."""
        assert self._lexical is not None
        ids = list(dict.fromkeys(node_ids))
        with self._conn.cursor() as cur:
            present: dict[str, str] = {}
            for chunk in batched(ids):
                cur.execute(
                    f"SELECT node_id, text FROM {self._table} WHERE node_id IN ({placeholders(len(chunk))})",
                    tuple(chunk),
                )
                present.update(cur.fetchall())
            self._lexical.delete(cur, [i for i in ids if i not in present])
            self._lexical.upsert(cur, list(present.items()))

    def repair(self) -> tuple[int, int]:
        """Bring the lexical side back in line with the chunks after an interrupted add.

        Only what is provably out of line is touched: while a parallel add is between its two
        commits (it holds the table's write lock), its lexical rows look orphaned but are not, so
        repair then does nothing and leaves the work to the next opening. Returns (lexical rows
        removed, chunks re-analysed); both are 0 when all is in order (two indexed anti-joins).
        """
        if self._lexical is None:
            return 0, 0
        with self._conn.named_lock(self._write_lock, 0) as held:
            if not held:
                return 0, 0
            with self._conn.cursor() as cur:
                orphans, stale = self._lexical.out_of_sync(cur, self._table)
                self._lexical.delete(cur, orphans)
                self._lexical.upsert(cur, stale)
        return len(orphans), len(stale)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every chunk of one document (an indexed lookup)."""
        with self._conn.cursor() as cur:
            cur.execute(f"SELECT node_id FROM {self._table} WHERE ref_doc_id = ? FOR UPDATE", (ref_doc_id,))
            ids = [row[0] for row in cur.fetchall()]
            if self._lexical:
                self._lexical.delete(cur, ids)
            cur.execute(f"DELETE FROM {self._table} WHERE ref_doc_id = ?", (ref_doc_id,))

    def delete_nodes(
        self,
        node_ids: Optional[list[str]] = None,
        filters: Optional[MetadataFilters] = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete the chunks matching both ``node_ids`` and ``filters`` (either may be omitted).

        With neither, nothing is deleted: emptying the store is :meth:`clear`, never an accident.
        """
        if node_ids is None and (filters is None or not filters.filters):
            return
        with self._conn.cursor() as cur:
            for where, params in self._where_batches(node_ids, filters):
                cur.execute(f"SELECT node_id FROM {self._table} WHERE {where} FOR UPDATE", params)
                ids = [row[0] for row in cur.fetchall()]
                if self._lexical:
                    self._lexical.delete(cur, ids)
                for chunk in batched(ids):
                    cur.execute(
                        f"DELETE FROM {self._table} WHERE node_id IN ({placeholders(len(chunk))})", tuple(chunk)
                    )

    def clear(self) -> None:
        """Remove every chunk (the tables and their indexes stay)."""
        with self._conn.cursor() as cur:
            cur.execute(f"TRUNCATE TABLE {self._table}")
            if self._lexical:
                self._lexical.clear(cur)

    def drop(self) -> None:
        """Remove the tables themselves (chunks and lexical side): what ``kb reembed --drop-old`` does
        to a table of vectors no longer in use."""
        with self._conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {self._table}")
            if self._lexical:
                self._lexical.drop(cur)

    def differences(self, copy: MariaDBVectorStore) -> tuple[list[str], list[str]]:
        """Against ``copy``, a table holding this one's chunks under other vectors (same database):
        the ids of chunks missing there or changed here after they were copied (a later
        ``updated_at``), in table order; and the ids there of chunks that are no longer here."""
        stale = self._conn.fetchall(
            f"SELECT s.node_id FROM {self._table} s LEFT JOIN {copy._table} c ON c.node_id = s.node_id "
            "WHERE c.id IS NULL OR s.updated_at > c.updated_at ORDER BY s.id"
        )
        gone = self._conn.fetchall(
            f"SELECT c.node_id FROM {copy._table} c LEFT JOIN {self._table} s ON s.node_id = c.node_id "
            "WHERE s.id IS NULL ORDER BY c.id"
        )
        return [row[0] for row in stale], [row[0] for row in gone]

    # -- reads --------------------------------------------------------------------------------
    def _where_batches(
        self, node_ids: Optional[Sequence[str]], filters: Optional[MetadataFilters]
    ) -> Iterable[tuple[str, list[Any]]]:
        """WHERE clauses for node ids (in batches, to bound the statement size) and filters."""
        filter_sql, filter_params = compile_filters(filters)
        if node_ids is None:
            yield filter_sql, list(filter_params)
            return
        for chunk in batched(list(dict.fromkeys(node_ids))):
            yield f"node_id IN ({placeholders(len(chunk))}) AND {filter_sql}", [*chunk, *filter_params]

    @replica_read
    def get_nodes(
        self, node_ids: Optional[list[str]] = None, filters: Optional[MetadataFilters] = None
    ) -> list[BaseNode]:
        """The stored nodes (with their embeddings) matching ``node_ids`` and ``filters``."""
        nodes: list[BaseNode] = []
        with self._conn.cursor() as cur:
            for where, params in self._where_batches(node_ids, filters):
                cur.execute(
                    f"SELECT node_id, text, metadata, node_content, embedding FROM {self._table} "
                    f"WHERE {where} ORDER BY id",
                    params,
                )
                for node_id, text, metadata, content, embedding in cur.fetchall():
                    node = row_to_node(node_id, text, metadata, content)
                    node.embedding = from_bytes(embedding).tolist()
                    nodes.append(node)
        if node_ids is not None:
            order = {node_id: i for i, node_id in enumerate(node_ids)}
            nodes.sort(key=lambda n: order.get(n.node_id, len(order)))
        return nodes

    def ref_doc_values(self, key: str, prefix: Optional[str] = None) -> dict[str, Any]:
        """The ids of the documents that have chunks here, each with the value of metadata ``key`` in
        its chunks (None where they lack it); optionally only ids starting with ``prefix`` (matched
        literally: LIKE wildcards in it are escaped)."""
        where, params = "ref_doc_id IS NOT NULL", [json_path(key)]
        if prefix is not None:
            where = "ref_doc_id LIKE ? ESCAPE '\\\\'"
            params.append(prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        rows = self._conn.fetchall(
            f"SELECT ref_doc_id, MIN(JSON_VALUE(metadata, ?)) FROM {self._table} WHERE {where} GROUP BY ref_doc_id",
            params,
        )
        return {row[0]: row[1] for row in rows}

    @replica_read
    def distinct_metadata(self, key: str, limit: int = 1000, filters: Optional[MetadataFilters] = None) -> list[Any]:
        """The distinct values of one metadata key (e.g. the titles of the indexed documents) among
        the chunks that match ``filters``."""
        where, params = compile_filters(filters)
        rows = self._conn.fetchall(
            f"SELECT DISTINCT JSON_VALUE(metadata, ?) AS v FROM {self._table} WHERE {where} "
            f"HAVING v IS NOT NULL LIMIT {int(limit)}",
            (json_path(key), *params),
        )
        return [row[0] for row in rows]

    def node_ids_of(self, ref_doc_ids: Sequence[str]) -> dict[str, list[str]]:
        """The chunk ids of each document (an indexed lookup), for incremental re-indexing."""
        found: dict[str, list[str]] = {doc: [] for doc in ref_doc_ids}
        for chunk in batched(list(found)):
            for node_id, ref in self._conn.fetchall(
                f"SELECT node_id, ref_doc_id FROM {self._table} WHERE ref_doc_id IN ({placeholders(len(chunk))}) "
                "ORDER BY id",
                list(chunk),
            ):
                found[ref].append(node_id)
        return found

    @replica_read
    def count(self, filters: Optional[MetadataFilters] = None) -> int:
        where, params = compile_filters(filters)
        return int(self._conn.fetchall(f"SELECT COUNT(*) FROM {self._table} WHERE {where}", params)[0][0])

    def embedding_models(self) -> dict[Optional[str], int]:
        """How many chunks each embedding model produced: more than one key means mixed vectors."""
        rows = self._conn.fetchall(f"SELECT embed_model, COUNT(*) FROM {self._table} GROUP BY embed_model")
        return {model: int(n) for model, n in rows}

    # -- search: the modes live in kb.stores.vector_search --------------------------------------
    @replica_read
    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Run a query in any supported mode; ``kwargs`` override the store's search settings.

        Modes: DEFAULT (HNSW, exact when a filter leaves few rows), TEXT_SEARCH (BM25 over the
        FULLTEXT candidates), HYBRID (both, fused: ``fusion=``, ``rrf_k=``, ``weights=``,
        ``alpha`` of the query, ``both_boost=``, ``sparse_top_k`` and ``vector_pool=`` for the
        pools), MMR (``mmr_threshold`` = lambda, ``mmr_pool=``). Per-query settings:
        ``ef_search=``, ``exact_scan_max=``, ``text_candidates=``.
        """
        return self._chunk_search().query(query, **kwargs)

    def explain(self, query: VectorStoreQuery, **kwargs: Any) -> list[dict[str, Any]]:
        """MariaDB's EXPLAIN of the statement a DEFAULT :meth:`query` runs (is the index used?)."""
        return self._chunk_search().explain(query, **kwargs)

    def _chunk_search(self) -> ChunkSearch:
        settings = SearchSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(SearchSettings)})
        return ChunkSearch(self._conn, self.table_name, self._lexical, settings)

    # -- async twins: the driver is blocking, so each call runs in a worker thread ---------------
    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add, nodes, **kwargs)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    async def adelete_nodes(
        self, node_ids: Optional[list[str]] = None, filters: Optional[MetadataFilters] = None, **delete_kwargs: Any
    ) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)

    async def aget_nodes(
        self, node_ids: Optional[list[str]] = None, filters: Optional[MetadataFilters] = None
    ) -> list[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)

    async def acount(self, filters: Optional[MetadataFilters] = None) -> int:
        return await asyncio.to_thread(self.count, filters)


__all__ = ["MariaDBVectorStore", "RETRIEVAL_KEY", "StoreError"]
