"""State every ``kb serve`` process shares: keyed values with a lifetime, and counters added to atomically.

One backend under the answer cache (:mod:`kb.service.cache`) and the rate-limit counters
(:mod:`kb.service.ratelimit`): Redis when ``cache.redis_url`` is set, else a table in kb's MariaDB
(``cache.table``). A counter is a value too: Redis keeps it as the decimal text ``INCRBY`` writes, and
the MariaDB table does the same, so :meth:`SharedState.get` reads either kind of key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Optional, Protocol

from kb.config import Settings
from kb.stores.connection import MariaDBConnection, create_table

_PURGE_EVERY = 500  # writes between two deletions of expired rows (MariaDB; Redis expires keys itself)


class SharedState(Protocol):
    def get(self, key: str) -> Optional[bytes]:
        """The value of ``key``, or None when it is missing or has expired."""
        ...

    def put(self, key: str, value: bytes, ttl_s: int) -> None:
        """Set ``key`` to ``value`` for ``ttl_s`` seconds."""
        ...

    def add(self, key: str, amount: int, ttl_s: int) -> int:
        """Add ``amount`` to the counter ``key`` (0 when missing), keep it ``ttl_s`` seconds; its new value.
        Concurrent adds from any number of processes all count."""
        ...


class RedisState:
    def __init__(self, url: str, prefix: str = "kb:") -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.prefix = prefix

    def get(self, key: str) -> Optional[bytes]:
        value = self.client.get(self.prefix + key)
        return value if isinstance(value, bytes) else None

    def put(self, key: str, value: bytes, ttl_s: int) -> None:
        self.client.set(self.prefix + key, value, ex=ttl_s)

    def add(self, key: str, amount: int, ttl_s: int) -> int:
        pipe = self.client.pipeline()
        pipe.incrby(self.prefix + key, amount)
        pipe.expire(self.prefix + key, ttl_s)
        total, _ = pipe.execute()
        return int(total)


class MariaDBState:
    """A table of (key, value, expiry); expired rows are ignored on read and purged now and then."""

    def __init__(self, connection: MariaDBConnection, table_name: str = "kb_cache") -> None:
        self._conn = connection
        self._writes = 0
        self._table = create_table(
            self._conn,
            table_name,
            """
                cache_key VARCHAR(80) CHARACTER SET ascii NOT NULL PRIMARY KEY,
                value LONGBLOB NOT NULL,
                expires_at DOUBLE NOT NULL,
                KEY by_expiry (expires_at)
            """,
        )

    def get(self, key: str) -> Optional[bytes]:
        rows = self._conn.fetchall(
            f"SELECT value FROM {self._table} WHERE cache_key = ? AND expires_at > ?", (key, time.time())
        )
        return bytes(rows[0][0]) if rows else None

    def put(self, key: str, value: bytes, ttl_s: int) -> None:
        self._conn.execute(
            f"INSERT INTO {self._table} (cache_key, value, expires_at) VALUES (?, ?, ?) "
            "ON DUPLICATE KEY UPDATE value = VALUES(value), expires_at = VALUES(expires_at)",
            (key, value, time.time() + ttl_s),
        )
        self._wrote()

    def add(self, key: str, amount: int, ttl_s: int) -> int:
        now = time.time()
        with self._conn.cursor() as cur:  # one transaction: the increment's row lock covers the read
            cur.execute(
                f"INSERT INTO {self._table} (cache_key, value, expires_at) VALUES (?, ?, ?) "
                "ON DUPLICATE KEY UPDATE "
                "value = IF(expires_at > ?, CAST(value AS SIGNED) + CAST(VALUES(value) AS SIGNED), VALUES(value)), "
                "expires_at = VALUES(expires_at)",
                (key, str(int(amount)).encode("ascii"), now + ttl_s, now),
            )
            cur.execute(f"SELECT value FROM {self._table} WHERE cache_key = ?", (key,))
            total = int(bytes(cur.fetchone()[0]))
        self._wrote()
        return total

    def _wrote(self) -> None:
        self._writes += 1
        if self._writes % _PURGE_EVERY == 0:
            self._conn.execute(f"DELETE FROM {self._table} WHERE expires_at < ?", (time.time(),))


def build_shared_state(settings: Settings, connection: Callable[[], MariaDBConnection]) -> SharedState:
    """Redis when ``cache.redis_url`` is set, else the table ``cache.table`` in kb's MariaDB."""
    if settings.cache.redis_url is not None:
        return RedisState(settings.cache.redis_url.get_secret_value())
    return MariaDBState(connection(), settings.cache.table)
