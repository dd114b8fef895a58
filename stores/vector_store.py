"""``MariaDBVectorStore``: a LlamaIndex vector store on MariaDB 11.8's VECTOR type and HNSW index.

One table holds the chunks: a unique node id (re-adding a node replaces it), the owning document id
in its own indexed column, the text (MEDIUMTEXT: 16 MB), user metadata as JSON (what filters see),
the serialized node, ``VECTOR(dim) NOT NULL`` with a ``VECTOR INDEX``, the embedding model's name and
timestamps. Beside it, ``<table>_lexical`` holds each chunk's Porter stems under a FULLTEXT index
(see :mod:`stores.lexical`), for full-text and hybrid search with BM25 scores. The primary key is an integer because a vector index needs a primary
key of at most 256 bytes; the node id is a separate unique key so that ids can be any string.

Writes are batched ``INSERT ... ON DUPLICATE KEY UPDATE`` through the connector's bulk
``executemany``, with vectors bound as little-endian float32 bytes; the chunks of one call are
committed in one transaction: a call writes all of its chunks or none. Queries use the index's own shape,
``ORDER BY VEC_DISTANCE_<metric>(embedding, ?) LIMIT k``.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor, wait
import json
import re
from typing import Any, Iterable, List, Literal, Optional, Sequence

import numpy as np
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import BaseNode, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from stores.connection import MariaDBConnection, SchemaMismatch, StoreError, quote_identifier
from stores.filters import compile_filters
from stores.fusion import FusionStrategy, Ranked, fuse
from stores.lexical import Analyzer, BM25Params, LexicalIndex, text_hash

Distance = Literal["cosine", "euclidean"]
_ID_MAX = 255
_DOC_ID_MAX = 512  # document ids are often paths; 512 utf8mb4 characters still fit an index key
_IN_BATCH = 1000
RETRIEVAL_KEY = "retrieval"  # result metadata: which list(s) found a node, its rank and score in each
_QUERY_OPTIONS = {"ef_search", "exact_scan_max", "text_candidates", "fusion", "rrf_k", "weights",
                  "both_boost", "vector_pool", "mmr_pool", "mmr_threshold"}
_COLUMNS = ("id", "node_id", "ref_doc_id", "text", "text_hash", "metadata", "node_content", "embedding",
            "embed_model", "created_at", "updated_at")


class MariaDBVectorStore(BasePydanticVectorStore):
    """LlamaIndex vector store on MariaDB >= 11.7 (VECTOR + HNSW), usable on its own.

    Build it with :meth:`from_params` (a URL or host/port/user/... parameters) or give it a
    :class:`~stores.connection.MariaDBConnection` to share a pool with other stores.
    """

    stores_text: bool = True
    flat_metadata: bool = False

    table_name: str = Field(default="llama_index_nodes", description="table holding the chunks")
    embed_dim: int = Field(default=384, gt=0, le=16383, description="vector dimension")
    distance: Distance = Field(default="cosine", description="HNSW distance: cosine or euclidean")
    hnsw_m: int = Field(default=16, ge=3, le=200, description="HNSW graph degree M")
    ef_search: int = Field(default=40, ge=1, le=10000, description="HNSW search width (mhnsw_ef_search)")
    batch_size: int = Field(default=1000, ge=1, description="rows per executemany batch")
    full_text: bool = Field(
        default=True, description="keep the lexical (BM25) side for TEXT_SEARCH and HYBRID queries"
    )
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
    def from_params(
        cls,
        url: Optional[str] = None,
        *,
        host: Optional[str] = None,
        port: Optional[int] = None,
        user: Optional[str] = None,
        password: Optional[str] = None,
        database: Optional[str] = None,
        unix_socket: Optional[str] = None,
        pool_size: int = 5,
        connect_timeout: int = 5,
        **kwargs: Any,
    ) -> "MariaDBVectorStore":
        """Connect and (with ``perform_setup``, the default) create or check the table."""
        connection = MariaDBConnection.from_params(
            url, host=host, port=port, user=user, password=password, database=database,
            unix_socket=unix_socket, pool_size=pool_size, connect_timeout=connect_timeout,
        )
        return cls(connection, **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "MariaDBVectorStore"

    @property
    def client(self) -> MariaDBConnection:
        return self._conn

    @property
    def connection(self) -> MariaDBConnection:
        return self._conn

    # -- schema -------------------------------------------------------------------------------
    @property
    def _distance_fn(self) -> str:
        return "VEC_DISTANCE_COSINE" if self.distance == "cosine" else "VEC_DISTANCE_EUCLIDEAN"

    def _setup(self) -> None:
        self._conn.check_vector_support()
        with self._conn.cursor() as cur:
            cur.execute(
                f"""CREATE TABLE IF NOT EXISTS {self._table} (
                    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                    node_id VARCHAR({_ID_MAX}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
                    ref_doc_id VARCHAR({_DOC_ID_MAX}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
                    text MEDIUMTEXT CHARACTER SET utf8mb4 NOT NULL,
                    text_hash BINARY(16) NOT NULL,
                    metadata JSON NOT NULL,
                    node_content JSON NOT NULL,
                    embedding VECTOR({int(self.embed_dim)}) NOT NULL,
                    embed_model VARCHAR(255) NULL,
                    created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
                        ON UPDATE CURRENT_TIMESTAMP(6),
                    UNIQUE KEY node_id (node_id),
                    KEY ref_doc_id (ref_doc_id),
                    VECTOR INDEX embedding (embedding) M={int(self.hnsw_m)} DISTANCE={self.distance}
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
            )
            if self._lexical:
                self._lexical.create(cur)
        self._check_schema()
        self.repair()

    def _check_schema(self) -> None:
        """Refuse a table whose dimension, distance or columns differ from this store's."""
        with self._conn.cursor() as cur:
            cur.execute(f"SHOW CREATE TABLE {self._table}")
            ddl = cur.fetchone()[1]
        missing = [c for c in _COLUMNS if not re.search(rf"^\s*`{c}`", ddl, re.M)]
        if missing:
            raise SchemaMismatch(
                f"table {self.table_name} exists but was not created by MariaDBVectorStore "
                f"(missing columns: {', '.join(missing)}); choose another table_name"
            )
        dim = re.search(r"`embedding` vector\((\d+)\)", ddl, re.I)
        if dim and int(dim[1]) != self.embed_dim:
            raise SchemaMismatch(
                f"table {self.table_name} holds {dim[1]}-dimensional vectors but this store was given "
                f"embed_dim={self.embed_dim} (a different embedding model?); use another table_name, "
                f"or re-index into a new table"
            )
        distance = re.search(r"VECTOR KEY[^\n]*`?DISTANCE`?=`?(\w+)", ddl, re.I)
        found = distance[1].lower() if distance else "euclidean"
        if found != self.distance:
            raise SchemaMismatch(
                f"table {self.table_name} has a {found} vector index but this store was given "
                f"distance={self.distance!r}; use distance={found!r} or another table_name"
            )

    # -- writes -------------------------------------------------------------------------------
    def _validate(self, nodes: Sequence[BaseNode]) -> np.ndarray:
        """Check every node and return the embeddings as float32; raises before anything is written."""
        vectors = []
        for node in nodes:
            if not isinstance(node.node_id, str) or not node.node_id or len(node.node_id) > _ID_MAX:
                raise ValueError(f"node id {node.node_id!r} must be a non-empty string of at most {_ID_MAX} characters")
            if node.ref_doc_id is not None and len(node.ref_doc_id) > _DOC_ID_MAX:
                raise ValueError(f"node {node.node_id!r}: document id longer than {_DOC_ID_MAX} characters")
            if node.embedding is None:
                raise ValueError(f"node {node.node_id!r} has no embedding; embed it before adding it to the store")
            if len(node.embedding) != self.embed_dim:
                raise ValueError(
                    f"node {node.node_id!r} has a {len(node.embedding)}-dimensional embedding; "
                    f"this store holds {self.embed_dim}-dimensional vectors"
                )
            vectors.append(node.embedding)
        matrix = np.asarray(vectors, dtype="<f4").reshape(len(nodes), self.embed_dim)
        if not np.isfinite(matrix).all():
            bad = next(n.node_id for n, row in zip(nodes, matrix) if not np.isfinite(row).all())
            raise ValueError(f"node {bad!r} has a NaN or infinite value in its embedding")
        return matrix

    def _rows(self, nodes: Sequence[BaseNode], matrix: np.ndarray) -> list[tuple]:
        rows = []
        for node, vector in zip(nodes, matrix):
            content = node_to_metadata_dict(node, remove_text=True, flat_metadata=False)
            text = node.get_content()
            rows.append((
                node.node_id,
                node.ref_doc_id,
                text,
                text_hash(text),
                json.dumps(node.metadata, ensure_ascii=False, default=str),
                json.dumps({"_node_content": content["_node_content"], "_node_type": content["_node_type"]},
                           ensure_ascii=False),
                vector.tobytes(),
                self.embed_model_name,
            ))
        return rows

    _UPSERT = (
        "INSERT INTO {table} (node_id, ref_doc_id, text, text_hash, metadata, node_content, embedding, embed_model) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE ref_doc_id = VALUES(ref_doc_id), "
        "text = VALUES(text), text_hash = VALUES(text_hash), metadata = VALUES(metadata), "
        "node_content = VALUES(node_content), embedding = VALUES(embedding), embed_model = VALUES(embed_model)"
    )

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> List[str]:
        """Upsert ``nodes``; returns their ids. All chunks are committed in one transaction.

        Every node is checked before anything is written. From ``parallel_threshold`` nodes on,
        the lexical side is analysed and written on a second connection while this one inserts
        into the vector index (the server maintains each index single-threaded; InnoDB tokenizes
        FULLTEXT rows at commit), and committed first. If the chunk transaction then fails, the
        lexical rows of these nodes are re-derived from the chunks table before the error
        propagates; if the process dies in between, :meth:`repair` (run whenever a store is
        opened) does the same.
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

        def write_lexical() -> None:
            for start, end in batches:
                with self._conn.cursor() as lex_cur:
                    self._lexical.upsert(lex_cur, [(n.node_id, n.get_content()) for n in nodes[start:end]])

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
                raise ValueError(f"node {node.node_id!r} is too large to store ({weight // 1024} KB); split it into smaller chunks")
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
            for start in range(0, len(ids), _IN_BATCH):
                chunk = ids[start:start + _IN_BATCH]
                cur.execute(f"SELECT node_id, text FROM {self._table} WHERE node_id IN ({', '.join('?' * len(chunk))})",
                            tuple(chunk))
                present.update(cur.fetchall())
            self._lexical.delete(cur, [i for i in ids if i not in present])
            self._lexical.upsert(cur, list(present.items()))

    def repair(self) -> tuple[int, int]:
        """Bring the lexical side back in line with the chunks after an interrupted add.

        Returns (lexical rows removed, chunks re-analysed); both are 0 when all is in order, which
        costs two indexed anti-joins.
        """
        if self._lexical is None:
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
        node_ids: Optional[List[str]] = None,
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
                for start in range(0, len(ids), _IN_BATCH):
                    chunk = ids[start:start + _IN_BATCH]
                    cur.execute(f"DELETE FROM {self._table} WHERE node_id IN ({', '.join('?' * len(chunk))})",
                                tuple(chunk))

    def clear(self) -> None:
        """Remove every chunk (the tables and their indexes stay)."""
        with self._conn.cursor() as cur:
            cur.execute(f"TRUNCATE TABLE {self._table}")
            if self._lexical:
                self._lexical.clear(cur)

    # -- reads --------------------------------------------------------------------------------
    def _where_batches(
        self, node_ids: Optional[Sequence[str]], filters: Optional[MetadataFilters]
    ) -> Iterable[tuple[str, list[Any]]]:
        """WHERE clauses for node ids (in batches, to bound the statement size) and filters."""
        filter_sql, filter_params = compile_filters(filters)
        if node_ids is None:
            yield filter_sql, list(filter_params)
            return
        ids = list(dict.fromkeys(node_ids))
        for start in range(0, len(ids), _IN_BATCH):
            chunk = ids[start:start + _IN_BATCH]
            yield (f"node_id IN ({', '.join('?' * len(chunk))}) AND {filter_sql}",
                   [*chunk, *filter_params])

    def get_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None
    ) -> List[BaseNode]:
        """The stored nodes (with their embeddings) matching ``node_ids`` and ``filters``."""
        nodes: list[BaseNode] = []
        with self._conn.cursor() as cur:
            for where, params in self._where_batches(node_ids, filters):
                cur.execute(
                    f"SELECT node_id, text, metadata, node_content, embedding FROM {self._table} "
                    f"WHERE {where} ORDER BY id", params,
                )
                for node_id, text, metadata, content, embedding in cur.fetchall():
                    node = self._to_node(node_id, text, metadata, content)
                    node.embedding = np.frombuffer(embedding, dtype="<f4").tolist()
                    nodes.append(node)
        if node_ids is not None:
            order = {node_id: i for i, node_id in enumerate(node_ids)}
            nodes.sort(key=lambda n: order.get(n.node_id, len(order)))
        return nodes

    def ref_doc_ids(self, prefix: Optional[str] = None) -> list[str]:
        """The ids of the documents that have chunks here, optionally only those starting with
        ``prefix`` (matched literally: LIKE wildcards in it are escaped)."""
        if prefix is None:
            rows = self._conn.fetchall(f"SELECT DISTINCT ref_doc_id FROM {self._table} WHERE ref_doc_id IS NOT NULL")
        else:
            pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            rows = self._conn.fetchall(
                f"SELECT DISTINCT ref_doc_id FROM {self._table} WHERE ref_doc_id LIKE ? ESCAPE '\\\\'", (pattern,))
        return [row[0] for row in rows]

    def distinct_metadata(self, key: str, limit: int = 1000) -> list[Any]:
        """The distinct values of one metadata key (e.g. the titles of the indexed documents)."""
        from stores.filters import json_path

        rows = self._conn.fetchall(
            f"SELECT DISTINCT JSON_VALUE(metadata, ?) AS v FROM {self._table} HAVING v IS NOT NULL LIMIT {int(limit)}",
            (json_path(key),))
        return [row[0] for row in rows]

    def node_ids_of(self, ref_doc_ids: Sequence[str]) -> dict[str, list[str]]:
        """The chunk ids of each document (an indexed lookup), for incremental re-indexing."""
        found: dict[str, list[str]] = {doc: [] for doc in ref_doc_ids}
        docs = list(found)
        for start in range(0, len(docs), _IN_BATCH):
            chunk = docs[start:start + _IN_BATCH]
            for node_id, ref in self._conn.fetchall(
                    f"SELECT node_id, ref_doc_id FROM {self._table} WHERE ref_doc_id IN ({', '.join('?' * len(chunk))}) "
                    "ORDER BY id", chunk):
                found[ref].append(node_id)
        return found

    def count(self, filters: Optional[MetadataFilters] = None) -> int:
        where, params = compile_filters(filters)
        return int(self._conn.fetchall(f"SELECT COUNT(*) FROM {self._table} WHERE {where}", params)[0][0])

    def embedding_models(self) -> dict[Optional[str], int]:
        """How many chunks each embedding model produced: more than one key means mixed vectors."""
        rows = self._conn.fetchall(f"SELECT embed_model, COUNT(*) FROM {self._table} GROUP BY embed_model")
        return {model: int(n) for model, n in rows}

    def _to_node(self, node_id: str, text: str, metadata: Any, content: Any) -> BaseNode:
        try:
            stored = json.loads(content) if isinstance(content, (str, bytes)) else content
            node = metadata_dict_to_node(stored, text=text)
        except Exception:  # a row written by another tool: keep what we can
            node = TextNode(id_=node_id, text=text)
        node.metadata = json.loads(metadata) if isinstance(metadata, (str, bytes)) else dict(metadata or {})
        return node

    def _similarity(self, distance: float) -> float:
        if self.distance == "cosine":
            return 1.0 - float(distance)
        return 1.0 / (1.0 + float(distance))

    def _vector_bytes(self, embedding: Optional[Sequence[float]]) -> bytes:
        if embedding is None:
            raise ValueError("this query mode needs query_embedding")
        vector = np.asarray(embedding, dtype="<f4")
        if vector.shape != (self.embed_dim,):
            raise ValueError(f"query embedding has {vector.size} dimensions; this store holds {self.embed_dim}")
        return vector.tobytes()

    # -- queries ------------------------------------------------------------------------------
    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Run a query in any supported mode; ``kwargs`` override the store's search settings.

        Modes: DEFAULT (HNSW, exact when a filter leaves few rows), TEXT_SEARCH (BM25 over the
        FULLTEXT candidates), HYBRID (both, fused: ``fusion=``, ``rrf_k=``, ``weights=``,
        ``alpha`` of the query, ``both_boost=``, ``sparse_top_k`` and ``vector_pool=`` for the
        pools), MMR (``mmr_threshold`` = lambda, ``mmr_pool=``). Per-query settings:
        ``ef_search=``, ``exact_scan_max=``, ``text_candidates=``.
        """
        unknown = set(kwargs) - _QUERY_OPTIONS
        if unknown:
            raise ValueError(f"unknown query option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_QUERY_OPTIONS))}")
        top_k = int(query.hybrid_top_k or query.similarity_top_k) if query.mode == VectorStoreQueryMode.HYBRID \
            else int(query.similarity_top_k)
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
                clauses.append(f"{prefix}{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        return " AND ".join(clauses), params

    def _dense_plan(self, where: str, params: list[Any], k: int, kwargs: dict) -> tuple[bool, int]:
        """Choose between the HNSW index and an exact scan for a restricted dense search.

        MariaDB applies WHERE to what the graph search yields, so a selective restriction
        (metadata filter, doc_ids, node_ids) can return worse neighbours than the true nearest
        among the rows that pass. The rule:

        1. count the rows that pass, stopping at ``25 * exact_scan_max`` (a LIMIT-ed subquery, so
           an unselective filter is counted cheaply; ``doc_ids``/``node_ids`` use their indexes);
        2. at most ``exact_scan_max`` rows (default 4000): scan them exactly, without the index
           (distances for a few thousand rows cost a few milliseconds and the answer is exact);
        3. more: use the index with ``ef_search`` widened by the inverse of the share of rows that
           pass (capped at 25x and at 10,000), so that the graph search looks at about as many
           qualifying rows as an unfiltered search would.

        Returns (exact?, ef_search).
        """
        ef = int(kwargs.get("ef_search") or self.ef_search)
        if not 1 <= ef <= 10000:
            raise ValueError("ef_search must be between 1 and 10000")
        ef = max(ef, k)
        if where == "TRUE":
            return False, min(ef, 10000)
        exact_max = int(kwargs.get("exact_scan_max", self.exact_scan_max))
        cap = 25 * max(exact_max, 1)
        matching = int(self._conn.fetchall(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM {self._table} WHERE {where} LIMIT {cap}) AS passing", params)[0][0])
        if matching <= exact_max:
            return True, ef
        total = max(self._approximate_rows(), matching)
        widen = min(25.0, total / matching)
        return False, int(min(10000, ef * widen))

    def _approximate_rows(self) -> int:
        rows = self._conn.fetchall(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
            (self.table_name,))
        return int(rows[0][0] or 0) if rows else 0

    def _dense_sql(self, query: VectorStoreQuery, k: int, kwargs: dict, columns: str) -> tuple[str, list[Any]]:
        where, params = self._query_where(query)
        exact, ef = self._dense_plan(where, params, k, kwargs)
        hint = " IGNORE INDEX (embedding)" if exact else ""
        sql = (
            f"SET STATEMENT mhnsw_ef_search = {ef} FOR "
            f"SELECT {columns}, {self._distance_fn}(embedding, ?) AS distance "
            f"FROM {self._table}{hint} WHERE {where} ORDER BY distance LIMIT {int(k)}"
        )
        return sql, [self._vector_bytes(query.query_embedding), *params]

    def _dense_result(self, query: VectorStoreQuery, k: int, kwargs: dict) -> VectorStoreQueryResult:
        sql, params = self._dense_sql(query, k, kwargs, "node_id, text, metadata, node_content")
        nodes, similarities, ids = [], [], []
        for node_id, text, metadata, content, distance in self._conn.fetchall(sql, params):
            nodes.append(self._to_node(node_id, text, metadata, content))
            similarities.append(self._similarity(distance))
            ids.append(node_id)
        return VectorStoreQueryResult(nodes=nodes, similarities=similarities, ids=ids)

    def _dense_ranking(self, query: VectorStoreQuery, k: int, kwargs: dict, with_vectors: bool = False) -> tuple[Ranked, dict[str, np.ndarray]]:
        sql, params = self._dense_sql(query, k, kwargs, "node_id, embedding" if with_vectors else "node_id")
        rows = self._conn.fetchall(sql, params)
        ranked = Ranked(ids=[r[0] for r in rows], scores=[self._similarity(r[-1]) for r in rows])
        vectors = {r[0]: np.frombuffer(r[1], dtype="<f4") for r in rows} if with_vectors else {}
        return ranked, vectors

    def explain(self, query: VectorStoreQuery, **kwargs: Any) -> list[dict[str, Any]]:
        """MariaDB's EXPLAIN of the statement a DEFAULT :meth:`query` runs (is the index used?)."""
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

    def _bm25_scores(self, cur: Any, stems: list[str], candidates: Sequence[tuple[str, str, int]]) -> dict[str, float]:
        lexical = self._require_lexical()
        docs, avg_length, version = lexical.collection_stats(cur)
        df = lexical.document_frequencies(cur, stems, version)
        return {node_id: lexical.bm25(stems, doc_stems, length, df, docs, avg_length, self.bm25)
                for node_id, doc_stems, length in candidates}

    def _text_ranking(self, query: VectorStoreQuery, k: int, kwargs: dict) -> Ranked:
        """BM25 ranking: FULLTEXT finds ``text_candidates`` candidates, BM25 orders them."""
        lexical = self._require_lexical()
        if not query.query_str:
            raise ValueError("a text search needs query_str")
        stems = lexical.analyzer.stems(query.query_str)
        if not stems:
            return Ranked(ids=[], scores=[])
        pool = max(k, int(kwargs.get("text_candidates", self.text_candidates)))
        where, params = self._query_where(query, alias="n")
        match = " ".join(dict.fromkeys(stems))
        # Restrictions live on the chunks table; without any, the join is left out. Orphan lexical
        # rows (an interrupted add) are then possible candidates, and _fetch_result drops them.
        join = f"JOIN {self._table} n ON n.node_id = l.node_id " if where != "TRUE" else ""
        with self._conn.cursor() as cur:
            cur.execute(
                f"SELECT l.node_id, l.stems, l.length FROM {lexical.table} l {join}"
                f"WHERE MATCH(l.stems) AGAINST (? IN NATURAL LANGUAGE MODE) AND {where} "
                f"ORDER BY MATCH(l.stems) AGAINST (? IN NATURAL LANGUAGE MODE) DESC LIMIT {pool}",
                (match, *params, match),
            )
            candidates = cur.fetchall()
            scores = self._bm25_scores(cur, stems, candidates)
        best = sorted(scores.items(), key=lambda item: -item[1])[:k]
        return Ranked(ids=[node_id for node_id, _ in best], scores=[score for _, score in best])

    def _hybrid_result(self, query: VectorStoreQuery, k: int, kwargs: dict) -> VectorStoreQueryResult:
        strategy = kwargs.get("fusion", self.hybrid_fusion)
        sparse_k = int(query.sparse_top_k or self.sparse_top_k)
        vector_k = int(kwargs.get("vector_pool", self.vector_pool))
        dense, _ = self._dense_ranking(query, max(k, vector_k), kwargs)
        text = self._text_ranking(query, max(k, sparse_k), kwargs) if query.query_str else Ranked([], [])
        rescore: dict[str, dict[str, float]] = {}
        if strategy == "text_then_vector":
            rescore["vector"] = self._vector_scores(query, text.ids)
        elif strategy == "vector_then_text":
            rescore["text"] = self._bm25_for(query, dense.ids)
        alpha = 0.5 if query.alpha is None else float(query.alpha)
        fused = fuse(dense, text, strategy=strategy, rrf_k=float(kwargs.get("rrf_k", self.rrf_k)),
                     weights=tuple(kwargs.get("weights", self.rrf_weights)), alpha=alpha,
                     both_boost=float(kwargs.get("both_boost", self.both_boost)), rescore=rescore)[:k]
        result = self._fetch_result([f.node_id for f in fused], [f.score for f in fused])
        for node, entry in zip(result.nodes, fused):
            node.metadata[RETRIEVAL_KEY] = {"lists": entry.lists, "ranks": entry.ranks, "scores": entry.scores,
                                            "fusion": strategy}
            for excluded in (node.excluded_llm_metadata_keys, node.excluded_embed_metadata_keys):
                if RETRIEVAL_KEY not in excluded:
                    excluded.append(RETRIEVAL_KEY)
        return result

    def _vector_scores(self, query: VectorStoreQuery, node_ids: Sequence[str]) -> dict[str, float]:
        """Similarity of the query to each candidate's stored vector (one query for all)."""
        if not node_ids:
            return {}
        q = self._vector_bytes(query.query_embedding)
        rows = self._conn.fetchall(
            f"SELECT node_id, {self._distance_fn}(embedding, ?) FROM {self._table} "
            f"WHERE node_id IN ({', '.join('?' * len(node_ids))})", [q, *node_ids])
        return {node_id: self._similarity(distance) for node_id, distance in rows}

    def _bm25_for(self, query: VectorStoreQuery, node_ids: Sequence[str]) -> dict[str, float]:
        """BM25 of each candidate for the query (0 when it shares no stem with it)."""
        lexical = self._require_lexical()
        stems = lexical.analyzer.stems(query.query_str or "")
        if not node_ids or not stems:
            return {node_id: 0.0 for node_id in node_ids}
        with self._conn.cursor() as cur:
            cur.execute(f"SELECT node_id, stems, length FROM {lexical.table} "
                        f"WHERE node_id IN ({', '.join('?' * len(node_ids))})", tuple(node_ids))
            return self._bm25_scores(cur, stems, cur.fetchall())

    def _mmr_result(self, query: VectorStoreQuery, k: int, kwargs: dict) -> VectorStoreQueryResult:
        """Maximal marginal relevance over a candidate pool, from the stored vectors."""
        pool = max(k, int(kwargs.get("mmr_pool", self.mmr_pool)))
        dense, vectors = self._dense_ranking(query, pool, kwargs, with_vectors=True)
        if not dense.ids:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        lam = float(query.mmr_threshold if query.mmr_threshold is not None else kwargs.get("mmr_threshold", 0.5))
        if not 0.0 <= lam <= 1.0:
            raise ValueError("mmr_threshold (lambda) must be between 0 and 1")
        matrix = np.stack([vectors[i] for i in dense.ids]).astype(np.float64)
        relevance = np.asarray(dense.scores)
        if self.distance == "cosine":
            unit = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
            pairwise = unit @ unit.T
        else:
            pairwise = 1.0 / (1.0 + np.linalg.norm(matrix[:, None, :] - matrix[None, :, :], axis=2))
        chosen: list[int] = []
        scores: list[float] = []
        remaining = list(range(len(dense.ids)))
        while remaining and len(chosen) < k:
            redundancy = pairwise[np.ix_(remaining, chosen)].max(axis=1) if chosen else np.zeros(len(remaining))
            mmr = lam * relevance[remaining] - (1 - lam) * redundancy
            best = int(np.argmax(mmr))
            chosen.append(remaining.pop(best))
            scores.append(float(mmr[best]))
        return self._fetch_result([dense.ids[i] for i in chosen], scores)

    def _fetch_result(self, ids: Sequence[str], scores: Sequence[float]) -> VectorStoreQueryResult:
        """The nodes for ranked ids, in that order, with the given scores as similarities."""
        if not ids:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        rows = self._conn.fetchall(
            f"SELECT node_id, text, metadata, node_content FROM {self._table} "
            f"WHERE node_id IN ({', '.join('?' * len(ids))})", list(ids))
        by_id = {row[0]: self._to_node(*row) for row in rows}
        kept = [(i, s) for i, s in zip(ids, scores) if i in by_id]  # deleted meanwhile: skipped
        return VectorStoreQueryResult(nodes=[by_id[i] for i, _ in kept], similarities=[s for _, s in kept],
                                      ids=[i for i, _ in kept])

    # -- async twins: the driver is blocking, so each call runs in a worker thread ---------------
    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> List[str]:
        return await asyncio.to_thread(self.add, nodes, **kwargs)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    async def adelete_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None, **delete_kwargs: Any
    ) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)

    async def aget_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None
    ) -> List[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)

    async def acount(self, filters: Optional[MetadataFilters] = None) -> int:
        return await asyncio.to_thread(self.count, filters)


__all__ = ["MariaDBVectorStore", "StoreError"]
