"""Local replicas of kb's private MariaDB: provisioning, start-up and status.

A new replica starts as a copy of the primary's data directory taken while the primary is briefly
stopped (a cold copy is consistent without a backup tool, which the unpacked prefix does not have);
from then on the primary writes a binary log and each replica follows it with MariaDB's own GTID
replication. Replica N lives in ``<home>/mariadb/replicas/N`` and listens on the primary's port + N.
"""

from __future__ import annotations

import shutil
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import URL

from kb.server_accounts import APP_USER, REPLICATION_USER
from kb.stores.connection import MariaDBConnection, StoreError
from kb.stores.replication import ReplicationState


@dataclass(frozen=True)
class ReplicaStatus:
    number: int
    port: int
    running: bool
    replicating: bool = False
    lag_s: float | None = None
    position: str = ""
    error: str | None = None

    def describe(self) -> str:
        where = f"replica {self.number} (127.0.0.1:{self.port})"
        if not self.running:
            return f"{where}: not running; `kb db start` starts it"
        if not self.replicating:
            return f"{where}: running but not replicating: {self.error or 'unknown reason'}"
        lag = "unknown" if self.lag_s is None else f"{self.lag_s:g} s"
        return f"{where}: replicating, lag {lag}, at GTID {self.position or '(none yet)'}"


class ReplicationMixin:
    """What :class:`kb.server.PrivateServer` does for replication (kept apart: one job per module)."""

    # Provided by PrivateServer.
    home: Path
    port: int
    database: str
    vector_cache_mb: int
    buffer_pool_mb: int
    replica_number: int
    root: Path
    instance: Path
    datadir: Path
    replication_marker: Path

    if TYPE_CHECKING:

        def _locked(self) -> AbstractContextManager[None]: ...
        def _launch(self, timeout: float) -> None: ...
        def _pid(self) -> int | None: ...
        def _stop_process(self, timeout: float = 60.0) -> bool: ...
        def _password(self, user: str) -> str: ...
        def admin_url(self) -> URL: ...

    def replica(self, number: int) -> Any:
        """Local replica ``number`` (1, 2 ...) of this primary, on port + ``number``."""
        server: Any = type(self)  # PrivateServer
        return server(
            self.home,
            port=self.port + number,
            database=self.database,
            vector_cache_mb=self.vector_cache_mb,
            buffer_pool_mb=self.buffer_pool_mb,
            replica=number,
        )

    @property
    def provisioned(self) -> bool:
        return (self.datadir / "mysql").is_dir()

    def provisioned_replicas(self) -> list[Any]:
        folder = self.root / "replicas"
        numbers = sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []
        return [r for r in map(self.replica, numbers) if r.provisioned]

    def _provision(self, replicas: list[Any], timeout: float) -> None:
        """Give each new replica a copy of the primary's data directory (the primary stops for the
        copy, a few seconds) and turn the primary's binary log on."""
        password = self._password(REPLICATION_USER)
        admin = MariaDBConnection(self.admin_url(), pool_size=1)
        try:
            with admin.cursor() as cur:
                # Replication connects over TCP; the account may only replicate. The app account may
                # read replication status (SHOW REPLICA STATUS), so kb can see each replica's lag.
                cur.execute(f"CREATE USER IF NOT EXISTS '{REPLICATION_USER}'@'127.0.0.1' IDENTIFIED BY '{password}'")
                cur.execute(f"GRANT REPLICATION SLAVE ON *.* TO '{REPLICATION_USER}'@'127.0.0.1'")
                for host in ("localhost", "127.0.0.1"):
                    cur.execute(f"GRANT SLAVE MONITOR ON *.* TO '{APP_USER}'@'{host}'")
        finally:
            admin.dispose()
        self.replication_marker.touch()
        self._stop_process()
        try:
            for replica in replicas:
                staging = replica.instance / "data.partial"
                shutil.rmtree(staging, ignore_errors=True)
                replica.instance.mkdir(parents=True, exist_ok=True)
                shutil.copytree(self.datadir, staging, ignore=shutil.ignore_patterns("*.pid", "*.sock"))
                shutil.rmtree(replica.datadir, ignore_errors=True)
                staging.rename(replica.datadir)
        finally:
            self._launch(timeout)

    def start_replica(self, primary: Any, *, timeout: float = 120.0) -> None:
        """Start this replica if it is not running; point it at ``primary`` the first time."""
        with self._locked():
            if self._pid() is None:
                self._launch(timeout)
            configured = self.instance / "replicating"
            if not configured.exists():
                self._follow(primary)
                configured.touch()
        # Connecting to the primary takes a moment; `kb db start` should report the state it reached.
        deadline = time.monotonic() + min(timeout, 30.0)
        while not self.replica_status().replicating and time.monotonic() < deadline:
            time.sleep(0.2)

    def _follow(self, primary: Any) -> None:
        """Point this fresh copy at ``primary``, from the position the copy holds."""
        statements = [
            "STOP SLAVE",
            # The copy holds everything up to the primary's position at the copy.
            "SET GLOBAL gtid_slave_pos = @@global.gtid_binlog_pos",
            f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={int(primary.port)}, "
            f"MASTER_USER='{REPLICATION_USER}', MASTER_PASSWORD='{self._password(REPLICATION_USER)}', "
            "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=2",
            "START SLAVE",
        ]
        admin = MariaDBConnection(self.admin_url(), pool_size=1)
        try:
            with admin.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            admin.dispose()

    def _replication_args(self) -> list[str]:
        if self.replica_number == 0 and not self.replication_marker.exists():
            return []
        args = [
            f"--server-id={1 + self.replica_number}",
            "--log-bin",
            "--log-basename=kb",
            "--binlog-format=ROW",
            "--gtid-strict-mode=1",
            "--binlog-expire-logs-seconds=604800",
        ]
        if self.replica_number:
            # Read-only for every account but the replication thread; replicas log what they apply,
            # so one can be promoted to primary.
            args += ["--read-only=1", "--log-slave-updates=1"]
        return args

    def replica_status(self) -> ReplicaStatus:
        if self._pid() is None:
            return ReplicaStatus(self.replica_number, self.port, running=False)
        admin = MariaDBConnection(self.admin_url(), pool_size=1, connect_timeout=2)
        try:
            with admin.cursor() as cur:
                state = ReplicationState.read(cur)
        except StoreError as exc:
            return ReplicaStatus(self.replica_number, self.port, running=False, error=str(exc))
        finally:
            admin.dispose()
        return ReplicaStatus(
            self.replica_number,
            self.port,
            running=True,
            replicating=state.replicating,
            lag_s=state.lag_s,
            position=state.applied,
            error=state.error,
        )
