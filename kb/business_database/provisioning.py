"""The business database: where it is, the read-only account that reads it, the demo data.

On kb's private server the demo data is loaded into ``sql.database`` and the account ``kb_reader``
gets SELECT on exactly those tables (nothing else: no other database, no writes). On an external
server, ``sql.url`` must name such an account; kb does not create it there:

    CREATE USER 'kb_reader'@'%' IDENTIFIED BY '...';
    GRANT SELECT ON shop.orders TO 'kb_reader'@'%';   -- one GRANT per table the questions may read
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from sqlalchemy.engine import URL

from kb import demo_data
from kb.config import Settings, SqlSettings
from kb.demo_data.business import seed
from kb.errors import KBError
from kb.server.database import private_server, uses_private_server
from kb.stores.connection import MariaDBConnection, quote_identifier
from kb.stores.sql_utils import placeholders

# data/ of a checkout, or kb/demo_data/ of an installed kb (pyproject maps one to the other).
DATA = Path(demo_data.__file__).resolve().parent


def readonly_url(settings: Settings) -> URL | str:
    if settings.sql.url:
        return settings.sql.url.get_secret_value()
    if not uses_private_server(settings):
        raise KBError(
            "the business database needs sql.url (a SELECT-only account) when database.url is set; "
            "or disable it with sql.enabled: false"
        )
    server = private_server(settings)
    user, password = server.readonly_credentials()
    return URL.create(
        "mariadb+mariadbconnector",
        username=user,
        password=password,
        host="localhost",
        database=settings.sql.database,
        query={"unix_socket": str(server.socket_path)},
    )


def demo_data_version() -> str:
    """Changes whenever the demo schema or its seed changes: an older copy is then reloaded."""
    digest = hashlib.sha256()
    for name in ("schema.sql", "seed.py"):
        digest.update((DATA / "business" / name).read_bytes())
    return f"kb demo data {digest.hexdigest()[:16]}"


def load_demo_data(settings: Settings, *, force: bool = False) -> dict[str, int]:
    """Create and fill the demo business database on the private server (idempotent)."""
    if not uses_private_server(settings):
        raise KBError(
            "the demo business database is loaded on kb's private server only; with database.url set, "
            "load data/business/schema.sql yourself and point sql.url at a read-only account"
        )
    server = private_server(settings)
    server.start()
    admin = MariaDBConnection(server.admin_url(), pool_size=1)
    db = quote_identifier(settings.sql.database)
    rows = seed.rows()
    version = demo_data_version()
    try:
        comment = admin.fetchall(
            "SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (settings.sql.database,)
        )
        if force or not comment or comment[0][0] != version:
            schema = (DATA / "business" / "schema.sql").read_text()
            statements = [s.strip() for s in re.split(r";\s*\n", re.sub(r"--[^\n]*", "", schema)) if s.strip()]
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {db}")
                # The version is written last (the comment), so a load that dies half-way is redone.
                cur.execute(f"CREATE DATABASE {db} CHARACTER SET utf8mb4")
                cur.execute(f"USE {db}")
                for statement in statements:
                    cur.execute(statement)
                for table, (columns, values) in rows.items():
                    cols = ", ".join(quote_identifier(c) for c in columns)
                    cur.executemany(
                        f"INSERT INTO {quote_identifier(table)} ({cols}) VALUES ({placeholders(len(columns))})", values
                    )
                cur.execute(f"ALTER DATABASE {db} COMMENT '{version}'")  # hex digits: nothing to escape
        sync_reader_grants(settings, admin)
        return {table: len(values) for table, (_, values) in rows.items()}
    finally:
        admin.dispose()


def sync_reader_grants(settings: Settings, admin: MariaDBConnection | None = None) -> list[str]:
    """On kb's private server, make the read-only account's grants equal the allow-list (``sql.tables``,
    or every table of ``sql.database``): the guard and the account then agree on what may be read.
    Returns the tables the account may read."""
    server = private_server(settings)
    own = admin is None
    admin = admin or MariaDBConnection(server.admin_url(), pool_size=1)
    database = settings.sql.database
    db = quote_identifier(database)
    user, _ = server.readonly_credentials()
    try:
        present = {
            row[0]
            for row in admin.fetchall(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (database,)
            )
        }
        wanted = [t for t in (settings.sql.tables or sorted(present)) if t in present]
        with admin.cursor() as cur:
            for host in ("localhost", "127.0.0.1"):
                cur.execute(
                    "SELECT Table_name FROM mysql.tables_priv WHERE User = ? AND Host = ? AND Db = ?",
                    (user, host, database),
                )
                granted = {row[0] for row in cur.fetchall()}
                for table in sorted(granted - set(wanted)):
                    cur.execute(f"REVOKE SELECT ON {db}.{quote_identifier(table)} FROM '{user}'@'{host}'")
                for table in wanted:
                    cur.execute(f"GRANT SELECT ON {db}.{quote_identifier(table)} TO '{user}'@'{host}'")
        return wanted
    finally:
        if own:
            admin.dispose()


DEMO_DATABASE = SqlSettings.model_fields["database"].default  # where `kb demo` loads the business data


def sql_examples_file(settings: Settings) -> str | None:
    """``sql.examples``, or for the demo business database on the private server its own examples
    (``data/business/sql-examples.yaml``), wherever kb is run from."""
    sql = settings.sql
    if sql.examples:
        return sql.examples
    if not sql.url and uses_private_server(settings) and sql.database == DEMO_DATABASE:
        return str(DATA / "business" / "sql-examples.yaml")
    return None
