"""The chunks table of ``MariaDBVectorStore``: its DDL, and the check that an existing table fits.

One row per chunk: an integer primary key (a vector index needs a key of at most 256 bytes), the
node id as a separate unique key (so ids can be any string), the document id in its own indexed
column, the text (MEDIUMTEXT: 16 MB), user metadata as JSON (what filters see), the serialized node,
``VECTOR(dim) NOT NULL`` under a ``VECTOR INDEX``, the embedding model's name and timestamps.
"""

from __future__ import annotations

import re
from typing import Any

from kb.stores.connection import MariaDBConnection, SchemaMismatch, table_exists
from kb.stores.errors import DimensionMismatch

ID_MAX = 255
DOC_ID_MAX = 512  # document ids are often paths; 512 utf8mb4 characters still fit an index key
COLUMNS = (
    "id",
    "node_id",
    "ref_doc_id",
    "text",
    "text_hash",
    "metadata",
    "node_content",
    "embedding",
    "embed_model",
    "created_at",
    "updated_at",
)


def create_table(cur: Any, table_sql: str, dim: int, hnsw_m: int, distance: str) -> None:
    if table_exists(cur, table_sql):
        return
    cur.execute(
        f"""CREATE TABLE IF NOT EXISTS {table_sql} (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            node_id VARCHAR({ID_MAX}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            ref_doc_id VARCHAR({DOC_ID_MAX}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
            text MEDIUMTEXT CHARACTER SET utf8mb4 NOT NULL,
            text_hash BINARY(16) NOT NULL,
            metadata JSON NOT NULL,
            node_content JSON NOT NULL,
            embedding VECTOR({int(dim)}) NOT NULL,
            embed_model VARCHAR(255) NULL,
            created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
            updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
                ON UPDATE CURRENT_TIMESTAMP(6),
            UNIQUE KEY node_id (node_id),
            KEY ref_doc_id (ref_doc_id),
            VECTOR INDEX embedding (embedding) M={int(hnsw_m)} DISTANCE={distance}
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
    )


def index_distance(ddl: str) -> str:
    """The distance of the vector index in a ``SHOW CREATE TABLE`` text (euclidean when unstated).
    MariaDB 11.8 releases differ in how they print it: ``DISTANCE=cosine`` in earlier ones, the name
    in backquotes and the value in quotes in 11.8.9."""
    found = re.search(r"VECTOR KEY[^\n]*?\bDISTANCE`?\s*=\s*['\"`]?(\w+)", ddl, re.I)
    return found[1].lower() if found else "euclidean"


def _ddl(conn: MariaDBConnection, table_sql: str) -> str:
    with conn.cursor() as cur:
        cur.execute(f"SHOW CREATE TABLE {table_sql}")
        return cur.fetchone()[1]


def _dimension(ddl: str) -> int | None:
    found = re.search(r"`embedding` vector\((\d+)\)", ddl, re.I)
    return int(found[1]) if found else None


def table_dimension(conn: MariaDBConnection, table_sql: str) -> int | None:
    """The vector dimension of an existing chunks table; None when there is no such table."""
    with conn.cursor() as cur:
        if not table_exists(cur, table_sql):
            return None
    return _dimension(_ddl(conn, table_sql))


def check_table(conn: MariaDBConnection, table_name: str, table_sql: str, dim: int, distance: str) -> None:
    """Refuse a table whose dimension, distance or columns differ from the store's."""
    ddl = _ddl(conn, table_sql)
    missing = [c for c in COLUMNS if not re.search(rf"^\s*`{c}`", ddl, re.M)]
    if missing:
        raise SchemaMismatch(
            f"table {table_name} exists but was not created by MariaDBVectorStore "
            f"(missing columns: {', '.join(missing)}); choose another table_name"
        )
    found_dim = _dimension(ddl)
    if found_dim is not None and found_dim != dim:
        raise DimensionMismatch(
            f"table {table_name} holds {found_dim}-dimensional vectors but this store was given "
            f"embed_dim={dim} (a different embedding model?); use another table_name, or re-index into a new table"
        )
    found_distance = index_distance(ddl)
    if found_distance != distance:
        raise SchemaMismatch(
            f"table {table_name} has a {found_distance} vector index but this store was given "
            f"distance={distance!r}; use distance={found_distance!r} or another table_name"
        )
