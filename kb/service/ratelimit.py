"""Per-key rate limits (requests and LLM tokens per minute), shared by every ``kb serve`` process.

Fixed one-minute windows: a counter per (key, kind, minute), incremented atomically in Redis
(``INCRBY`` + ``EXPIRE``) or in MariaDB (``INSERT ... ON DUPLICATE KEY UPDATE``, the row lock making
concurrent increments from several processes add up). A fixed window lets a client spend up to twice
its limit across a window boundary; that is the usual trade for one round trip per request.
"""

from __future__ import annotations

import time
from typing import Optional, Protocol

from kb.config import Settings
from kb.stores.connection import MariaDBConnection, create_table

WINDOW_S = 60


class Counter(Protocol):
    def add(self, name: str, amount: int, window: int) -> int:
        """Add ``amount`` to the counter ``name`` of ``window``; its new value."""
        ...

    def value(self, name: str, window: int) -> int: ...


class RedisCounter:
    def __init__(self, url: str, prefix: str = "kb:rate:") -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.prefix = prefix

    def add(self, name: str, amount: int, window: int) -> int:
        key = f"{self.prefix}{name}:{window}"
        pipe = self.client.pipeline()
        pipe.incrby(key, amount)
        pipe.expire(key, WINDOW_S * 2)
        total, _ = pipe.execute()
        return int(total)

    def value(self, name: str, window: int) -> int:
        return int(self.client.get(f"{self.prefix}{name}:{window}") or 0)


class MariaDBCounter:
    def __init__(self, connection: MariaDBConnection, table_name: str = "kb_rate_limits") -> None:
        self._conn = connection
        self._calls = 0
        self._table = create_table(
            self._conn,
            table_name,
            """
                name VARCHAR(128) CHARACTER SET ascii NOT NULL,
                minute BIGINT NOT NULL,
                used BIGINT NOT NULL,
                PRIMARY KEY (name, minute)
            """,
        )

    def add(self, name: str, amount: int, window: int) -> int:
        with self._conn.cursor() as cur:  # one transaction: the increment's row lock covers the read
            cur.execute(
                f"INSERT INTO {self._table} (name, minute, used) VALUES (?, ?, ?) "
                "ON DUPLICATE KEY UPDATE used = used + VALUES(used)",
                (name, window, amount),
            )
            cur.execute(f"SELECT used FROM {self._table} WHERE name = ? AND minute = ?", (name, window))
            total = int(cur.fetchone()[0])
        self._calls += 1
        if self._calls % 1000 == 0:
            self._conn.execute(f"DELETE FROM {self._table} WHERE minute < ?", (window - 2,))
        return total

    def value(self, name: str, window: int) -> int:
        rows = self._conn.fetchall(f"SELECT used FROM {self._table} WHERE name = ? AND minute = ?", (name, window))
        return int(rows[0][0]) if rows else 0


class RateLimiter:
    """``check_request`` before a request, ``add_tokens`` after it; a number is seconds to wait."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    @staticmethod
    def _window() -> tuple[int, int]:
        now = time.time()
        window = int(now // WINDOW_S)
        return window, max(1, int((window + 1) * WINDOW_S - now + 0.999))

    def check_request(self, key_id: int, requests_per_minute: int, tokens_per_minute: int) -> Optional[int]:
        """Count one request; the seconds until the next window when the key is over a limit, else None."""
        window, retry_after = self._window()
        if self.counter.value(f"t:{key_id}", window) >= tokens_per_minute:
            return retry_after
        if self.counter.add(f"r:{key_id}", 1, window) > requests_per_minute:
            return retry_after
        return None

    def tokens_used(self, key_id: int) -> int:
        """The LLM tokens ``key_id`` has used in the current window."""
        return self.counter.value(f"t:{key_id}", self._window()[0])

    def add_tokens(self, key_id: int, tokens: int) -> None:
        if tokens > 0:
            self.counter.add(f"t:{key_id}", tokens, self._window()[0])


def build_counter(settings: Settings, connection: MariaDBConnection) -> Counter:
    """Redis when ``cache.redis_url`` is set, else a table in kb's MariaDB."""
    redis_url = settings.cache.redis_url
    return RedisCounter(redis_url.get_secret_value()) if redis_url is not None else MariaDBCounter(connection)
