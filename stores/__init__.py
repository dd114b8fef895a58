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
from stores.vector_store import MariaDBVectorStore

__all__ = [
    "DatabaseUnavailable",
    "MariaDBConnection",
    "MariaDBVectorStore",
    "SchemaMismatch",
    "ServerTooOld",
    "StoreError",
    "UnsupportedFilterError",
    "quote_identifier",
]
