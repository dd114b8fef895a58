"""LlamaIndex storage integrations over MariaDB 11.8, usable without the rest of kb.

Imported lazily: ``from kb.stores import MariaDBVectorStore`` loads LlamaIndex only then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kb.stores.errors import DatabaseUnavailable, SchemaMismatch, ServerTooOld, StoreError

if TYPE_CHECKING:
    from kb.stores.chat_store import MariaDBChatStore
    from kb.stores.connection import MariaDBConnection, quote_identifier
    from kb.stores.filters import UnsupportedFilterError
    from kb.stores.kv_store import MariaDBKVStore
    from kb.stores.vector_store import MariaDBVectorStore

__all__ = [
    "DatabaseUnavailable",
    "MariaDBChatStore",
    "MariaDBConnection",
    "MariaDBKVStore",
    "MariaDBVectorStore",
    "SchemaMismatch",
    "ServerTooOld",
    "StoreError",
    "UnsupportedFilterError",
    "quote_identifier",
]
_WHERE = {
    "MariaDBChatStore": "chat_store",
    "MariaDBConnection": "connection",
    "quote_identifier": "connection",
    "UnsupportedFilterError": "filters",
    "MariaDBKVStore": "kv_store",
    "MariaDBVectorStore": "vector_store",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"kb.stores.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'kb.stores' has no attribute {name!r}")
