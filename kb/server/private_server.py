"""kb's private MariaDB 11.8: provision, start, stop, status, without touching the system.

Debian 12 ships MariaDB 10.11, which has no VECTOR type, and installing Debian 13 packages into the
system would drag in a new libc. So the server is unpacked, with the libraries it needs, from Debian
13 ("trixie") packages into ``<home>/mariadb/prefix`` using a private apt state, and every binary is
run through that prefix's own dynamic loader. Nothing outside ``<home>`` is written.

Layout under ``<home>/mariadb``: ``apt/`` (private apt lists and .deb cache), ``prefix/`` (the
unpacked packages), ``data/`` (the data directory), ``run/`` (socket and pid file), ``server.log``,
``credentials.json`` (generated passwords, mode 0600), and ``replicas/N/`` (``data/``, ``run/``,
``server.log`` of local replica N).

A new replica starts as a copy of the primary's data directory taken while the primary is briefly
stopped (a cold copy is consistent without a backup tool, which the unpacked prefix does not have);
from then on the primary writes a binary log and each replica follows it with MariaDB's own GTID
replication. Replica N lives in ``<home>/mariadb/replicas/N`` and listens on the primary's port + N.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from kb.errors import ServerError
from kb.private_dirs import make_private_dir
from kb.server.accounts import ADMIN_USER, APP_USER, KB_ACCOUNTS, READONLY_USER, REPLICATION_USER, SYSTEM_ACCOUNT
from kb.server.install import EXTERNAL_HELP, tail, unpack_mariadb
from kb.stores.connection import MariaDBConnection, StoreError, quote_identifier
from kb.stores.replication import ReplicationState

_ARCHES = {
    "x86_64": ("amd64", "x86_64-linux-gnu", "ld-linux-x86-64.so.2"),
    "aarch64": ("arm64", "aarch64-linux-gnu", "ld-linux-aarch64.so.1"),
}


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


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    version: str | None
    port: int
    socket: str
    pid: int | None
    datadir: str
    notes: tuple[str, ...] = ()  # what start() repaired, for the user to read
    replicas: tuple[ReplicaStatus, ...] = ()

    def describe(self) -> str:
        if not self.running:
            lines = [f"kb's MariaDB is not running (data directory {self.datadir}); start it with `kb db start`"]
        else:
            lines = [
                f"kb's MariaDB {self.version} is running (pid {self.pid}), listening on "
                f"127.0.0.1:{self.port} and socket {self.socket}; data in {self.datadir}"
            ]
        lines += [replica.describe() for replica in self.replicas]
        return "\n".join([*lines, *self.notes])


class PrivateServer:
    """The MariaDB server that belongs to one kb home folder."""

    def __init__(
        self,
        home: Path,
        *,
        port: int,
        database: str = "kb",
        vector_cache_mb: int = 1024,
        buffer_pool_mb: int = 512,
        replica: int = 0,
    ) -> None:
        self.home = Path(home)
        self.root = Path(home).resolve() / "mariadb"
        self.port = port
        self.database = database
        self.vector_cache_mb = vector_cache_mb
        self.buffer_pool_mb = buffer_pool_mb
        self.replica_number = replica  # 0: the primary
        self.instance = self.root if replica == 0 else self.root / "replicas" / str(replica)
        self.prefix = self.root / "prefix"
        self.datadir = self.instance / "data"
        self.rundir = self.instance / "run"
        self.log_path = self.instance / "server.log"
        self.pid_path = self.rundir / "mariadbd.pid"
        self.credentials_path = self.root / "credentials.json"
        self.files_dir = self.instance / "files"  # secure_file_priv: the only folder the server may read or write
        # Present once a replica was provisioned: the primary then writes a binary log.
        self.replication_marker = self.root / "replication"
        self.notes: list[str] = []

    # -- paths ------------------------------------------------------------------------------
    @property
    def socket_path(self) -> Path:
        """In ``run/`` (mode 0700: only kb's user reaches the socket), or, when that path is too long
        for a socket, in a private 0700 folder under the temporary directory."""
        path = self.rundir / "mariadbd.sock"
        if len(str(path)) < 100:  # sun_path holds 108 bytes
            return path
        digest = hashlib.sha1(str(self.instance).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"kb-mariadb-{digest}" / "mariadbd.sock"

    def _arch(self) -> tuple[str, str, str]:
        machine = platform.machine()
        if sys.platform != "linux" or machine not in _ARCHES:
            raise ServerError(
                f"kb's private MariaDB needs Linux on x86-64 (or arm64) with apt; this is {sys.platform} "
                f"on {machine}. {EXTERNAL_HELP}"
            )
        return _ARCHES[machine]

    def _binary(self, name: str) -> list[str]:
        _, triplet, loader = self._arch()
        libdir = self.prefix / "usr/lib" / triplet
        return [str(libdir / loader), "--library-path", str(libdir), str(self.prefix / name)]

    # -- provisioning -----------------------------------------------------------------------
    @property
    def installed(self) -> bool:
        return (self.prefix / "usr/sbin/mariadbd").is_file()

    def install(self) -> None:
        """Unpack MariaDB 11.8 and its libraries into ``prefix`` (see :mod:`kb.server.install`)."""
        if not self.installed:
            unpack_mariadb(self.root, self.prefix, self._arch()[0])

    def _credentials(self) -> dict[str, str]:
        if self.credentials_path.is_file():
            return json.loads(self.credentials_path.read_text())
        creds = {user: secrets.token_hex(16) for user in KB_ACCOUNTS}
        self._write_credentials(creds)
        return creds

    def _write_credentials(self, creds: dict[str, str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.credentials_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(creds, handle)

    def _password(self, user: str) -> str:
        """``user``'s generated password; made now for an account newer than the credentials file."""
        creds = self._credentials()
        if user not in creds:
            creds[user] = secrets.token_hex(16)
            self._write_credentials(creds)
        return creds[user]

    def _base_args(self, datadir: Path | None = None) -> list[str]:
        args = [f"--datadir={datadir or self.datadir}", f"--lc-messages-dir={self.prefix / 'usr/share/mariadb'}"]
        if os.geteuid() == 0:
            args.append("--user=root")
        return args

    def _initialize_datadir(self) -> None:
        """Create the system tables and kb's admin account (``mariadbd --bootstrap``)."""
        if (self.datadir / "mysql" / "global_priv.frm").exists():
            return
        staging = self.root / "data.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        share = self.prefix / "usr/share/mariadb"
        admin_password = self._password(ADMIN_USER)
        # Bootstrap mode takes one statement per line.
        script = "\n".join(
            [
                "create database if not exists mysql;",
                "use mysql;",
                (share / "mariadb_system_tables.sql").read_text(),
                (share / "mariadb_system_tables_data.sql").read_text(),
                # That file adds password-less root accounts (localhost, 127.0.0.1, ::1, the host name):
                # any local user could log in as root. kb's server keeps only its own accounts, and the
                # locked mariadb.sys that owns the system views.
                f"DELETE FROM global_priv WHERE User <> '{SYSTEM_ACCOUNT}';",
                "DELETE FROM proxies_priv;",
                "FLUSH PRIVILEGES;",
                f"CREATE USER '{ADMIN_USER}'@'localhost' IDENTIFIED BY '{admin_password}';",
                f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'localhost' WITH GRANT OPTION;",
                f"CREATE USER '{ADMIN_USER}'@'127.0.0.1' IDENTIFIED BY '{admin_password}';",
                f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'127.0.0.1' WITH GRANT OPTION;",
                "",
            ]
        )
        proc = subprocess.run(
            [*self._binary("usr/sbin/mariadbd"), "--no-defaults", "--bootstrap", *self._base_args(staging)],
            input=script,
            text=True,
            capture_output=True,
            timeout=300,
        )
        if proc.returncode != 0:
            raise ServerError(f"initializing the data directory failed: {tail(proc.stderr)}")
        shutil.rmtree(self.datadir, ignore_errors=True)
        staging.rename(self.datadir)

    # -- lifecycle --------------------------------------------------------------------------
    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if b"mariadbd" in cmdline and str(self.datadir).encode() in cmdline else None

    def admin_url(self) -> URL:
        return URL.create(
            "mariadb+mariadbconnector",
            username=ADMIN_USER,
            password=self._password(ADMIN_USER),
            host="localhost",
            query={"unix_socket": str(self.socket_path)},
        )

    def run_script(self, script: Path) -> None:
        """Run an SQL script (a database dump) through this server's own ``mariadb`` client as kb's
        admin: dumps hold what a driver's statement parser mistakes for placeholders (a ``?`` in a
        string after an escaped quote), the client runs them as MariaDB reads them."""
        options = self.root / "client.cnf"  # the password is handed over in an owner-only file, not argv
        fd = os.open(options, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"[client]\nuser={ADMIN_USER}\npassword={self._password(ADMIN_USER)}\n")
        try:
            with open(script, "rb") as source:
                result = subprocess.run(
                    [
                        *self._binary("usr/bin/mariadb"),
                        f"--defaults-extra-file={options}",
                        f"--socket={self.socket_path}",
                        "--default-character-set=utf8mb4",
                    ],
                    stdin=source,
                    capture_output=True,
                    timeout=600,
                )
        finally:
            options.unlink(missing_ok=True)
        if result.returncode != 0:
            raise ServerError(f"{script.name}: {result.stderr.decode(errors='replace').strip()[:500]}")

    def app_url(self) -> URL:
        return URL.create(
            "mariadb+mariadbconnector",
            username=APP_USER,
            password=self._password(APP_USER),
            host="localhost",
            database=self.database,
            query={"unix_socket": str(self.socket_path)},
        )

    def readonly_credentials(self) -> tuple[str, str]:
        return READONLY_USER, self._password(READONLY_USER)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        make_private_dir(self.home.resolve())  # kb's home: the server's data and passwords live below
        self.instance.mkdir(parents=True, exist_ok=True)
        with open(self.instance / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def start(self, *, replicas: int = 0, timeout: float = 120.0) -> ServerStatus:
        """Provision if needed, start if not running, create kb's database and accounts; provision
        replicas 1..``replicas`` that do not exist yet and start every provisioned one. Idempotent."""
        with self._locked():
            if self._pid() is None:
                self.install()
                self._initialize_datadir()
                self._launch(timeout)
            self._ensure_database()
            new = [self.replica(n) for n in range(1, replicas + 1) if not self.replica(n).provisioned]
            if new:
                self._provision(new, timeout)
        for replica in self.provisioned_replicas():
            replica.start_replica(self, timeout=timeout)
        return self.status()

    def _launch(self, timeout: float) -> None:
        if _port_in_use(self.port):
            raise ServerError(
                f"port {self.port} on 127.0.0.1 is already in use by another program; choose a free one "
                "with database.server.port (or KB_DATABASE__SERVER__PORT)"
            )
        for private in (self.root, self.rundir, self.socket_path.parent, self.files_dir):
            private.mkdir(parents=True, exist_ok=True)
            private.chmod(0o700)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        args = [
            *self._binary("usr/sbin/mariadbd"),
            "--no-defaults",
            *self._base_args(),
            f"--socket={self.socket_path}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={self.pid_path}",
            f"--log-error={self.log_path}",
            f"--secure-file-priv={self.files_dir}",
            f"--mhnsw-max-cache-size={self.vector_cache_mb * 1024 * 1024}",
            f"--innodb-buffer-pool-size={self.buffer_pool_mb}M",
            # A development server: survives a crash of any process, an OS crash may lose ~1 s.
            "--innodb-flush-log-at-trx-commit=2",
            # Full-text index changes are cached and merged in bulk: a bigger cache, fewer merges.
            "--innodb-ft-cache-size=80000000",
            # Index two-letter stems too (gene names, units); the default skips them.
            "--innodb-ft-min-token-size=2",
            "--character-set-server=utf8mb4",
            "--max-connections=300",
            "--skip-name-resolve",
            *self._replication_args(),
        ]
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServerError(
                    f"MariaDB exited during start-up (status {proc.returncode}): "
                    f"{tail(self.log_path.read_text(errors='replace'))}; log: {self.log_path}"
                )
            if self.socket_path.exists() and self._can_login():
                return
            time.sleep(0.2)
        raise ServerError(f"MariaDB did not accept connections within {timeout:.0f} s; see {self.log_path}")

    def _can_login(self) -> bool:
        conn = MariaDBConnection(self.admin_url(), pool_size=1, connect_timeout=2)
        try:
            conn.server_version()
            return True
        except StoreError:
            return False
        finally:
            conn.dispose()

    def _ensure_database(self) -> None:
        creds = self._credentials()
        admin = MariaDBConnection(self.admin_url(), pool_size=1)
        try:
            db = quote_identifier(self.database)
            # Passwords are generated hex strings; identifiers are checked: nothing else is pasted.
            statements = [f"CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET utf8mb4"]
            for host in ("localhost", "127.0.0.1"):
                statements += [
                    f"CREATE USER IF NOT EXISTS '{APP_USER}'@'{host}' IDENTIFIED BY '{creds[APP_USER]}'",
                    f"GRANT ALL PRIVILEGES ON {db}.* TO '{APP_USER}'@'{host}'",
                    f"CREATE USER IF NOT EXISTS '{READONLY_USER}'@'{host}' IDENTIFIED BY '{creds[READONLY_USER]}'",
                ]
            with admin.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
                self._drop_open_accounts(cur)
        finally:
            admin.dispose()

    def _drop_open_accounts(self, cur) -> None:
        """Drop anonymous and password-less accounts (a data directory made by kb before 0.2 has
        four password-less roots). Accounts a user added with a password are left alone."""
        cur.execute(
            f"SELECT User, Host FROM mysql.global_priv WHERE User NOT IN ({', '.join('?' * (len(KB_ACCOUNTS) + 1))}) AND ("
            "User = '' OR (COALESCE(JSON_VALUE(Priv, '$.account_locked'), 'false') NOT IN ('true', '1') "
            "AND COALESCE(JSON_VALUE(Priv, '$.authentication_string'), '') = '' "
            "AND COALESCE(JSON_VALUE(Priv, '$.plugin'), 'mysql_native_password') "
            "IN ('mysql_native_password', 'mysql_old_password', '')))",
            (*KB_ACCOUNTS, SYSTEM_ACCOUNT),
        )
        open_accounts = cur.fetchall()
        for user, host in open_accounts:
            cur.execute("DROP USER ?@?", (user, host))
        if open_accounts:
            names = ", ".join(f"{user or '(anonymous)'}@{host}" for user, host in open_accounts)
            self.notes.append(
                f"removed {len(open_accounts)} account(s) that needed no password ({names}): "
                "kb's server keeps only password-protected accounts"
            )

    def stop(self, *, timeout: float = 60.0) -> bool:
        """Stop the server (a primary: its replicas first) if it runs; True when the server was running."""
        if self.replica_number == 0:
            for replica in self.provisioned_replicas():
                replica.stop(timeout=timeout)
        with self._locked():
            return self._stop_process(timeout)

    def _stop_process(self, timeout: float = 60.0) -> bool:
        pid = self._pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._pid() is not None:
            time.sleep(0.1)
        if self._pid() is not None:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        return True

    def status(self) -> ServerStatus:
        pid = self._pid()
        version = None
        if pid is not None:
            admin = MariaDBConnection(self.admin_url(), pool_size=1, connect_timeout=2)
            try:
                version = admin.server_version()
            except StoreError:
                pid = None
            finally:
                admin.dispose()
        return ServerStatus(
            running=pid is not None,
            version=version,
            port=self.port,
            socket=str(self.socket_path),
            pid=pid,
            datadir=str(self.datadir),
            notes=tuple(self.notes),
            replicas=tuple(r.replica_status() for r in self.provisioned_replicas()) if self.replica_number == 0 else (),
        )

    # -- local replicas ---------------------------------------------------------------------
    def replica(self, number: int) -> PrivateServer:
        """Local replica ``number`` (1, 2 ...) of this primary, on port + ``number``."""
        return PrivateServer(
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

    def provisioned_replicas(self) -> list[PrivateServer]:
        folder = self.root / "replicas"
        numbers = sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []
        return [r for r in map(self.replica, numbers) if r.provisioned]

    def _provision(self, replicas: list[PrivateServer], timeout: float) -> None:
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

    def start_replica(self, primary: PrivateServer, *, timeout: float = 120.0) -> None:
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

    def _follow(self, primary: PrivateServer) -> None:
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


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
