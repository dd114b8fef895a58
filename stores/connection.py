"""Connections to MariaDB: one pool per store, reconnect after a restart, identifier quoting.

The pool is SQLAlchemy's (``pool_pre_ping`` replaces a connection that died with the server, so a
restart between two calls costs no failed call); the driver is MariaDB Connector/Python, whose
``executemany`` sends a whole batch in one round trip (COM_STMT_BULK_EXECUTE) and binds ``bytes``
straight into a ``VECTOR`` column. Everything that turns a name into SQL text goes through
:func:`quote_identifier`, so no other module ever pastes an unchecked identifier into a statement.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Optional, TypeVar

import mariadb
import sqlalchemy
from sqlalchemy.engine import URL, make_url

from kb.stores.errors import (
    DatabaseBusy,
    DatabaseUnavailable,
    SchemaMismatch,
    ServerTooOld,
    StoreError,
)

__all__ = [
    "DatabaseUnavailable",
    "MariaDBConnection",
    "SchemaMismatch",
    "ServerTooOld",
    "StoreError",
    "build_url",
    "describe_url",
    "quote_identifier",
    "replica_read",
]

MIN_VECTOR_VERSION = (11, 7)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_DRIVER = "mariadb+mariadbconnector"
T = TypeVar("T")
_STATEMENT_LIMIT_S: ContextVar[Optional[float]] = ContextVar("kb_statement_limit_s", default=None)


@contextmanager
def statement_time_limit(seconds: Optional[float]) -> Iterator[None]:
    """Within the block (and the threads that copy its context), every statement run through a
    :class:`MariaDBConnection` is stopped by the server after ``seconds`` (the session's
    ``max_statement_time``; the driver's error then passes :func:`~kb.stores.errors.is_statement_timeout`).
    ``None`` or 0: no limit. A statement's own ``SET STATEMENT max_statement_time = ... FOR`` still
    wins for that statement. ``kb serve`` runs each request under one, so no request can hold a
    connection for long."""
    token = _STATEMENT_LIMIT_S.set(seconds if seconds and seconds > 0 else None)
    try:
        yield
    finally:
        _STATEMENT_LIMIT_S.reset(token)


def quote_identifier(name: str) -> str:
    """Backquote a table, column or database name after checking it is a plain identifier.

    Only ``[A-Za-z_][A-Za-z0-9_]*`` (64 characters at most) is accepted: names come from configs
    and users, and refusing anything fancier keeps them out of the SQL grammar entirely.
    """
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(
            f"invalid SQL identifier {name!r}: use letters, digits and underscores "
            "(not starting with a digit), at most 64 characters"
        )
    return f"`{name}`"


def table_exists(cur: Any, table_sql: str) -> bool:
    """Whether the (quoted) table exists in the current database. Asked before each ``CREATE TABLE
    IF NOT EXISTS``: that statement is written to the binary log even when the table exists, and
    with replicas every such write is one a later replica read would have to wait for."""
    cur.execute(
        "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
        (table_sql.strip("`"),),
    )
    return cur.fetchone() is not None


def create_table(
    connection: MariaDBConnection,
    table_name: str,
    columns: str,
    *,
    added_columns: Sequence[tuple[str, str]] = (),
    added_indexes: Sequence[tuple[str, str]] = (),
) -> str:
    """Create ``table_name`` with ``columns`` unless it exists; returns its quoted name. The one
    place for what every kb table shares: a validated, quoted name, InnoDB, utf8mb4.

    ``added_columns`` are (name, definition) pairs added to the table since it was first made: a
    new table has them, and a table made by an older kb gets those it lacks (an ALTER only then:
    every ALTER is a write a replica must apply). ``added_indexes`` are (name, column) pairs: indexes
    on added columns, made with them."""
    table = quote_identifier(table_name)
    added = "".join(f", {quote_identifier(name)} {definition}" for name, definition in added_columns)
    added += "".join(f", KEY {quote_identifier(name)} ({quote_identifier(column)})" for name, column in added_indexes)
    with connection.cursor() as cur:
        if not table_exists(cur, table):
            cur.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns}{added}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
        elif added_columns:
            cur.execute(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                (table_name,),
            )
            present = {row[0].lower() for row in cur.fetchall()}
            missing = [(n, d) for n, d in added_columns if n.lower() not in present]
            if missing:
                additions = [f"ADD COLUMN IF NOT EXISTS {quote_identifier(n)} {d}" for n, d in missing]
                additions += [
                    f"ADD KEY IF NOT EXISTS {quote_identifier(n)} ({quote_identifier(c)})" for n, c in added_indexes
                ]
                cur.execute(f"ALTER TABLE {table} {', '.join(additions)}")
    return table


def build_url(
    url: str | URL | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    user: str | None = None,
    password: str | None = None,
    database: str | None = None,
    unix_socket: str | None = None,
) -> URL:
    """A SQLAlchemy URL for the MariaDB connector from a URL or from separate parameters.

    ``mariadb://``, ``mysql://`` and ``mariadb+mariadbconnector://`` URLs are all accepted; the
    separate parameters override the URL's parts, so a URL can carry the host and a parameter the
    password.
    """
    if url is None and host is None and unix_socket is None:
        raise ValueError("give either url=... or host=/unix_socket= connection parameters")
    base = make_url(url) if url is not None else URL.create(_DRIVER)
    if base.get_backend_name() not in ("mariadb", "mysql"):
        raise ValueError(
            f"not a MariaDB URL: {base.render_as_string(hide_password=True)}; use mariadb://user:password@host:port/database"
        )
    base = base.set(drivername=_DRIVER)
    changes: dict[str, Any] = {}
    for key, value in (
        ("host", host),
        ("port", port),
        ("username", user),
        ("password", password),
        ("database", database),
    ):
        if value is not None:
            changes[key] = value
    if changes:
        base = base.set(**changes)
    if unix_socket is not None:
        base = base.update_query_dict({"unix_socket": unix_socket})
    if not base.host and "unix_socket" not in base.query:
        base = base.set(host="127.0.0.1")
    return base


def describe_url(url: URL) -> str:
    """Where a URL points, for messages: host:port or the socket path (never the password)."""
    socket = url.query.get("unix_socket")
    if socket:
        return f"socket {socket}"
    return f"{url.host or '127.0.0.1'}:{url.port or 3306}"


def parse_version(version: str) -> tuple[int, int, int]:
    match = re.match(r"^(\d+)\.(\d+)\.(\d+)", version)
    if not match:
        raise StoreError(f"cannot read the server version {version!r}")
    return int(match[1]), int(match[2]), int(match[3])


class MariaDBConnection:
    """A pool of connections to one MariaDB database, shared by the stores built on it."""

    def __init__(
        self,
        url: str | URL,
        *,
        pool_size: int = 5,
        connect_timeout: int = 5,
        pool_timeout: float = 30.0,
        max_overflow: Optional[int] = None,
        read_timeout: Optional[int] = None,
    ) -> None:
        """``pool_size`` connections are kept, ``max_overflow`` more (default: twice as many, at least
        10) opened under load; a caller waits ``pool_timeout`` seconds for a free one, then gets
        :class:`DatabaseBusy`. ``read_timeout``: seconds the driver waits for the server's answer to a
        statement before it gives up on the connection (none by default)."""
        self.url = build_url(url)
        connect_args: dict[str, Any] = {"connect_timeout": connect_timeout}
        if read_timeout is not None:
            connect_args["read_timeout"] = read_timeout
        self._engine = sqlalchemy.create_engine(
            self.url,
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=max(10, pool_size * 2) if max_overflow is None else max_overflow,
            pool_timeout=pool_timeout,
            pool_recycle=3600,
            connect_args=connect_args,
        )
        self._version: tuple[int, int, int] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_params(
        cls, url: str | URL | None = None, *, pool_size: int = 5, connect_timeout: int = 5, **params: Any
    ) -> MariaDBConnection:
        return cls(build_url(url, **params), pool_size=pool_size, connect_timeout=connect_timeout)

    @property
    def engine(self) -> sqlalchemy.Engine:
        return self._engine

    @property
    def where(self) -> str:
        return describe_url(self.url)

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A pooled DB-API connection; commit on success, roll back on any error. Inside
        :func:`statement_time_limit` the connection's statements have that limit while it is lent."""
        try:
            conn = self._engine.raw_connection()
        except sqlalchemy.exc.TimeoutError:
            raise DatabaseBusy(
                f"every pooled connection to MariaDB at {self.where} is in use; none came free in time"
            ) from None
        except (sqlalchemy.exc.DBAPIError, mariadb.Error) as exc:
            raise DatabaseUnavailable(
                f"cannot connect to MariaDB at {self.where} as {self.url.username or '(no user)'}: "
                f"{_driver_message(exc)}"
            ) from None
        try:
            _apply_statement_limit(conn, _STATEMENT_LIMIT_S.get())
            yield conn
            conn.commit()
            self._committed(conn)
        except BaseException:
            try:
                conn.rollback()
            except Exception:  # the connection may be the thing that failed
                pass
            raise
        finally:
            conn.close()

    def _committed(self, conn: Any) -> None:
        """Called on the connection right after each commit (a replicated connection records the
        transaction's GTID here for read-your-writes)."""

    def read(self, fn: Callable[[], T]) -> T:
        """Run ``fn``, whose statements only read. A plain connection runs it here; a
        :class:`~kb.stores.replication.ReplicatedConnection` runs it on a replica."""
        return fn()

    def replica_status(self) -> list[dict[str, Any]]:
        """Each read replica's state and lag (none here; see ``ReplicatedConnection``)."""
        return []

    @contextmanager
    def cursor(self) -> Iterator[Any]:
        """A cursor inside one transaction (see :meth:`connection`)."""
        with self.connection() as conn:
            cur = conn.cursor()
            try:
                yield cur
            finally:
                cur.close()

    def fetchall(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        with self.cursor() as cur:
            cur.execute(sql, tuple(params))
            return list(cur.fetchall()) if cur.description else []

    def execute(self, sql: str, params: tuple | list = ()) -> int:
        with self.cursor() as cur:
            cur.execute(sql, tuple(params))
            return cur.rowcount

    @contextmanager
    def named_lock(self, name: str, timeout: float) -> Iterator[bool]:
        """Hold MariaDB's user-level lock ``name`` (``GET_LOCK``) while the block runs, on a
        connection of its own; yields False when it could not be had within ``timeout`` seconds.
        Locks are per server, so ``name`` should carry the database; it is hashed to fit 64 bytes."""
        if len(name) > 64:
            name = name[:23] + hashlib.sha1(name.encode("utf-8")).hexdigest()
        with self.connection() as conn:
            cur = conn.cursor()
            try:
                cur.execute("SELECT GET_LOCK(?, ?)", (name, float(timeout)))
                held = cur.fetchone()[0] == 1
                try:
                    yield held
                finally:
                    if held:
                        cur.execute("SELECT RELEASE_LOCK(?)", (name,))
                        cur.fetchall()
            finally:
                cur.close()

    def server_version(self) -> str:
        return self.fetchall("SELECT VERSION()")[0][0]

    def check_vector_support(self) -> tuple[int, int, int]:
        """Refuse a server without the VECTOR type, naming the version found and what to do."""
        if self._version is not None:
            return self._version
        with self._lock:
            version = self.server_version()
            parsed = parse_version(version)
            if "mariadb" not in version.lower() or parsed[:2] < MIN_VECTOR_VERSION:
                raise ServerTooOld(
                    f"the server at {self.where} runs {version}, which has no VECTOR type: these stores need "
                    f"MariaDB {MIN_VECTOR_VERSION[0]}.{MIN_VECTOR_VERSION[1]} or newer (11.8 LTS recommended)"
                )
            self._version = parsed
            return parsed

    def dispose(self) -> None:
        self._engine.dispose()


def replica_read(method: Callable[..., T]) -> Callable[..., T]:
    """Mark a store method that only reads: it runs through its connection's :meth:`~MariaDBConnection.read`
    (on a replica when the store's connection has them). The store keeps its pool in ``self._conn``."""

    @functools.wraps(method)
    def reading(self: Any, *args: Any, **kwargs: Any) -> T:
        return self._conn.read(lambda: method(self, *args, **kwargs))

    return reading


_SESSION_LIMIT = "kb_statement_limit_s"  # in a pooled connection's info: the limit its session has now


def _apply_statement_limit(conn: Any, seconds: Optional[float]) -> None:
    """Give the lent connection's session the statement limit its caller runs under (None: the
    server's default). The pool keeps what each connection's session has, so a statement is sent
    only when that changes: requests after requests (or work without a limit after such work) cost
    no round trip. A connection the pool opens anew has the server's default."""
    if conn.info.get(_SESSION_LIMIT) == seconds:
        return
    cur = conn.cursor()
    try:
        if seconds is None:
            cur.execute("SET SESSION max_statement_time = DEFAULT")
        else:
            cur.execute("SET SESSION max_statement_time = ?", (float(seconds),))
    finally:
        cur.close()
    conn.info[_SESSION_LIMIT] = seconds


def _driver_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig.args[0] if getattr(orig, "args", None) else orig).strip()


CONNECTION_PARAMS = frozenset({"host", "port", "user", "password", "database", "unix_socket"})


def pool_from_params(
    url: str | URL | None = None, *, pool_size: int = 5, connect_timeout: int = 5, **kwargs: Any
) -> tuple[MariaDBConnection, dict[str, Any]]:
    """What every store's ``from_params`` builds on: a connection pool of its own, from a URL or
    separate parameters (``host=``, ``port=``, ``user=``, ``password=``, ``database=``,
    ``unix_socket=``, as :func:`build_url` takes them), and the keywords left for the store itself
    (``table_name=`` ...)."""
    params = {key: kwargs.pop(key) for key in CONNECTION_PARAMS & kwargs.keys()}
    connection = MariaDBConnection.from_params(url, pool_size=pool_size, connect_timeout=connect_timeout, **params)
    return connection, kwargs
