"""The stores' errors: what a caller can act on. No dependencies, so catching them costs no import."""

from __future__ import annotations


class StoreError(Exception):
    """A problem with the database or its content that the user can act on."""


class DatabaseUnavailable(StoreError):
    """The server cannot be reached or refuses the login."""


class DatabaseBusy(StoreError):
    """Every connection of the pool is in use and none came free in time (the server is reachable)."""


class ServerTooOld(StoreError):
    """The server has no VECTOR type (MariaDB before 11.7, or not MariaDB at all)."""


class SchemaMismatch(StoreError):
    """An existing table does not have the shape this store was asked to use."""


class DimensionMismatch(SchemaMismatch):
    """An existing table holds vectors of another dimension (another embedding model's)."""


# MariaDB/MySQL error codes that mean the server cannot be reached or dropped the connection (not
# that a statement was wrong): server shutdown, connection killed; client: cannot connect, server
# gone away, lost connection, SSL connection error, connection closed; and MariaDB Connector/C's
# own read and write errors on the connection's socket (CR_ERR_NET_READ, CR_ERR_NET_WRITE: "Write
# error: Broken pipe (32)" when the server process died while a statement was being sent).
_UNREACHABLE = frozenset({1053, 1927, 2002, 2003, 2005, 2006, 2013, 2026, 2055, 5013, 5014})


def is_database_down(exc: BaseException) -> bool:
    """Whether ``exc`` (kb's, the driver's, or SQLAlchemy's wrapping of it) means the database is
    unreachable, rather than that a statement failed."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    original = getattr(exc, "orig", None) or exc  # SQLAlchemy keeps the driver's error here
    if getattr(original, "errno", None) in _UNREACHABLE:
        return True
    import mariadb  # only when there is something to classify: importing this module stays free

    # The driver raises InterfaceError for a connection it has closed itself (no error code).
    return isinstance(original, mariadb.InterfaceError)


_STATEMENT_INTERRUPTED = 1969  # ER_STATEMENT_TIMEOUT: max_statement_time exceeded


def is_statement_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` (the driver's, or SQLAlchemy's wrapping of it) is a statement the server stopped
    at its ``max_statement_time`` (see :func:`kb.stores.connection.statement_time_limit`)."""
    original = getattr(exc, "orig", None) or exc
    return getattr(original, "errno", None) == _STATEMENT_INTERRUPTED
