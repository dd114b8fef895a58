"""LlamaIndex storage integrations over MariaDB 11.8, usable without the rest of kb.

Imported lazily: ``from kb.stores import MariaDBVectorStore`` loads LlamaIndex only then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kb.stores.errors import DatabaseUnavailable, SchemaMismatch, ServerTooOld, StoreError
from kb.stores.lazy import lazy_exports

if TYPE_CHECKING:
    from kb.stores.chat_store import MariaDBChatStore
    from kb.stores.connection import MariaDBConnection, quote_identifier
    from kb.stores.filters import FilterLimits, FilterTooLarge, UnsupportedFilterError
    from kb.stores.kv_store import MariaDBKVStore
    from kb.stores.vector_store import MariaDBVectorStore

__all__ = [
    "DatabaseUnavailable",
    "FilterLimits",
    "FilterTooLarge",
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
__getattr__ = lazy_exports(
    __name__,
    {
        "MariaDBChatStore": ".chat_store",
        "MariaDBConnection": ".connection",
        "quote_identifier": ".connection",
        "UnsupportedFilterError": ".filters",
        "FilterLimits": ".filters",
        "FilterTooLarge": ".filters",
        "MariaDBKVStore": ".kv_store",
        "MariaDBVectorStore": ".vector_store",
    },
)
