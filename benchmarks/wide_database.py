"""The wide-schema benchmark's database: every database of the SQL benchmark side by side in one.

``wide`` holds a copy of each table (columns, keys, indexes, comments, rows and foreign keys) of the
demo's business database and of every sample database of benchmarks/sample_databases.py, the ledger
area among them (asked nothing: tables a question must not be sent to). A table keeps its name unless
an area copied before it holds that name (compared without regard to case), and is then prefixed with
its area's key: ``classicmodels_orders`` beside the demo's ``orders``. Each set's questions are asked
of the whole (:func:`renamed`: their gold SQL over the copies' names), as an operator asks a question
of an ERP whose sales, warehouse and finance tables share one schema.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlglot
from sample_databases import load_sample
from sqlglot import exp

from kb.stores.connection import MariaDBConnection, quote_identifier

NAME = "wide"
# (area key, sample key or None for the demo's database), in the order their tables are named
AREAS: tuple[tuple[str, str | None], ...] = (
    ("demo", None),
    ("chinook", "chinook"),
    ("university", "university"),
    ("airline", "airline"),
    ("clinic", "clinic"),
    ("staff", "staff"),
    ("rental", "rental"),
    ("supply", "supply"),
    ("northwind", "northwind"),
    ("classicmodels", "classicmodels"),
    ("ledger", "ledger"),
)


def _base_tables(admin: MariaDBConnection, database: str) -> list[str]:
    rows = admin.fetchall(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' "
        "ORDER BY TABLE_NAME",
        (database,),
    )
    return [row[0] for row in rows]


def _foreign_keys(admin: MariaDBConnection, database: str) -> list[tuple[str, list[str], str, list[str]]]:
    """(table, columns, referenced table, referenced columns) of every foreign key of ``database``."""
    rows = admin.fetchall(
        "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME "
        "FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME IS NOT NULL "
        "ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION",
        (database,),
    )
    keys: dict[tuple[str, str], tuple[str, list[str], str, list[str]]] = {}
    for table, constraint, column, referenced, referenced_column in rows:
        key = keys.setdefault((table, constraint), (table, [], referenced, []))
        key[1].append(column)
        key[3].append(referenced_column)
    return list(keys.values())


def build(server: Any, demo_database: str) -> dict[str, dict[str, str]]:
    """``wide`` built on ``server`` unless it is complete (each area's sample loaded first), readable by
    kb's read-only account: for each area, its tables' names in ``wide`` by their own names."""
    admin = MariaDBConnection(server.admin_url(), pool_size=1)
    try:
        sources = {area: load_sample(server, sample) if sample else demo_database for area, sample in AREAS}
        names: dict[str, dict[str, str]] = {}
        taken: set[str] = set()
        for area, _ in AREAS:
            names[area] = {}
            for table in _base_tables(admin, sources[area]):
                name = table if table.lower() not in taken else f"{area}_{table}"
                taken.add(name.lower())
                names[area][table] = name
        expected = sum(len(tables) for tables in names.values())
        if len(_base_tables(admin, NAME)) != expected:
            _copy(admin, sources, names)
        user, _ = server.readonly_credentials()
        for host in ("localhost", "127.0.0.1"):
            admin.execute(f"GRANT SELECT ON {quote_identifier(NAME)}.* TO '{user}'@'{host}'")
        return names
    finally:
        admin.dispose()


def _copy(admin: MariaDBConnection, sources: dict[str, str], names: dict[str, dict[str, str]]) -> None:
    wide = quote_identifier(NAME)
    admin.execute(f"DROP DATABASE IF EXISTS {wide}")
    admin.execute(f"CREATE DATABASE {wide}")
    with admin.cursor() as session:  # one connection: foreign key checks off for the copies
        session.execute("SET SESSION foreign_key_checks = 0")
        for area, tables in names.items():
            source = quote_identifier(sources[area])
            for table, name in tables.items():
                session.execute(f"CREATE TABLE {wide}.{quote_identifier(name)} LIKE {source}.{quote_identifier(table)}")
                session.execute(
                    f"INSERT INTO {wide}.{quote_identifier(name)} SELECT * FROM {source}.{quote_identifier(table)}"
                )
        for area, tables in names.items():
            for table, columns, referenced, referenced_columns in _foreign_keys(admin, sources[area]):
                session.execute(
                    f"ALTER TABLE {wide}.{quote_identifier(tables[table])} ADD FOREIGN KEY "
                    f"({', '.join(map(quote_identifier, columns))}) REFERENCES "
                    f"{wide}.{quote_identifier(tables[referenced])} ({', '.join(map(quote_identifier, referenced_columns))})"
                )


def renamed(sql: str, names: dict[str, str]) -> str:
    """``sql`` (a statement over an area's own database) over the area's tables in ``wide``."""
    by_lower = {table.lower(): name for table, name in names.items()}
    tree = sqlglot.parse_one(sql, read="mysql")
    for table in tree.find_all(exp.Table):
        name = by_lower.get(table.name.lower())
        if name is not None and name != table.name:
            table.set("this", exp.to_identifier(name))
            table.set("db", None)
    return tree.sql(dialect="mysql")


def gold_tables(sql: str) -> set[str]:
    """The tables a statement reads (its CTEs aside), as it names them."""
    tree = sqlglot.parse_one(sql, read="mysql")
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    return {t.name for t in tree.find_all(exp.Table) if t.name.lower() not in ctes}


def tables_by_area(names: dict[str, dict[str, str]]) -> dict[str, list[str]]:
    """Each area's tables in ``wide``."""
    found: dict[str, list[str]] = defaultdict(list)
    for area, tables in names.items():
        found[area].extend(tables.values())
    return dict(found)
