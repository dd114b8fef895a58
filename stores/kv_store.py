"""``MariaDBKVStore``: a LlamaIndex ``BaseKVStore`` in one MariaDB table.

Backs ``KVDocumentStore``, ``KVIndexStore`` and ``IngestionCache`` (none exists on PyPI for
MariaDB). Rows are ``(collection, key) -> JSON value``; ``put_all`` is one bulk upsert per batch and
``get_many`` reads many keys in one round trip (an addition: LlamaIndex's interface reads one at a
time, which is slow for an embedding cache).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any, Optional

from llama_index.core.storage.kvstore.types import DEFAULT_BATCH_SIZE, DEFAULT_COLLECTION, BaseKVStore
from sqlalchemy.engine import URL

from kb.stores.connection import MariaDBConnection, create_table, pool_from_params
from kb.stores.sql_utils import IN_BATCH, batched, placeholders

_COLLECTION_MAX = 255
_KEY_MAX = 512  # (collection, key) in utf8mb4 must fit InnoDB's 3,072-byte index key


class MariaDBKVStore(BaseKVStore):
    """Key-value collections in the table ``table_name`` (created when missing)."""

    def __init__(self, connection: MariaDBConnection, table_name: str = "llama_index_kv") -> None:
        self._conn = connection
        self.table_name = table_name
        self._table = create_table(
            self._conn,
            table_name,
            f"""
                collection VARCHAR({_COLLECTION_MAX}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
                `key` VARCHAR({_KEY_MAX}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
                value JSON NOT NULL,
                updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
                PRIMARY KEY (collection, `key`)
            """,
        )

    @classmethod
    def from_params(cls, url: str | URL | None = None, **kwargs: Any) -> MariaDBKVStore:
        """The store on a connection pool of its own (:func:`~kb.stores.connection.pool_from_params`)."""
        connection, own = pool_from_params(url, **kwargs)
        return cls(connection, **own)

    @property
    def connection(self) -> MariaDBConnection:
        return self._conn

    @staticmethod
    def _check(key: str, collection: str) -> None:
        for what, value, limit in (("key", key, _KEY_MAX), ("collection", collection, _COLLECTION_MAX)):
            if not isinstance(value, str) or len(value) > limit:
                raise ValueError(f"{what} must be a string of at most {limit} characters, got {value!r:.80}")

    def put(self, key: str, val: dict, collection: str = DEFAULT_COLLECTION) -> None:
        self.put_all([(key, val)], collection=collection)

    def put_all(
        self,
        kv_pairs: list[tuple[str, dict]],
        collection: str = DEFAULT_COLLECTION,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        """Upsert all pairs in one transaction (batched statements)."""
        rows = []
        for key, value in kv_pairs:
            self._check(key, collection)
            rows.append((collection, key, json.dumps(value, ensure_ascii=False)))
        if not rows:
            return
        size = max(1, min(batch_size, IN_BATCH)) if batch_size else IN_BATCH
        with self._conn.cursor() as cur:
            for chunk in batched(rows, size):
                cur.executemany(
                    f"INSERT INTO {self._table} (collection, `key`, value) VALUES (?, ?, ?) "
                    "ON DUPLICATE KEY UPDATE value = VALUES(value)",
                    list(chunk),
                )

    def get(self, key: str, collection: str = DEFAULT_COLLECTION) -> Optional[dict]:
        self._check(key, collection)
        rows = self._conn.fetchall(
            f"SELECT value FROM {self._table} WHERE collection = ? AND `key` = ?", (collection, key)
        )
        return json.loads(rows[0][0]) if rows else None

    def get_many(self, keys: Sequence[str], collection: str = DEFAULT_COLLECTION) -> dict[str, dict]:
        """The stored values of ``keys`` (missing keys are absent from the result)."""
        found: dict[str, dict] = {}
        unique = list(dict.fromkeys(keys))
        with self._conn.cursor() as cur:
            for chunk in batched(unique):
                cur.execute(
                    f"SELECT `key`, value FROM {self._table} WHERE collection = ? "
                    f"AND `key` IN ({placeholders(len(chunk))})",
                    (collection, *chunk),
                )
                found.update((key, json.loads(value)) for key, value in cur.fetchall())
        return found

    def get_all(self, collection: str = DEFAULT_COLLECTION) -> dict[str, dict]:
        rows = self._conn.fetchall(f"SELECT `key`, value FROM {self._table} WHERE collection = ?", (collection,))
        return {key: json.loads(value) for key, value in rows}

    def delete(self, key: str, collection: str = DEFAULT_COLLECTION) -> bool:
        self._check(key, collection)
        return (
            self._conn.execute(f"DELETE FROM {self._table} WHERE collection = ? AND `key` = ?", (collection, key)) > 0
        )

    def delete_many(self, keys: Sequence[str], collection: str = DEFAULT_COLLECTION) -> int:
        deleted = 0
        unique = list(dict.fromkeys(keys))
        with self._conn.cursor() as cur:
            for chunk in batched(unique):
                cur.execute(
                    f"DELETE FROM {self._table} WHERE collection = ? AND `key` IN ({placeholders(len(chunk))})",
                    (collection, *chunk),
                )
                deleted += cur.rowcount
        return deleted

    # -- async twins: the driver blocks, so each call runs in a worker thread -----------------------
    async def aput(self, key: str, val: dict, collection: str = DEFAULT_COLLECTION) -> None:
        await asyncio.to_thread(self.put, key, val, collection)

    async def aput_all(
        self,
        kv_pairs: list[tuple[str, dict]],
        collection: str = DEFAULT_COLLECTION,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        await asyncio.to_thread(self.put_all, kv_pairs, collection, batch_size)

    async def aget(self, key: str, collection: str = DEFAULT_COLLECTION) -> Optional[dict]:
        return await asyncio.to_thread(self.get, key, collection)

    async def aget_all(self, collection: str = DEFAULT_COLLECTION) -> dict[str, dict]:
        return await asyncio.to_thread(self.get_all, collection)

    async def adelete(self, key: str, collection: str = DEFAULT_COLLECTION) -> bool:
        return await asyncio.to_thread(self.delete, key, collection)

    async def aget_many(self, keys: Sequence[str], collection: str = DEFAULT_COLLECTION) -> dict[str, dict]:
        return await asyncio.to_thread(self.get_many, keys, collection)
