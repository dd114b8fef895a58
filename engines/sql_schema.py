"""The business tables described for an LLM that writes SQL: compact DDL with what it cannot guess.

A small model writes joins and filters from what the prompt shows it, so each table is shown as the
``CREATE TABLE`` text code models were trained on, plus what the bare schema hides:

* table and column comments (what a column means, which date a window starts from);
* foreign keys, declared or, where none are declared, inferred from ``<name>_id`` columns, written
  as ``REFERENCES other(id)`` on the column, so that a column living in another table is reached
  by a JOIN instead of being invented;
* the values of ENUM columns, and of short text columns with few distinct values (read from a
  bounded sample of rows, so describing a huge table stays cheap), so that ``country = 'DE'``
  is written instead of ``country = 'Germany'``.

When the server answers "Unknown column", :meth:`SchemaDescriber.hint_for` names the table that has
the column and the join that reaches it: the correction a small model most often cannot find alone.

``DescribedSQLDatabase`` is LlamaIndex's ``SQLDatabase`` with this description as its table info,
so LlamaIndex's own ``NLSQLTableQueryEngine`` puts it into the prompt. Descriptions are computed
once per table and kept: the prompt's schema part is then the same for every question, which is
what lets the LLM's prompt cache reuse it.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from llama_index.core import SQLDatabase
from sqlalchemy import MetaData

from kb.stores.connection import MariaDBConnection, quote_identifier

SAMPLE_ROWS = 10_000  # rows looked at per column for its distinct values
MAX_LISTED = 25  # a column with more distinct values than this gets two examples instead of a list
_SAMPLED_TYPES = ("char", "varchar", "nvarchar")
_UNKNOWN_COLUMN = re.compile(r"Unknown column '(?:([^'.]+)\.)?([^'.]+)'", re.I)
_UNKNOWN_TABLE = re.compile(
    r"table '([^']+)' is not one of the allowed tables|Table '[^'.]*\.?([^']+)' doesn't exist", re.I
)


def _quoted(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


@dataclass
class Column:
    name: str
    type_text: str
    primary: bool = False
    references: Optional[tuple[str, str]] = None
    notes: list[str] = field(default_factory=list)
    values: Optional[list[str]] = None  # every value it holds, when known (ENUM members, a complete sample)


@dataclass
class Table:
    name: str
    comment: str
    columns: list[Column]

    def ddl(self) -> str:
        lines = [f"CREATE TABLE {self.name} (" + (f"  -- {self.comment}" if self.comment else "")]
        for i, col in enumerate(self.columns):
            definition = f"  {col.name} {col.type_text}" + (" PRIMARY KEY" if col.primary else "")
            if col.references:
                definition += f" REFERENCES {col.references[0]}({col.references[1]})"
            comma = "," if i < len(self.columns) - 1 else ""
            lines.append(definition + comma + (f"  -- {'; '.join(col.notes)}" if col.notes else ""))
        return "\n".join(lines) + "\n);"


class SchemaDescriber:
    """Reads ``information_schema`` and a sample of each short text column, through the given account."""

    def __init__(self, connection: MariaDBConnection, database: str, tables: Sequence[str]) -> None:
        self._conn = connection
        self.database = database
        self.tables = list(tables)
        self._tables: dict[str, Table] = {}

    def _values(self, table: str, column: str) -> tuple[list[Any], bool]:
        """The most frequent values of a column in a sample of rows; True when that is all of them."""
        col = quote_identifier(column)
        rows = self._conn.fetchall(
            f"SELECT v, COUNT(*) AS n FROM (SELECT {col} AS v FROM {quote_identifier(self.database)}."
            f"{quote_identifier(table)} WHERE {col} IS NOT NULL LIMIT {SAMPLE_ROWS}) s GROUP BY v ORDER BY n DESC, v "
            f"LIMIT {MAX_LISTED + 1}"
        )
        values = [row[0] for row in rows]
        return values[:MAX_LISTED], len(values) <= MAX_LISTED

    def _inferred_reference(self, column: str, own: str) -> Optional[tuple[str, str]]:
        """``customer_id`` -> customers(id) when the schema declares no foreign key for it."""
        match = re.fullmatch(r"(\w+?)_?(id|Id|ID)", column)
        if not match or not match[1]:
            return None
        stem = match[1].lower()
        for candidate in self.tables:
            if candidate != own and candidate.lower() in (stem, stem + "s", stem + "es", stem.rstrip("y") + "ies"):
                return candidate, "id" if match[2] == "id" else column
        return None

    def table(self, name: str) -> Table:
        if name in self._tables:
            return self._tables[name]
        declared = {
            col: (ref_table, ref_col)
            for col, ref_table, ref_col in self._conn.fetchall(
                "SELECT COLUMN_NAME, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
                "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND REFERENCED_TABLE_NAME IS NOT NULL",
                (self.database, name),
            )
        }
        comment = self._conn.fetchall(
            "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (self.database, name),
        )
        columns = []
        for col_name, column_type, data_type, key, col_comment, max_length, nullable in self._conn.fetchall(
            "SELECT COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, COLUMN_KEY, COLUMN_COMMENT, CHARACTER_MAXIMUM_LENGTH, IS_NULLABLE "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (self.database, name),
        ):
            shown = re.sub(r"^(\w*int)\(\d+\)", r"\1", column_type)  # INT(11): the width is noise
            shown = data_type.upper() + shown[len(data_type) :] if data_type in ("enum", "set") else shown.upper()
            if nullable == "NO" and key != "PRI":  # `IS NULL` on it would find nothing: say so
                shown += " NOT NULL"
            column = Column(col_name, shown, primary=key == "PRI", notes=[col_comment] if col_comment else [])
            column.references = declared.get(col_name) or (
                None if column.primary else self._inferred_reference(col_name, name)
            )
            if data_type in ("enum", "set"):
                column.values = [v.replace("''", "'") for v in re.findall(r"'((?:[^']|'')*)'", column_type)]
            if data_type in _SAMPLED_TYPES and (max_length or 0) <= 100 and not column.primary:
                values, complete = self._values(name, col_name)
                if values:
                    listed = values if complete else values[:2]
                    column.notes.append(("values: " if complete else "e.g. ") + ", ".join(_quoted(v) for v in listed))
                    column.values = [str(v) for v in values] if complete else None
            columns.append(column)
        self._tables[name] = Table(name, comment[0][0] if comment and comment[0][0] else "", columns)
        return self._tables[name]

    def describe(self, name: str) -> str:
        return self.table(name).ddl()

    # -- corrections -----------------------------------------------------------------------------------
    def _join_path(self, start: str, goal: str) -> list[tuple[str, str, str, str]]:
        """The shortest chain of foreign keys from ``start`` to ``goal``: (table, column, ref_table, ref_column)."""
        edges: dict[str, list[tuple[str, str, str, str]]] = {t: [] for t in self.tables}
        for t in self.tables:
            for col in self.table(t).columns:
                if col.references and col.references[0] in edges:
                    ref_table, ref_col = col.references
                    edges[t].append((t, col.name, ref_table, ref_col))
                    edges[ref_table].append((ref_table, ref_col, t, col.name))
        previous: dict[str, tuple[str, tuple[str, str, str, str]]] = {}
        queue, seen = deque([start]), {start}
        while queue:
            here = queue.popleft()
            if here == goal:
                path = []
                while here != start:
                    here, edge = previous[here]
                    path.append(edge)
                return path[::-1]
            for edge in edges.get(here, []):
                if edge[2] not in seen:
                    seen.add(edge[2])
                    previous[edge[2]] = (here, edge)
                    queue.append(edge[2])
        return []

    @staticmethod
    def _table_of(sql: str, qualifier: str) -> Optional[str]:
        """The table an alias (or a table name) stands for in ``sql``."""
        import sqlglot
        from sqlglot import exp

        try:
            tree = sqlglot.parse_one(sql, read="mysql")
        except Exception:  # the failed statement may not parse: no alias to resolve then
            return None
        for table in tree.find_all(exp.Table):
            if qualifier.lower() in (table.alias_or_name.lower(), table.name.lower()):
                return table.name
        return None

    def hint_for(self, error: str, used_tables: Sequence[str], sql: str = "") -> str:
        """What to say besides the error: where an unknown column lives and the join that reaches it
        from the table the statement wrongly took it from; for an unknown table, the columns that
        look like it."""
        table = _UNKNOWN_TABLE.search(error or "")
        if table:
            return self._hint_for_table(table[1] or table[2])
        match = _UNKNOWN_COLUMN.search(error or "")
        if not match:
            return ""
        qualifier, column = match[1], match[2]
        owners = [t for t in self.tables if any(c.name.lower() == column.lower() for c in self.table(t).columns)]
        if not owners:
            return f"There is no column {column} in any table; use only the columns listed above."
        wrong = self._table_of(sql, qualifier) if qualifier and sql else None
        starts = [wrong] if wrong else [t for t in used_tables if t not in owners]
        best: Optional[tuple[str, str, list[tuple[str, str, str, str]]]] = None
        for start in starts:
            for owner in owners:
                path = self._join_path(start, owner)
                if path and (best is None or len(path) < len(best[2])):
                    best = (start, owner, path)
        hint = f"{column} is a column of {', '.join(owners)}" + (f", not of {wrong}" if wrong else "") + "."
        if best:
            joins = " ".join(f"JOIN {b} ON {b}.{bc} = {a}.{ac}" for a, ac, b, bc in best[2])
            hint += f" From {best[0]}: {joins}, then use {best[1]}.{column}."
        return hint

    def _nearest_owner(self, start: str, column: str) -> Optional[tuple[str, list[tuple[str, str, str, str]]]]:
        """The one table holding ``column`` that is fewest foreign keys away from ``start``, and the path."""
        reachable = []
        for owner in self.tables:
            if owner != start and any(c.name.lower() == column for c in self.table(owner).columns):
                path = self._join_path(start, owner)
                if path:
                    reachable.append((len(path), owner, path))
        reachable.sort(key=lambda r: r[0])
        if not reachable or (len(reachable) > 1 and reachable[0][0] == reachable[1][0]):
            return None  # none, or two equally near: which one was meant is the model's call
        return reachable[0][1], reachable[0][2]

    def add_missing_join(self, sql: str, error: str) -> Optional[str]:
        """The statement repaired along the foreign keys when the server says a column is unknown; None
        when there is no single obvious repair. A small model, told where the column is, often writes
        the same statement again; these repairs are what it meant, so kb writes them itself (the guard
        checks the result like any other attempt):

        * the column is qualified with the wrong table while the query has one table holding it
          (``T2.Name`` where ``T1`` is that table, or ``InvoiceLine.Quantity`` where it is ``T2``):
          the qualifier is corrected;
        * otherwise the table it was taken from (its qualifier's, or the query's only table; a
          subquery keeps its own) reaches the nearest table holding it through foreign keys: that
          join is added."""
        import sqlglot
        from sqlglot import exp

        match = _UNKNOWN_COLUMN.search(error or "")
        if not match:
            return None
        qualifier, column = (match[1] or "").lower(), match[2].lower()
        try:
            tree = sqlglot.parse_one(sql, read="mysql")
        except Exception:  # not parseable: the LLM rewrites it
            return None
        select = tree if isinstance(tree, exp.Select) else tree.find(exp.Select)
        if select is None:
            return None
        outer = [t for t in select.find_all(exp.Table) if t.find_ancestor(exp.Select) is select]
        if not outer or any(t.name not in self.tables for t in outer):
            return None

        def has(table: str) -> bool:
            return any(c.name.lower() == column for c in self.table(table).columns)

        def outer_columns() -> list[Any]:
            return [
                c
                for c in select.find_all(exp.Column)
                if c.find_ancestor(exp.Select) is select
                and c.name.lower() == column
                and c.table.lower() in ("", qualifier)
            ]

        holders = [t for t in outer if has(t.name)]
        named = [t for t in outer if qualifier in (t.alias_or_name.lower(), t.name.lower())]
        if qualifier and len(holders) == 1 and (not named or not has(named[0].name)):
            for col in outer_columns():
                col.set("table", exp.to_identifier(holders[0].alias_or_name))
            return tree.sql(dialect="mysql")
        if holders:
            return None  # a table of the query has it: the error is about something else
        start = named[0] if qualifier and named else (outer[0] if not qualifier and len(outer) == 1 else None)
        if start is None:
            return None
        nearest = self._nearest_owner(start.name, column)
        if nearest is None:
            return None
        owner, path = nearest
        alias = start.alias_or_name
        for col in outer_columns():
            col.set("table", exp.to_identifier(owner))
        if len(outer) == 1:  # the others are qualified, as the join could make them ambiguous
            own_columns = {c.name.lower() for c in self.table(start.name).columns}
            for col in select.find_all(exp.Column):
                if col.find_ancestor(exp.Select) is select and not col.table and col.name.lower() in own_columns:
                    col.set("table", exp.to_identifier(alias))
        for a, a_col, b, b_col in path:
            left = alias if a == start.name else a
            select.join(b, on=f"{b}.{b_col} = {left}.{a_col}", dialect="mysql", copy=False)
        return tree.sql(dialect="mysql")

    def misplaced_value(self, sql: str) -> Optional[tuple[str, str]]:
        """A text value compared with a column whose values are all known and do not include it, while
        another column of the same table holds exactly that value (``status = 'urgent'`` where
        ``priority`` has 'urgent'): what is wrong, and the statement comparing the right column.
        Such a statement runs and silently counts nothing; small models confuse sibling columns."""
        import sqlglot
        from sqlglot import exp

        try:
            tree = sqlglot.parse_one(sql, read="mysql")
        except Exception:
            return None
        for comparison in tree.find_all(exp.EQ, exp.NEQ, exp.In):
            col = comparison.this if isinstance(comparison.this, exp.Column) else None
            others = comparison.expressions if isinstance(comparison, exp.In) else [comparison.expression]
            if col is None or not others or not all(isinstance(o, exp.Literal) and o.is_string for o in others):
                continue
            table = self._column_table(tree, col)
            if table is None:
                continue
            wanted = {str(o.this).lower() for o in others}
            known = self._known_values(table, col.name)
            if known is None or wanted <= known:
                continue
            holders = [
                c.name
                for c in self.table(table).columns
                if c.name.lower() != col.name.lower()
                and (values := self._known_values(table, c.name))
                and wanted <= values
            ]
            if len(holders) != 1:
                continue
            problem = f"{table}.{col.name} has no value {', '.join(sorted(wanted))}; {table}.{holders[0]} has"
            col.set("this", exp.to_identifier(holders[0]))
            return problem, tree.sql(dialect="mysql")
        return None

    def _known_values(self, table: str, column: str) -> Optional[set[str]]:
        """Every value of a column, lower-cased (MariaDB compares case-insensitively), when known."""
        for col in self.table(table).columns:
            if col.name.lower() == column.lower() and col.values is not None:
                return {v.lower() for v in col.values}
        return None

    def _column_table(self, tree: Any, col: Any) -> Optional[str]:
        """The table a column of ``tree`` belongs to: its qualifier's, or the one table of its query having it."""
        from sqlglot import exp

        if col.table:
            return self._table_of(tree.sql(dialect="mysql"), col.table)
        scope = col.find_ancestor(exp.Select)
        if scope is None:
            return None
        names = [
            t.name for t in scope.find_all(exp.Table) if t.find_ancestor(exp.Select) is scope and t.name in self.tables
        ]
        having = [t for t in names if any(c.name.lower() == col.name.lower() for c in self.table(t).columns)]
        return having[0] if len(having) == 1 else None

    def _hint_for_table(self, name: str) -> str:
        """The real tables, and those tables and columns whose names share a word with ``name``."""
        words = {w.lower().rstrip("s") for w in re.split(r"[_\W]+|(?<=[a-z])(?=[A-Z])", name) if len(w) >= 4}
        tables = [t for t in self.tables if any(w in t.lower() for w in words)]
        columns = [
            f"{t}.{c.name}"
            for t in self.tables
            for c in self.table(t).columns
            if not c.primary and any(w in c.name.lower() for w in words)
        ]
        hint = f"There is no table {name}; the tables are {', '.join(self.tables)}."
        if tables:
            hint += f" Tables like it: {', '.join(tables)}."
        return hint + (f" Columns like it: {', '.join(columns[:6])}." if columns else "")


class DescribedSQLDatabase(SQLDatabase):
    """LlamaIndex's ``SQLDatabase`` whose table info is :class:`SchemaDescriber`'s description."""

    def __init__(self, connection: MariaDBConnection, database: str, tables: Sequence[str]) -> None:
        # Reflected without following foreign keys first: SQLAlchemy's default reflects each
        # referenced table too, which the read-only account may not be allowed to see (its grants
        # are the allow-list); LlamaIndex's reflection then finds these tables loaded and stops.
        metadata = MetaData()
        metadata.reflect(bind=connection.engine, only=list(tables), resolve_fks=False)
        super().__init__(connection.engine, metadata=metadata, include_tables=list(tables), sample_rows_in_table_info=0)
        self.describer = SchemaDescriber(connection, database, tables)

    def get_single_table_info(self, table_name: str) -> str:
        return self.describer.describe(table_name)
