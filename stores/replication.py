"""Reads on MariaDB replicas, writes on the primary, and read-your-writes by GTID.

MariaDB's own asynchronous replication does the distributing; this module only decides, per read,
which server answers it. A store marks its read-only methods with
:func:`~kb.stores.connection.replica_read`; while such a method runs, every statement of that thread
goes to the chosen replica (a context variable, so no store code needs a second connection object).

Read-your-writes: after each commit on the primary the transaction's GTID (``@@last_gtid``) is
merged into this process's write position. Before a replica serves a read, it must have applied
that position: ``MASTER_GTID_WAIT(position, wait_s)``, skipped once the replica has been seen there.
A replica that times out, is unreachable, has stopped replicating or lags more than ``max_lag_s``
is left out, and retried after ``retry_s``; a read that loses its replica mid-way is run again on the
primary (reads have no side effects). With ``consistency="global"`` the position is the primary's
``@@gtid_binlog_pos`` at the time of the read, so writes of other processes are seen too, for one
more small query on the primary per read (what MaxScale calls ``causal_reads=global``).
"""

from __future__ import annotations

import contextvars
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import mariadb
import sqlalchemy
from sqlalchemy.engine import URL

from kb.stores.connection import MariaDBConnection
from kb.stores.errors import is_database_down

T = TypeVar("T")
Consistency = Literal["own_writes", "global"]


def parse_gtids(position: str) -> dict[int, tuple[int, int]]:
    """``"0-1-42,1-2-7"`` -> ``{domain: (server_id, seq_no)}``."""
    gtids: dict[int, tuple[int, int]] = {}
    for part in filter(None, (p.strip() for p in (position or "").split(","))):
        domain, server_id, seq = (int(x) for x in part.split("-"))
        gtids[domain] = (server_id, seq)
    return gtids


def format_gtids(gtids: dict[int, tuple[int, int]]) -> str:
    return ",".join(f"{domain}-{server}-{seq}" for domain, (server, seq) in sorted(gtids.items()))


def merge_gtids(a: str, b: str) -> str:
    """The later of two positions in each replication domain."""
    merged = parse_gtids(a)
    for domain, (server, seq) in parse_gtids(b).items():
        if domain not in merged or seq > merged[domain][1]:
            merged[domain] = (server, seq)
    return format_gtids(merged)


def covers(reached: str, target: str) -> bool:
    """True when position ``reached`` includes every transaction of ``target``."""
    have = parse_gtids(reached)
    return all(domain in have and have[domain][1] >= seq for domain, (_, seq) in parse_gtids(target).items())


@dataclass(frozen=True)
class ReplicationState:
    """What a replica says of its replication (``SHOW REPLICA STATUS`` and ``@@gtid_slave_pos``)."""

    replicating: bool  # both its threads run: it receives from the primary and applies
    lag_s: float | None  # Seconds_Behind_Master; None when unknown
    applied: str  # the GTID position it has applied
    error: str | None  # why it is not replicating

    @classmethod
    def read(cls, cur: Any) -> ReplicationState:
        """Needs REPLICA MONITOR (a mariadb.Error without it)."""
        cur.execute("SHOW REPLICA STATUS")
        names = [d[0] for d in cur.description or ()]
        row = cur.fetchone()
        cur.execute("SELECT @@global.gtid_slave_pos")
        applied = cur.fetchone()[0] or ""
        if not row:
            return cls(False, None, applied, "not replicating from any primary")
        status = dict(zip(names, row))
        lag = status.get("Seconds_Behind_Master")
        io, sql = status.get("Slave_IO_Running"), status.get("Slave_SQL_Running")
        if sql != "Yes":
            error = status.get("Last_SQL_Error") or "its SQL thread is stopped"
        elif io != "Yes":
            error = status.get("Last_IO_Error") or (
                "connecting to the primary" if io == "Connecting" else "not connected to the primary"
            )
        else:
            error = None
        return cls(error is None, None if lag is None else float(lag), applied, error)


@dataclass
class Replica:
    """One replica's pool and what kb last learnt of it."""

    connection: MariaDBConnection
    healthy: bool = True
    state: str = "unchecked"  # ok | lagging | stopped | down | unchecked
    lag_s: float | None = None
    error: str | None = None
    checked_at: float = float("-inf")  # time.monotonic() of the last health check
    down_until: float = 0.0
    reached: str = ""  # a GTID position this replica is known to have applied
    reads: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def where(self) -> str:
        return self.connection.where

    def describe(self) -> dict[str, Any]:
        return {
            "replica": self.where,
            "state": self.state,
            "lag_s": self.lag_s,
            "error": self.error,
            "reads": self.reads,
        }


