"""The business database: where it is, the read-only account that reads it, the demo data.

On kb's private server the demo data is loaded into ``sql.database`` and the account ``kb_reader``
gets SELECT on exactly those tables (nothing else: no other database, no writes). On an external
server, ``sql.url`` must name such an account; kb does not create it there:

    CREATE USER 'kb_reader'@'%' IDENTIFIED BY '...';
    GRANT SELECT ON shop.orders TO 'kb_reader'@'%';   -- one GRANT per table the questions may read
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from sqlalchemy.engine import URL

from kb.config import Settings
from kb.database import private_server, uses_private_server
from kb.errors import KBError
from stores.connection import MariaDBConnection, quote_identifier

DATA = Path(__file__).resolve().parents[1] / "data"


def readonly_url(settings: Settings) -> URL | str:
    if settings.sql.url:
        return settings.sql.url
    if not uses_private_server(settings):
        raise KBError("the business database needs sql.url (a SELECT-only account) when database.url is set; "
                      "or disable it with sql.enabled: false")
    server = private_server(settings)
    user, password = server.readonly_credentials()
    return URL.create("mariadb+mariadbconnector", username=user, password=password, host="localhost",
                      database=settings.sql.database, query={"unix_socket": str(server.socket_path)})


def _seed_module():
    spec = importlib.util.spec_from_file_location("kb_demo_seed", DATA / "business" / "seed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_demo_data(settings: Settings, *, force: bool = False) -> dict[str, int]:
    """Create and fill the demo business database on the private server (idempotent)."""
    if not uses_private_server(settings):
        raise KBError("the demo business database is loaded on kb's private server only; with database.url set, "
                      "load data/business/schema.sql yourself and point sql.url at a read-only account")
    server = private_server(settings)
    server.start()
    admin = MariaDBConnection(server.admin_url(), pool_size=1)
    db = quote_identifier(settings.sql.database)
    rows = _seed_module().rows()
    try:
        present = {r[0] for r in admin.fetchall(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (settings.sql.database,))}
        loaded = set(rows) <= present and not force and admin.fetchall(
            f"SELECT COUNT(*) FROM {db}.`orders`")[0][0] == len(rows["orders"][1])
        if not loaded:
            schema = (DATA / "business" / "schema.sql").read_text()
            statements = [s.strip() for s in re.split(r";\s*\n", re.sub(r"--[^\n]*", "", schema)) if s.strip()]
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {db}")
                cur.execute(f"CREATE DATABASE {db} CHARACTER SET utf8mb4")
                cur.execute(f"USE {db}")
                for statement in statements:
                    cur.execute(statement)
                for table, (columns, values) in rows.items():
                    cols = ", ".join(quote_identifier(c) for c in columns)
                    cur.executemany(f"INSERT INTO {quote_identifier(table)} ({cols}) VALUES "
                                    f"({', '.join('?' * len(columns))})", values)
        user, _ = server.readonly_credentials()
        tables = settings.sql.tables or list(rows)
        with admin.cursor() as cur:
            for host in ("localhost", "127.0.0.1"):
                for table in tables:
                    cur.execute(f"GRANT SELECT ON {db}.{quote_identifier(table)} TO '{user}'@'{host}'")
        return {table: len(values) for table, (_, values) in rows.items()}
    finally:
        admin.dispose()
