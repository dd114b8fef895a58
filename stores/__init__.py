"""LlamaIndex storage integrations over MariaDB 11.8, usable without the rest of kb."""

from stores.connection import (
    DatabaseUnavailable,
    MariaDBConnection,
    SchemaMismatch,
    ServerTooOld,
    StoreError,
    quote_identifier,
)
from stores.filters import UnsupportedFilterError
from stores.kv_store import MariaDBKVStore
from stores.vector_store import MariaDBVectorStore

__all__ = [
    "DatabaseUnavailable",
    "MariaDBConnection",
    "MariaDBKVStore",
    "MariaDBVectorStore",
    "SchemaMismatch",
    "ServerTooOld",
    "StoreError",
    "UnsupportedFilterError",
    "quote_identifier",
]