class ReplicatedConnection(MariaDBConnection):
    """A primary's pool (this object, for every write) plus replica pools for marked reads."""

    def __init__(
        self,
        url: str | URL,
        replicas: Sequence[str | URL],
        *,
        pool_size: int = 5,
        connect_timeout: int = 5,
        pool_timeout: float = 30.0,
        max_lag_s: float = 30.0,
        wait_s: float = 1.0,
        retry_s: float = 10.0,
        check_s: float = 5.0,
        consistency: Consistency = "own_writes",
    ) -> None:
        super().__init__(url, pool_size=pool_size, connect_timeout=connect_timeout, pool_timeout=pool_timeout)
        self.replicas = [
            Replica(
                MariaDBConnection(
                    r, pool_size=pool_size, connect_timeout=min(connect_timeout, 2), pool_timeout=pool_timeout
                )
            )
            for r in replicas
        ]
        self.max_lag_s, self.wait_s, self.retry_s, self.check_s = max_lag_s, wait_s, retry_s, check_s
        self.consistency = consistency
        self.primary_reads = 0
        self._written = ""  # GTID position of this process's own commits
        self._written_lock = threading.Lock()
        self._turn = itertools.count()
        self._reading: contextvars.ContextVar[MariaDBConnection | None] = contextvars.ContextVar(
            f"kb_replica_{id(self)}", default=None
        )

    # -- writes -------------------------------------------------------------------------------
    @contextmanager
    def connection(self) -> Iterator[Any]:
        replica = self._reading.get()
        if replica is not None:
            with replica.connection() as conn:
                yield conn
            return
        with super().connection() as conn:
            yield conn

    def _committed(self, conn: Any) -> None:
        try:
            cur = conn.cursor()
            try:
                cur.execute("SELECT @@last_gtid")
                gtid = cur.fetchone()[0]
            finally:
                cur.close()
        except mariadb.Error:  # the commit stands; only read-your-writes for it is lost
            return
        if gtid:
            with self._written_lock:
                self._written = merge_gtids(self._written, gtid)

    @property
    def written(self) -> str:
        """The GTID position of this process's writes, which replica reads wait for."""
        return self._written

    # -- reads --------------------------------------------------------------------------------
    def read(self, fn: Callable[[], T]) -> T:
        if self._reading.get() is not None or not self.replicas:
            return fn()
        replica = self._choose()
        if replica is not None:
            token = self._reading.set(replica.connection)
            try:
                result = fn()
            except Exception as exc:
                if not is_database_down(exc):  # the statement's own error: the primary would raise it too
                    raise
                self._mark(replica, "down", exc)
            else:
                replica.reads += 1
                return result
            finally:
                self._reading.reset(token)
        self.primary_reads += 1
        return fn()

    def _target(self) -> str:
        if self.consistency == "global":
            return str(super().fetchall("SELECT @@gtid_binlog_pos")[0][0] or "")
        return self._written

    def _choose(self) -> Replica | None:
        """The next replica in turn that is healthy and has applied the target position."""
        target = self._target()
        start = next(self._turn)
        for i in range(len(self.replicas)):
            replica = self.replicas[(start + i) % len(self.replicas)]
            now = time.monotonic()
            if now < replica.down_until:
                continue
            if now - replica.checked_at >= self.check_s:
                self.check(replica)
            if replica.healthy and self._caught_up(replica, target):
                return replica
        return None

    def _caught_up(self, replica: Replica, target: str) -> bool:
        if not target or covers(replica.reached, target):
            return True
        try:
            waited = replica.connection.fetchall("SELECT MASTER_GTID_WAIT(?, ?)", (target, float(self.wait_s)))[0][0]
        except Exception as exc:
            if not is_database_down(exc):
                raise
            self._mark(replica, "down", exc)
            return False
        if waited == 0:
            replica.reached = merge_gtids(replica.reached, target)
            return True
        return False  # timed out: the primary answers this read; the replica stays in rotation

    # -- health -------------------------------------------------------------------------------
    def check(self, replica: Replica, *, force: bool = False) -> None:
        """Ask the replica how its replication is doing (``SHOW REPLICA STATUS``), unless another
        thread just did (``force`` asks anyway)."""
        with replica.lock:
            if not force and time.monotonic() - replica.checked_at < self.check_s:
                return
            try:
                with replica.connection.cursor() as cur:
                    state = ReplicationState.read(cur)
            except Exception as exc:
                if is_database_down(exc):
                    self._mark(replica, "down", exc)
                    return
                if not isinstance(exc, (mariadb.Error, sqlalchemy.exc.DBAPIError)):
                    raise
                # No REPLICA MONITOR privilege: reachable is all we know.
                replica.checked_at = time.monotonic()
                replica.healthy, replica.state, replica.lag_s, replica.error = True, "ok", None, str(exc)
                return
            replica.checked_at = time.monotonic()
            replica.lag_s = state.lag_s
            replica.reached = merge_gtids(replica.reached, state.applied)
            if not state.replicating:
                self._mark(replica, "stopped", state.error or "not replicating")
            elif state.lag_s is not None and state.lag_s > self.max_lag_s:
                self._mark(replica, "lagging", f"{state.lag_s:.0f} s behind the primary (limit {self.max_lag_s:g} s)")
            else:
                replica.healthy, replica.state, replica.error = True, "ok", None

    def _mark(self, replica: Replica, state: str, why: BaseException | str) -> None:
        """Leave a replica out of rotation until ``retry_s`` from now."""
        replica.healthy, replica.state = False, state
        replica.error = str(why).splitlines()[0] if str(why) else type(why).__name__
        replica.checked_at = time.monotonic()
        replica.down_until = replica.checked_at + self.retry_s
        if state == "down":
            replica.lag_s = None

    def replica_status(self) -> list[dict[str, Any]]:
        """Each replica's state, lag and reads served, checked now (``kb db status``, ``/healthz``)."""
        for replica in self.replicas:
            self.check(replica, force=True)
            if replica.healthy:
                replica.down_until = 0.0
        return [replica.describe() for replica in self.replicas]

    def dispose(self) -> None:
        for replica in self.replicas:
            replica.connection.dispose()
        super().dispose()
