"""``/healthz``'s answer: whether kb's database answers, found out on a connection of the probe's own.

The check must answer within ``timeout_s`` whatever the load: requests that hold every connection of
kb's pool, or a database that accepts connections and then hangs, must not make a health check wait.
So the probe:

* asks ``SELECT 1`` on a pool of one connection that nothing else uses, in a thread of its own, with
  a driver read timeout (a hung server cannot hold the probe for long);
* runs one probe at a time: a caller that comes while one is under way waits for that one, so a
  flood of health checks costs one probe at a time, not one each;
* also probes every ``refresh_s`` in the background while the service runs, so a recent finding is
  always at hand;
* waits at most ``timeout_s`` for the probe under way.

What a caller is told:

* a probe that ended after the caller asked (the one under way when it asked, or one it started):
  its finding. A database that has just gone down (the
  probe fails) is reported down by the next check, not after a grace period;
* otherwise, when the probe under way has neither answered nor failed yet: the last finding, if it was
  "up" and is at most ``max_age_s`` old. A server whose CPU is saturated (a hundred requests in flight
  on two cores) runs the probe's thread late; that is a busy server, not a database that is down. A
  database that hangs is reported down once its last answer is ``max_age_s`` old;
* otherwise: the database is not answering.
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
    """The database's health for ``/healthz``; see the module's docstring for what a caller is told."""

    def __init__(
        self,
        url: str | URL,
        replica_status: Callable[[], list[dict[str, Any]]],
        *,
        timeout_s: float = 1.0,
        max_age_s: float = 5.0,
        refresh_s: float = 2.0,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_age_s = max_age_s
        self.refresh_s = refresh_s
        self._replica_status = replica_status
        self._connection = MariaDBConnection(
            url, pool_size=1, max_overflow=0, pool_timeout=timeout_s, connect_timeout=2, read_timeout=5
        )
        self._lock = threading.Lock()
        self._last: Optional[Health] = None
        self._probing: Optional[threading.Event] = None  # set when the probe under way ends
        self._closed = threading.Event()
        self._refresher: Optional[threading.Thread] = None

    def start(self) -> None:
        """Probe every ``refresh_s`` in the background until :meth:`close`."""
        if self._refresher is None:
            self._refresher = threading.Thread(target=self._refresh, name="kb-health-refresh", daemon=True)
            self._refresher.start()

    def check(self) -> Health:
        """The database's health as the module's docstring states it, within ``timeout_s``."""
        asked = time.monotonic()
        ended = self._probe_under_way()
        finished = ended.wait(self.timeout_s)
        with self._lock:
            last = self._last
        if finished and last is not None:
            # The probe waited for has stored its finding before it ended. Its ``at`` may precede
            # ``asked`` (it was stamped when the SELECT answered, and the caller came in before the
            # probe ended), so the event, not the stamp, says it is the finding asked for.
            return last
        if last is not None and last.database_ok and asked - last.at <= self.max_age_s:
            return last
        return Health(database_ok=False, at=asked)

    def _probe_under_way(self) -> threading.Event:
        """The event the probe under way sets when it ends, starting a probe when none is."""
        with self._lock:
            if self._probing is None:
                self._probing = threading.Event()
                threading.Thread(target=self._probe, args=(self._probing,), name="kb-health", daemon=True).start()
            return self._probing

    def _refresh(self) -> None:
        while not self._closed.wait(self.refresh_s):
            self._probe_under_way().wait(self.timeout_s)

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
        self._closed.set()
        self._connection.dispose()
