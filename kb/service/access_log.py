"""The service's access log: one MariaDB row per HTTP request (who, what, route, status, latency).

Kept apart from the query log (:mod:`kb.operations.query_log`), which records answers whatever asked for them;
this one records requests, including the refused ones (401, 403, 429), which never reach an engine.
``kb stats`` shows both.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Optional

from kb.stores.connection import MariaDBConnection, create_table


@dataclass
class AccessRecord:
    key_name: Optional[str]
    method: str
    path: str
    status: int
    latency_ms: float
    route: Optional[str] = None
    tokens: int = 0
    cache: Optional[str] = None  # "hit" | "miss" | None (not cacheable)
    cost_usd: Optional[float] = None  # what the models cost for it (kb.operations.cost); None: unknown or none used


class AccessLog:
    BACKLOG = 10_000  # rows kept in memory while the database cannot take them

    def __init__(self, connection: MariaDBConnection, table_name: str = "kb_access_log") -> None:
        self._conn = connection
        self._pending: deque[AccessRecord] = deque(maxlen=self.BACKLOG)
        self._pending_lock = threading.Lock()
        self._table = create_table(
            self._conn,
            table_name,
            """
                id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                key_name VARCHAR(100) NULL,
                method VARCHAR(8) CHARACTER SET ascii NOT NULL,
                path VARCHAR(255) NOT NULL,
                route VARCHAR(16) NULL,
                status SMALLINT UNSIGNED NOT NULL,
                latency_ms DOUBLE NOT NULL,
                tokens INT UNSIGNED NOT NULL DEFAULT 0,
                cache VARCHAR(8) NULL,
                KEY by_time (created_at),
                KEY by_key (key_name, created_at)
            """,
            added_columns=[("cost_usd", "DOUBLE NULL")],
        )

    def record(self, r: AccessRecord) -> None:
        """Write ``r``, and any rows an earlier failure kept back. When the write fails (the database
        down or busy), the rows are kept, up to ``BACKLOG`` of them, for the next write, and the error
        is raised for the caller to log."""
        with self._pending_lock:
            self._pending.append(r)
            rows = list(self._pending)
            self._pending.clear()
        try:
            with self._conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {self._table} "
                    "(key_name, method, path, route, status, latency_ms, tokens, cache, cost_usd) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            x.key_name,
                            x.method,
                            x.path[:255],
                            x.route,
                            x.status,
                            x.latency_ms,
                            x.tokens,
                            x.cache,
                            x.cost_usd,
                        )
                        for x in rows
                    ],
                )
        except Exception:
            with self._pending_lock:
                self._pending.extendleft(reversed(rows))  # in their order; when full, the newest go
            raise

    def prune(self, days: int) -> int:
        """Delete the rows older than ``days`` days (in batches, so no long lock); how many went."""
        removed = 0
        while True:
            batch = self._conn.execute(
                f"DELETE FROM {self._table} WHERE created_at < CURRENT_TIMESTAMP(6) - INTERVAL ? DAY LIMIT 10000",
                (days,),
            )
            removed += batch
            if batch < 10000:
                return removed

    def stats(self) -> list[dict[str, Any]]:
        """Per key: requests, refused (4xx), errors (5xx), tokens, cache hits, cost (US dollars)."""
        rows = self._conn.fetchall(
            f"SELECT COALESCE(key_name, '(no key)'), COUNT(*), SUM(status BETWEEN 400 AND 499), SUM(status >= 500), "
            "SUM(tokens), SUM(cache = 'hit'), SUM(cache IS NOT NULL), MAX(created_at), SUM(cost_usd) "
            f"FROM {self._table} GROUP BY key_name ORDER BY COUNT(*) DESC"
        )
        return [
            {
                "key": key,
                "requests": int(n),
                "refused": int(refused or 0),
                "errors": int(errors or 0),
                "tokens": int(tokens or 0),
                "cache_hits": int(hits or 0),
                "cacheable": int(cacheable or 0),
                "last": last,
                "cost_usd": None if cost is None else float(cost),
            }
            for key, n, refused, errors, tokens, hits, cacheable, last, cost in rows
        ]
