"""Checked statements run on the business database: read-only, time-limited, row-capped.

Layer 3 of kb's SQL safety (:mod:`kb.engines.sql.guard` is layer 1): every statement runs through the
SELECT-only account, inside a ``READ ONLY`` transaction rolled back afterwards, under
``max_statement_time``, and at most ``row_limit`` rows are kept (``truncated`` says there were more).
The server's warnings that it could not convert a value are kept: the statement then answers another
question (the ``server warning`` check, :mod:`kb.engines.sql.checks`).
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Optional

from kb.engines.sql.guard import CheckedSQL
from kb.stores.connection import MariaDBConnection
from kb.stores.errors import DatabaseUnavailable, is_database_down

# The server's warnings that a value could not be read as the type an expression needs ("Incorrect
# datetime value: 'KB121' for column flights.flightNumber", "Truncated incorrect DOUBLE value: 'Ines'"):
# the statement ran on values the server replaced by NULL or 0, so it answers another question.
CONVERSION_WARNINGS = (1292, 1366)


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def distinct_column_names(names: Sequence[str]) -> list[str]:
    """A result's column names, each once: a name that repeats one before it gets ``_2``, ``_3`` ...
    (``d.LastName, s.LastName`` of a self-join are ``LastName`` and ``LastName_2``), so that a row as a
    dict keeps every column; the server names a column by its expression or alias only."""
    taken: set[str] = set()
    distinct = []
    for name in names:
        unique, n = name, 1
        while unique.lower() in taken:
            n += 1
            unique = f"{name}_{n}"
        taken.add(unique.lower())
        distinct.append(unique)
    return distinct


@dataclass
class Statement:
    """One statement that was run, and what it gave."""

    sql: str
    rows: Optional[list[dict[str, Any]]] = None  # None: it did not run (refused, rejected)
    truncated: bool = False
    error: Optional[str] = None
    warning: Optional[str] = None  # the server's first warning that it could not convert a value
    repaired_by_kb: bool = False  # kb added a join the server's error asked for (StatementRepairs)


@dataclass
class ReadOnlyRunner:
    """Runs checked statements through ``readonly`` (the SELECT-only account) with ``row_limit`` and
    ``timeout_s``."""

    readonly: MariaDBConnection
    row_limit: int
    timeout_s: float

    def run(self, checked: CheckedSQL) -> Statement:
        """A checked statement run read-only: its rows (at most ``row_limit``; ``truncated`` when there
        were more) and the server's first conversion warning (``CONVERSION_WARNINGS``); the server's
        error is raised."""
        warning = None
        with self.readonly.cursor() as cur:
            cur.execute("START TRANSACTION READ ONLY")
            try:
                cur.execute(f"SET STATEMENT max_statement_time = {float(self.timeout_s)} FOR {checked.sql}")
                columns = distinct_column_names([d[0] for d in cur.description or []])
                fetched = cur.fetchmany(self.row_limit + 1)
                if getattr(cur, "warnings", 0):
                    cur.execute("SHOW WARNINGS LIMIT 5")
                    warning = next((str(m) for _, code, m in cur.fetchall() if code in CONVERSION_WARNINGS), None)
            finally:
                cur.execute("ROLLBACK")
        rows = [{c: _plain(v) for c, v in zip(columns, row)} for row in fetched[: self.row_limit]]
        return Statement(checked.sql, rows, len(fetched) > self.row_limit, warning=warning)

    def run_checked(self, checked: CheckedSQL) -> Statement:
        """Run a checked statement: its rows, or the server's error (a server that is down is raised)."""
        try:
            return self.run(checked)
        except DatabaseUnavailable:
            raise  # the server is down: nothing a rewrite of the statement could change
        except Exception as exc:  # the server refused it: unknown column, time limit, no privilege...
            error = str(getattr(exc, "orig", exc)).splitlines()[0][:300]
            if is_database_down(exc):
                raise DatabaseUnavailable(
                    f"the business database at {self.readonly.where} stopped answering: {error}"
                ) from None
            return Statement(checked.sql, error=error)
