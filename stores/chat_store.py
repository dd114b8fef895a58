"""``MariaDBChatStore``: a LlamaIndex ``BaseChatStore`` with one row per message.

LlamaIndex's ``SQLAlchemyChatStore`` cannot create its table on MariaDB (a VARCHAR without a
length), and no MariaDB chat store exists on PyPI. Messages are ordered by an auto-increment id
(so concurrent writers to different sessions never contend, and appends are one INSERT); each row
keeps the whole message as JSON, so roles, blocks and ``additional_kwargs`` round-trip exactly.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Optional

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms import ChatMessage
from llama_index.core.storage.chat_store.base import BaseChatStore
from sqlalchemy.engine import URL

from kb.stores.connection import MariaDBConnection, create_table, pool_from_params, replica_read

_KEY_MAX = 255


class MariaDBChatStore(BaseChatStore):
    """Chat histories, keyed by session, in the table ``table_name`` (created when missing)."""

    table_name: str = Field(default="llama_index_chat", description="table holding the messages")

    _conn: MariaDBConnection = PrivateAttr()
    _table: str = PrivateAttr()

    def __init__(self, connection: MariaDBConnection, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._conn = connection
        self._table = create_table(
            self._conn,
            self.table_name,
            f"""
                id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                session_key VARCHAR({_KEY_MAX}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
                role VARCHAR(32) NOT NULL,
                content MEDIUMTEXT CHARACTER SET utf8mb4 NULL,
                message JSON NOT NULL,
                created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                KEY session_order (session_key, id)
            """,
        )

    @classmethod
    def from_params(cls, url: str | URL | None = None, **kwargs: Any) -> MariaDBChatStore:
        """The store on a connection pool of its own (:func:`~kb.stores.connection.pool_from_params`)."""
        connection, own = pool_from_params(url, **kwargs)
        return cls(connection, **own)

    @classmethod
    def class_name(cls) -> str:
        return "MariaDBChatStore"

    @staticmethod
    def _check(key: str) -> None:
        if not isinstance(key, str) or not key or len(key) > _KEY_MAX:
            raise ValueError(f"a session key must be a non-empty string of at most {_KEY_MAX} characters")

    @staticmethod
    def _row(key: str, message: ChatMessage) -> tuple:
        role = getattr(message.role, "value", message.role)
        return key, str(role), message.content, json.dumps(message.model_dump(mode="json"), ensure_ascii=False)

    def set_messages(self, key: str, messages: list[ChatMessage]) -> None:
        """Replace a session's history (one transaction)."""
        self._check(key)
        with self._conn.cursor() as cur:
            cur.execute(f"DELETE FROM {self._table} WHERE session_key = ?", (key,))
            if messages:
                cur.executemany(
                    f"INSERT INTO {self._table} (session_key, role, content, message) VALUES (?, ?, ?, ?)",
                    [self._row(key, m) for m in messages],
                )

    @replica_read
    def get_messages(self, key: str) -> list[ChatMessage]:
        self._check(key)
        rows = self._conn.fetchall(f"SELECT message FROM {self._table} WHERE session_key = ? ORDER BY id", (key,))
        return [ChatMessage.model_validate(json.loads(row[0])) for row in rows]

    def add_message(self, key: str, message: ChatMessage, idx: Optional[int] = None) -> None:
        self._check(key)
        if idx is None:
            self._conn.execute(
                f"INSERT INTO {self._table} (session_key, role, content, message) VALUES (?, ?, ?, ?)",
                self._row(key, message),
            )
            return
        messages = self.get_messages(key)
        messages.insert(idx, message)
        self.set_messages(key, messages)

    def delete_messages(self, key: str) -> Optional[list[ChatMessage]]:
        messages = self.get_messages(key)
        self._conn.execute(f"DELETE FROM {self._table} WHERE session_key = ?", (key,))
        return messages or None

    def delete_message(self, key: str, idx: int) -> Optional[ChatMessage]:
        self._check(key)
        with self._conn.cursor() as cur:
            cur.execute(f"SELECT id, message FROM {self._table} WHERE session_key = ? ORDER BY id", (key,))
            rows = cur.fetchall()
            if not 0 <= idx < len(rows):
                return None
            cur.execute(f"DELETE FROM {self._table} WHERE id = ?", (rows[idx][0],))
            return ChatMessage.model_validate(json.loads(rows[idx][1]))

    def delete_last_message(self, key: str) -> Optional[ChatMessage]:
        self._check(key)
        with self._conn.cursor() as cur:
            cur.execute(f"SELECT id, message FROM {self._table} WHERE session_key = ? ORDER BY id DESC LIMIT 1", (key,))
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute(f"DELETE FROM {self._table} WHERE id = ?", (row[0],))
            return ChatMessage.model_validate(json.loads(row[1]))

    @replica_read
    def get_keys(self) -> list[str]:
        return [
            row[0]
            for row in self._conn.fetchall(
                f"SELECT session_key FROM {self._table} GROUP BY session_key ORDER BY MAX(id) DESC"
            )
        ]

    @replica_read
    def sessions(self) -> list[dict[str, Any]]:
        """Each session with its message count and last activity, most recent first."""
        rows = self._conn.fetchall(
            f"SELECT session_key, COUNT(*), MIN(created_at), MAX(created_at) FROM {self._table} "
            "GROUP BY session_key ORDER BY MAX(id) DESC"
        )
        return [{"session": r[0], "messages": int(r[1]), "started": r[2], "last": r[3]} for r in rows]

    # -- async twins: the driver blocks, so each call runs in a worker thread -----------------------
    async def aset_messages(self, key: str, messages: list[ChatMessage]) -> None:
        await asyncio.to_thread(self.set_messages, key, messages)

    async def aget_messages(self, key: str) -> list[ChatMessage]:
        return await asyncio.to_thread(self.get_messages, key)

    async def async_add_message(self, key: str, message: ChatMessage, idx: Optional[int] = None) -> None:
        await asyncio.to_thread(self.add_message, key, message, idx)

    async def adelete_messages(self, key: str) -> Optional[list[ChatMessage]]:
        return await asyncio.to_thread(self.delete_messages, key)

    async def adelete_message(self, key: str, idx: int) -> Optional[ChatMessage]:
        return await asyncio.to_thread(self.delete_message, key, idx)

    async def adelete_last_message(self, key: str) -> Optional[ChatMessage]:
        return await asyncio.to_thread(self.delete_last_message, key)

    async def aget_keys(self) -> list[str]:
        return await asyncio.to_thread(self.get_keys)
