"""SQL text for the benchmarks' generated sample databases (written to a script file and run by the
server's own client, so values are written as literals here, not bound)."""

from __future__ import annotations


def literal(value: object) -> str:
    """``value`` as a MariaDB literal: NULL, a number, or a quoted string."""
    if value is None:
        return "NULL"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def insert_statement(table: str, rows: list[tuple[object, ...]]) -> str:
    """One INSERT of every row of ``rows`` into ``table``."""
    values = ",\n".join("(" + ", ".join(literal(v) for v in row) + ")" for row in rows)
    return f"INSERT INTO {table} VALUES\n{values};\n"
