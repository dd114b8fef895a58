"""``/healthz``'s answer: whether kb's database answers, found out on a connection of the probe's own.

The check must answer within a second whatever the load: requests that hold every connection of kb's
pool, or a database that accepts connections and then hangs, must not make a health check wait. So
the probe:

* asks ``SELECT 1`` on a pool of one connection that nothing else uses, in a thread of its own, with
  a driver read timeout (a hung server cannot hold the probe for long);
* runs one probe at a time: a caller that comes while one is under way waits for that one, so a
  flood of health checks costs one probe at a time, not one each;
* waits at most ``timeout_s`` for the probe: no answer by then means the database is not
  answering, and the caller is told so at once.

A caller is only ever answered by a probe that ended after it asked: a database that has just gone
down is reported down by the next check, not after a grace period.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from sqlalchemy.engine import URL

from kb.stores.connection import MariaDBConnection

log = logging.getLogger("kb.service")


@dataclass(frozen=True)
class Health:
    """One probe's finding: the primary answered, and each read replica's state."""

    database_ok: bool
    replicas: list[dict[str, Any]] = field(default_factory=list)
    at: float = 0.0  # time.monotonic() of the probe


class HealthProbe:
    def __init__(
        self,
        url: str | URL,
        replica_status: Callable[[], list[dict[str, Any]]],
        *,
        timeout_s: float = 1.0,
    ) -> None:
        self.timeout_s = timeout_s
        self._replica_status = replica_status
        self._connection = MariaDBConnection(
            url, pool_size=1, max_overflow=0, pool_timeout=timeout_s, connect_timeout=2, read_timeout=5
        )
        self._lock = threading.Lock()
        self._last: Optional[Health] = None
        self._probing: Optional[threading.Event] = None  # set when the probe under way ends

    def check(self) -> Health:
        """What a probe that ended after this call began found, within ``timeout_s``; a probe that has
        not answered by then counts as the database not answering."""
        asked = time.monotonic()
        with self._lock:
            if self._probing is None:
                self._probing = threading.Event()
                threading.Thread(target=self._probe, args=(self._probing,), name="kb-health", daemon=True).start()
            ended = self._probing
        ended.wait(self.timeout_s)
        with self._lock:
            if self._last is not None and self._last.at >= asked:
                return self._last
        return Health(database_ok=False, at=asked)

    def _probe(self, ended: threading.Event) -> None:
        try:
            try:
                self._connection.fetchall("SELECT 1")
                found = Health(database_ok=True, replicas=self._replica_status(), at=time.monotonic())
            except Exception as exc:
                log.warning("health check: database unreachable: %s", exc)
                found = Health(database_ok=False, at=time.monotonic())
            with self._lock:
                self._last = found
        finally:
            with self._lock:
                self._probing = None
            ended.set()

    def close(self) -> None:
        self._connection.dispose()
