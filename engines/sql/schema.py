"""The business tables described for an LLM that writes SQL: compact DDL with what it cannot guess.

A small model writes joins and filters from what the prompt shows it, so each table is shown as the
``CREATE TABLE`` text code models were trained on, plus what the bare schema hides:

* table and column comments (what a column means, which date a window starts from);
* foreign keys, declared or, where none are declared, inferred from ``<name>_id`` columns, written
  as ``REFERENCES other(id)`` on the column, so that a column living in another table is reached
  by a JOIN instead of being invented. A key of several columns is a constraint of its own,
  ``FOREIGN KEY (part_id, supplier_id) REFERENCES part_supplier(part_id, supplier_id)``: the line's
  row is found by both columns together, never by one of them. Each column of such a key
  references, alone, what the column it points to references alone (``part_supplier.part_id``
  references ``part(id)``, so the line's ``part_id`` does too: every value it holds is a part's id),
  or, where that column references nothing alone, what its own name says (``<name>_id``, as above);
* the values of ENUM columns, and of short text columns with few distinct values (read from a
  bounded sample of rows, so describing a huge table stays cheap), so that ``country = 'DE'``
  is written instead of ``country = 'Germany'``;
* that a name does not identify a row where the data says so: in a table with a one-column
  primary key, a short text column whose name contains ``name``, with more distinct values than are
  listed, where some value is held by two rows or more of the sample. Grouped by such a name,
  "which customer placed the most orders" adds up the orders of every customer who shares it; the
  note says to group by the key. A column of few values (cities, categories) alone is listed
  instead and gets no such note: grouping by it is what a question about it means. When a table has
  several such columns that are each listed in full (``firstName``, ``lastName``), their combination
  is checked the same way (more distinct combinations than are listed, one held by two rows or
  more); it gets no note in the schema (a note there changed how the 1.5B model read unrelated
  questions about the table on the airline dev part), only the line above a question that asks
  which of the table's rows (:meth:`SchemaDescriber.shared_name_hint`).

What kb repairs in a statement written from this description is :mod:`kb.engines.sql.repairs`.

A schema too wide for every table's ``CREATE TABLE`` to fit one prompt can be shown as a catalogue
instead: one line per table with its columns, keys, references, date types and short value lists
(:meth:`Table.catalogue_entry`), a third to a quarter of the tokens, so that every prompt still shows
every table and stays the same from question to question.

``DescribedSQLDatabase`` is LlamaIndex's ``SQLDatabase`` with this description as its table info,
so LlamaIndex's own ``NLSQLTableQueryEngine`` puts it into the prompt. Descriptions are computed
once per table and kept: the prompt's schema part is then the same for every question, which is
what lets the LLM's prompt cache reuse it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from llama_index.core import SQLDatabase
from sqlalchemy import MetaData
from sqlglot import exp

from kb.engines.sql.english import asks_which, noun_forms
from kb.engines.sql.guard import table_named
from kb.stores.connection import MariaDBConnection, quote_identifier

Edge = tuple[str, str, str, str]  # one step along a foreign key: (table, column, other table, its column)

SAMPLE_ROWS = 10_000  # rows looked at per column for its distinct values
MAX_LISTED = 25  # a column with more distinct values than this gets two examples instead of a list
MAX_CATALOGUED = 6  # a catalogue entry (Table.catalogue_entry) lists a column's values up to this many
_SAMPLED_TYPES = ("char", "varchar", "nvarchar")
_TEMPORAL_TYPES = {"DATE", "DATETIME", "TIMESTAMP", "TIME", "YEAR"}
_NUMBER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "MEDIUMINT",
    "INT",
    "INTEGER",
    "BIGINT",
    "DECIMAL",
    "NUMERIC",
    "FLOAT",
    "DOUBLE",
}


def _quoted(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


@dataclass
class Column:
    name: str
    type_text: str
    primary: bool = False
    references: Optional[tuple[str, str]] = None
    notes: list[str] = field(default_factory=list)  # kb's notes after the comment and the values ("not unique ...")
    comment: str = ""  # the schema's own comment on the column ("list price in EUR"), "" when none
    values: Optional[list[str]] = None  # every value it holds, when known (ENUM members, a complete sample)
    examples: list[str] = field(default_factory=list)  # its two commonest values, when too many to list
    shared: Optional[str] = None  # a name several rows share: the key that tells those rows apart
    unique: bool = False  # every row holds its own value: the one-column key, a UNIQUE column, or data seen so
    times_of_day: bool = False  # a DATETIME or TIMESTAMP column some of whose values are not at midnight
    nullable: bool = False  # it may hold NULL

    @property
    def kind(self) -> str:
        """ "time" (a date or time type), "number" or "text": what a comparison or function can do with it."""
        base = self.type_text.split("(")[0].split()[0].upper()
        if base in _TEMPORAL_TYPES:
            return "time"
        return "number" if base in _NUMBER_TYPES else "text"

    def shown_notes(self, listed_at_most: Optional[int] = None) -> list[str]:
        """What the schema text says after the column: its comment, its values ("values: 'a', 'b'" when
        all are known, and at most ``listed_at_most`` when given; else "e.g." two of them; an ENUM's or
        SET's members are in its type already), then kb's :attr:`notes`."""
        shown = [self.comment] if self.comment else []
        if not self.type_text.startswith(("ENUM(", "SET(")):
            if self.values and (listed_at_most is None or len(self.values) <= listed_at_most):
                shown.append("values: " + ", ".join(_quoted(v) for v in self.values))
            elif self.values or self.examples:
                shown.append("e.g. " + ", ".join(_quoted(v) for v in (self.examples or self.values or [])[:2]))
        return shown + self.notes


@dataclass(frozen=True)
class CompositeReference:
    """A foreign key of several columns: ``columns`` hold, together, the ``referenced`` columns of one
    row of ``table`` (``(part_id, supplier_id) -> part_supplier(part_id, supplier_id)``)."""

    columns: tuple[str, ...]
    table: str
    referenced: tuple[str, ...]

    def ddl(self) -> str:
        return f"FOREIGN KEY ({', '.join(self.columns)}) REFERENCES {self.table}({', '.join(self.referenced)})"


@dataclass
class Table:
    name: str
    comment: str
    columns: list[Column]
    composite_references: list[CompositeReference] = field(default_factory=list)

    @property
    def key(self) -> list[Column]:
        """The columns of its primary key, in the table's order (several for a composite key)."""
        return [c for c in self.columns if c.primary]

    def column(self, name: str) -> Optional[Column]:
        """Its column called ``name``, as MariaDB matches names: without regard to case; None: none."""
        return next((c for c in self.columns if c.name.lower() == name.lower()), None)

    def columns_of_kind(self, kind: str, but: str = "") -> list[str]:
        """The names of this table's columns of ``kind`` (:attr:`Column.kind`) that are not keys (a key
        is not a date or an amount to compare), ``but`` one left out."""
        return [
            c.name
            for c in self.columns
            if c.kind == kind and not c.primary and not c.references and c.name.lower() != but.lower()
        ]

    def name_columns(self) -> list[str]:
        """The columns that name a row to a reader: text columns, not keys, whose name says ``name`` or
        ``title`` (``name``, ``MedicationName``, ``title``), in the table's order."""
        return [
            c.name
            for c in self.columns
            if c.kind == "text" and not c.primary and not c.references and re.search("name|title", c.name, re.I)
        ]

    def period_end(self) -> Optional[Column]:
        """The column that ends each row's period when the table is a history of periods, else None: its
        primary key has several columns, one of them a date or time (``PRIMARY KEY (emp_no, from_date)``:
        one row per employee and start), and exactly one other date or time column may be NULL (``to_date``:
        NULL while the period lasts, so the row in effect now is the one whose end is NULL)."""
        keys = self.key
        if len(keys) < 2 or not any(c.kind == "time" for c in keys):
            return None
        ends = [c for c in self.columns if not c.primary and c.kind == "time" and c.nullable]
        return ends[0] if len(ends) == 1 else None

    def ddl(self, listed_at_most: Optional[int] = None) -> str:
        """The table as a ``CREATE TABLE`` statement with the notes as comments. A key of one column is
        marked on that column; a key of several (``PRIMARY KEY (emp_no, from_date)``: many rows per
        ``emp_no``) is a constraint of its own, as a column marked ``PRIMARY KEY`` would say that column
        alone tells the rows apart; so is a foreign key of several columns (:class:`CompositeReference`).
        With ``listed_at_most``, a column's list of more values than that is shown as two examples."""
        keys = [col.name for col in self.key]
        definitions = []
        for col in self.columns:
            definition = f"  {col.name} {col.type_text}" + (" PRIMARY KEY" if col.primary and len(keys) == 1 else "")
            if col.references:
                definition += f" REFERENCES {col.references[0]}({col.references[1]})"
            notes = col.shown_notes(listed_at_most)
            definitions.append((definition, f"  -- {'; '.join(notes)}" if notes else ""))
        if len(keys) > 1:
            definitions.append((f"  PRIMARY KEY ({', '.join(keys)})", ""))
        definitions += [(f"  {reference.ddl()}", "") for reference in self.composite_references]
        lines = [f"CREATE TABLE {self.name} (" + (f"  -- {self.comment}" if self.comment else "")]
        for i, (definition, note) in enumerate(definitions):
            lines.append(definition + ("," if i < len(definitions) - 1 else "") + note)
        return "\n".join(lines) + "\n);"

    def catalogue_entry(self) -> str:
        """The table in one line, for a prompt that shows every table of a wide schema: its columns,
        the key of one column marked ``key``, a reference as ``-> table.column``, the type of a date or
        time column, the values of a column that holds at most ``MAX_CATALOGUED`` (a status, a kind),
        and the table's comment: ``orders(id key, customer_id -> customers.id, ordered_on DATE,
        status ('open'|'closed'))  -- one row per order``. A key or reference of several columns is
        written after the columns."""
        keys = self.key
        parts = []
        for col in self.columns:
            part = col.name
            if col.kind == "time":
                part += " " + col.type_text.replace(" NOT NULL", "")
            if col.primary and len(keys) == 1:
                part += " key"
            if col.references:
                part += f" -> {col.references[0]}.{col.references[1]}"
            elif col.values and len(col.values) <= MAX_CATALOGUED and not col.primary:
                part += " (" + "|".join(_quoted(value) for value in col.values) + ")"
            parts.append(part)
        if len(keys) > 1:
            parts.append(f"key ({', '.join(col.name for col in keys)})")
        parts += [
            f"({', '.join(reference.columns)}) -> {reference.table}({', '.join(reference.referenced)})"
            for reference in self.composite_references
        ]
        return f"{self.name}({', '.join(parts)})" + (f"  -- {self.comment}" if self.comment else "")


REMEMBERED = 4096  # lookups of values and patterns kept per schema: the model writes new ones every question


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    """Keep ``value`` under ``key``, forgetting everything once ``REMEMBERED`` lookups are kept (a
    long-running ``kb serve`` meets an unbounded number of the model's values and patterns)."""
    if len(cache) >= REMEMBERED:
        cache.clear()
    cache[key] = value


class SchemaDescriber:
    """Reads ``information_schema`` and a sample of each short text column, through the given account."""

    def __init__(self, connection: MariaDBConnection, database: str, tables: Sequence[str]) -> None:
        self._conn = connection
        self.database = database
        self.tables = list(tables)
        self._tables: dict[str, Table] = {}
        self._labels: dict[str, tuple[str, dict[str, str]]] = {}  # SchemaDescriber.labels, read on first use
        self._keys_holding: dict[tuple[str, str, str], Optional[frozenset[str]]] = {}  # SchemaDescriber.keys_holding
        self._any_like: dict[tuple[str, str, str], bool] = {}  # SchemaDescriber.any_like
        self._foreign_keys: Optional[dict[str, list[CompositeReference]]] = None  # SchemaDescriber._declared
        self._describing: set[str] = set()  # tables being described: a cycle of composite references stops there

    def _declared(self, table: str) -> list[CompositeReference]:
        """The foreign keys the schema declares on ``table``, one- and several-column alike, in column
        order; read for the whole database on first use (one query, not one per table)."""
        if self._foreign_keys is None:
            grouped: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
            for own, constraint, col, ref_table, ref_col in self._conn.fetchall(
                "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME "
                "FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME IS NOT NULL "
                "ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION",
                (self.database,),
            ):
                grouped.setdefault((own, constraint), []).append((col, ref_table, ref_col))
            self._foreign_keys = {}
            for (own, _), parts in grouped.items():
                self._foreign_keys.setdefault(own, []).append(
                    CompositeReference(tuple(p[0] for p in parts), parts[0][1], tuple(p[2] for p in parts))
                )
        return self._foreign_keys.get(table, [])

    def _implied_reference(self, reference: CompositeReference, column: str) -> Optional[tuple[str, str]]:
        """What ``column``, one of a composite reference's columns, references alone: what the column it
        points to references alone (``line.part_id`` -> ``part_supplier.part_id`` -> ``part(id)``); None
        when that column references nothing alone, or its table is being described (a cycle)."""
        if reference.table in self._describing or reference.table not in self.tables:
            return None
        target = reference.referenced[reference.columns.index(column)]
        referenced = next((c for c in self.table(reference.table).columns if c.name == target), None)
        return referenced.references if referenced is not None else None

    def _values(self, table: str, column: str) -> tuple[list[Any], bool, bool]:
        """The most frequent values of a column in a sample of rows; True when that is all of them; True
        when each of them is held by one row (with all of them listed, the sample was the whole table:
        ``MAX_LISTED`` rows at most, far fewer than ``SAMPLE_ROWS``)."""
        col = quote_identifier(column)
        rows = self._conn.fetchall(
            f"SELECT v, COUNT(*) AS n FROM (SELECT {col} AS v FROM {quote_identifier(self.database)}."
            f"{quote_identifier(table)} WHERE {col} IS NOT NULL LIMIT {SAMPLE_ROWS}) s GROUP BY v ORDER BY n DESC, v "
            f"LIMIT {MAX_LISTED + 1}"
        )
        values = [row[0] for row in rows]
        return values[:MAX_LISTED], len(values) <= MAX_LISTED, all(int(row[1]) == 1 for row in rows)

    def _shared_values(self, table: str, columns: Sequence[str]) -> tuple[int, int]:
        """(rows, distinct values) of a column, or of several columns together, in a sample of the rows
        where none of them is NULL."""
        cols = [quote_identifier(column) for column in columns]
        aliases = [f"v{i}" for i in range(len(cols))]
        selected = ", ".join(f"{col} AS {alias}" for col, alias in zip(cols, aliases))
        rows = self._conn.fetchall(
            f"SELECT COUNT(*), COUNT(DISTINCT {', '.join(aliases)}) FROM (SELECT {selected} FROM "
            f"{quote_identifier(self.database)}.{quote_identifier(table)} WHERE "
            + " AND ".join(f"{col} IS NOT NULL" for col in cols)
            + f" LIMIT {SAMPLE_ROWS}) s"
        )
        return int(rows[0][0]), int(rows[0][1])

    def _has_times_of_day(self, table: str, column: str) -> bool:
        """Whether some value of a date-and-time column, in a sample of its rows, is not at midnight (a
        bound written as a bare date then leaves out that day's later rows)."""
        col = quote_identifier(column)
        rows = self._conn.fetchall(
            f"SELECT 1 FROM (SELECT {col} AS v FROM {quote_identifier(self.database)}.{quote_identifier(table)} "
            f"WHERE {col} IS NOT NULL LIMIT {SAMPLE_ROWS}) s WHERE TIME(v) <> '00:00:00' LIMIT 1"
        )
        return bool(rows)

    def _inferred_reference(self, column: str, own: str) -> Optional[tuple[str, str]]:
        """``customer_id`` -> customers(id) when the schema declares no foreign key for it."""
        match = re.fullmatch(r"(\w+?)_?(id|Id|ID)", column)
        if not match or not match[1]:
            return None
        stem = match[1].lower()
        for candidate in self.tables:
            if candidate != own and stem in noun_forms(candidate):
                return candidate, "id" if match[2] == "id" else column
        return None

    def table(self, name: str) -> Table:
        if name in self._tables:
            return self._tables[name]
        self._describing.add(name)
        try:
            return self._described(name)
        finally:
            self._describing.discard(name)

    def _described(self, name: str) -> Table:
        declared = {
            reference.columns[0]: (reference.table, reference.referenced[0])
            for reference in self._declared(name)
            if len(reference.columns) == 1
        }
        composite = [reference for reference in self._declared(name) if len(reference.columns) > 1]
        for reference in composite:  # a column of a composite key alone references what its target does
            for col in reference.columns:
                if col not in declared and (implied := self._implied_reference(reference, col)) is not None:
                    declared[col] = implied
        in_composite = {col for reference in composite for col in reference.columns}
        comment = self._conn.fetchall(
            "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (self.database, name),
        )
        columns: list[Column] = []
        many_valued_names: list[Column] = []  # checked for shared values once the key is known
        listed_names: list[Column] = []  # name columns listed in full: checked together (first and last names)
        for col_name, column_type, data_type, key, col_comment, max_length, nullable in self._conn.fetchall(
            "SELECT COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, COLUMN_KEY, COLUMN_COMMENT, CHARACTER_MAXIMUM_LENGTH, IS_NULLABLE "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (self.database, name),
        ):
            shown = re.sub(r"^(\w*int)\(\d+\)", r"\1", column_type)  # INT(11): the width is noise
            shown = data_type.upper() + shown[len(data_type) :] if data_type in ("enum", "set") else shown.upper()
            if nullable == "NO" and key != "PRI":  # `IS NULL` on it would find nothing: say so
                shown += " NOT NULL"
            column = Column(
                col_name,
                shown,
                primary=key == "PRI",
                comment=col_comment or "",
            )
            column.unique = key == "UNI"
            column.nullable = nullable == "YES"
            column.references = declared.get(col_name) or (
                None if column.primary and col_name not in in_composite else self._inferred_reference(col_name, name)
            )
            column.times_of_day = data_type in ("datetime", "timestamp") and self._has_times_of_day(name, col_name)
            if data_type in ("enum", "set"):
                column.values = [v.replace("''", "'") for v in re.findall(r"'((?:[^']|'')*)'", column_type)]
            if data_type in _SAMPLED_TYPES and (max_length or 0) <= 100 and not column.primary:
                values, complete, each_once = self._values(name, col_name)
                column.unique = column.unique or (complete and each_once and bool(values))
                if values:
                    column.values = [str(v) for v in values] if complete else None
                    column.examples = [] if complete else [str(v) for v in values[:2]]
                    if "name" in col_name.lower():
                        (listed_names if complete else many_valued_names).append(column)
            columns.append(column)
        keys = [column for column in columns if column.primary]
        if len(keys) == 1:
            keys[0].unique = True
            key = keys[0].name
            for column in many_valued_names:
                rows, distinct = self._shared_values(name, [column.name])
                column.unique = column.unique or (distinct == rows and rows < SAMPLE_ROWS)
                if distinct < rows:
                    column.shared = key
                    column.notes.append(
                        f"not unique ({distinct} values in {rows} rows): to count or rank single {name} rows, "
                        f"GROUP BY {key}"
                    )
            if len(listed_names) > 1:
                rows, distinct = self._shared_values(name, [column.name for column in listed_names])
                if MAX_LISTED < distinct < rows:  # only the line above a question asking which row: the
                    for column in listed_names:  # schema text stays as it was for every other question
                        column.shared = key
        self._tables[name] = Table(name, comment[0][0] if comment and comment[0][0] else "", columns, composite)
        return self._tables[name]

    def foreign_key_steps(self, keep: Optional[Callable[[Column], bool]] = None) -> dict[str, list[Edge]]:
        """Each table's foreign keys (declared or inferred, a composite key's columns each with what it
        references alone), both ways: (table, column, other table, its column), from each end; with
        ``keep``, only the referencing columns it accepts: the steps kb's repairs join along
        (:mod:`kb.engines.sql.repairs`)."""
        steps: dict[str, list[Edge]] = {t: [] for t in self.tables}
        for t in self.tables:
            for column in self.table(t).columns:
                if column.references and column.references[0] in steps and (keep is None or keep(column)):
                    other, key = column.references
                    steps[t].append((t, column.name, other, key))
                    steps[other].append((other, key, t, column.name))
        return steps

    def labels(self, name: str) -> tuple[str, dict[str, str]]:
        """("the name column", {key as text: name}, in key order) when table ``name`` is a small lookup
        table: a one-column primary key, exactly one name column (:meth:`Table.name_columns`), whose
        values are all listed and each held by one row (statuses, shipping methods, categories); ("",
        {}) otherwise. Read on first use and kept: only the defect checks' messages need it, to tell
        which id a named value has (:mod:`kb.engines.sql.checks`). It is not shown in the schema text:
        written beside each column that references such a table ("1 = 'Reserved', 2 = 'On Hire', ..."),
        it lost 5 of 185 dev questions (the model filtered on states the question named as verbs, and
        read text keys wrongly) for 1 gained."""
        if name not in self._labels:
            self._labels[name] = self._read_labels(self.table(name))
        return self._labels[name]

    def keys_holding(self, name: str, column: str, value: str) -> Optional[frozenset[str]]:
        """The one-column primary keys (as text) of the rows of table ``name`` whose ``column``
        is ``value`` (compared as the server compares), at most ``MAX_LISTED``; None when the table has no
        one-column primary key or more rows hold the value. Read on first use and kept: only the defect
        checks need it, to tell whether the keys a statement compares are a named value's rows
        (:mod:`kb.engines.sql.checks`)."""
        wanted = (name, column, value)
        if wanted not in self._keys_holding:
            keys = [c for c in self.table(name).columns if c.primary]
            held: Optional[frozenset[str]] = None
            if len(keys) == 1:
                rows = self._conn.fetchall(
                    f"SELECT {quote_identifier(keys[0].name)} FROM {quote_identifier(self.database)}."
                    f"{quote_identifier(name)} WHERE {quote_identifier(column)} = %s LIMIT {MAX_LISTED + 1}",
                    (value,),
                )
                if len(rows) <= MAX_LISTED:
                    held = frozenset(str(row[0]) for row in rows)
            _remember(self._keys_holding, wanted, held)
        return self._keys_holding[wanted]

    def any_like(self, name: str, column: str, pattern: str) -> bool:
        """Whether some row of table ``name`` has a ``column`` value ``LIKE pattern`` (as the server
        compares: the column's collation). Read on first use and kept: only the defect checks need it, to
        tell a pattern that matches no row of its column (:mod:`kb.engines.sql.checks`)."""
        wanted = (name, column, pattern)
        if wanted not in self._any_like:
            found = bool(
                self._conn.fetchall(
                    f"SELECT 1 FROM {quote_identifier(self.database)}.{quote_identifier(name)} "
                    f"WHERE {quote_identifier(column)} LIKE ? LIMIT 1",
                    (pattern,),
                )
            )
            _remember(self._any_like, wanted, found)
        return self._any_like[wanted]

    def _read_labels(self, table: Table) -> tuple[str, dict[str, str]]:
        keys = [c for c in table.columns if c.primary]
        names = table.name_columns()
        if len(keys) != 1 or len(names) != 1:
            return "", {}
        name_column = next(c for c in table.columns if c.name == names[0])
        if name_column.values is None or not name_column.unique:
            return "", {}
        rows = self._conn.fetchall(
            f"SELECT {quote_identifier(keys[0].name)}, {quote_identifier(name_column.name)} FROM "
            f"{quote_identifier(self.database)}.{quote_identifier(table.name)} ORDER BY 1 LIMIT {MAX_LISTED + 1}"
        )
        if len(rows) > MAX_LISTED or any(label is None for _, label in rows):
            return "", {}
        return name_column.name, {str(key): str(label) for key, label in rows}

    def describe(self, name: str, listed_at_most: Optional[int] = None) -> str:
        return self.table(name).ddl(listed_at_most)

    def catalogue_entry(self, name: str) -> str:
        return self.table(name).catalogue_entry()

    def shared_name_hint(self, question: str) -> str:
        """One line for right above the question when it asks which rows of a table (:func:`asks_which`)
        one of whose names several rows share; "" otherwise. A small model follows a line beside the
        question where it overlooks the same note in the schema."""
        lines = []
        for name in self.tables:
            if not asks_which(question, name):
                continue
            shared = [column for column in self.table(name).columns if column.shared]
            if shared:
                names = " and ".join(f"{name}.{column.name}" for column in shared)
                lines.append(f"Rows can share a {names}: group by {name}.{shared[0].shared}.")
        return " ".join(lines)


def shortest_chains(
    steps: dict[str, list[Edge]], start: str, goal: str, most: int, max_steps: Optional[int] = None
) -> list[list[Edge]]:
    """The shortest chains of ``steps`` (each table's foreign keys both ways:
    :meth:`SchemaDescriber.foreign_key_steps`) from ``start`` to ``goal``, ``most`` of them at most, of
    ``max_steps`` steps at most (None: any); empty: none, or start is goal. One breadth-first search,
    layer by layer, keeping every step that reaches a table at its distance, then the chains read
    back from ``goal``."""
    distance = {start: 0}
    previous: dict[str, list[tuple[str, Edge]]] = {}
    frontier = [start]
    while frontier and goal not in distance and (max_steps is None or distance[frontier[0]] < max_steps):
        reached: list[str] = []
        for here in frontier:
            for edge in steps.get(here, []):
                there = edge[2]
                if there not in distance:
                    distance[there] = distance[here] + 1
                    reached.append(there)
                if distance[there] == distance[here] + 1:
                    previous.setdefault(there, []).append((here, edge))
        frontier = reached
    chains: list[list[Edge]] = []

    def back(here: str, tail: list[Edge]) -> None:
        if len(chains) >= most:
            return
        if here == start:
            chains.append(tail)
            return
        for before, edge in previous[here]:
            back(before, [edge, *tail])

    if goal in distance and goal != start:
        back(goal, [])
    return chains


def conjuncts(condition: Optional[exp.Expr]) -> list[exp.Expr]:
    """The parts of ``condition`` joined by AND (the whole condition when it has no AND)."""
    if condition is None:
        return []
    if isinstance(condition, exp.Paren):
        return conjuncts(condition.this)
    if isinstance(condition, exp.And):
        return conjuncts(condition.left) + conjuncts(condition.right)
    return [condition]


def inner_join(join: exp.Join) -> bool:
    """Whether ``join`` is an inner join (``JOIN``, ``INNER JOIN``): no side, no CROSS, no USING."""
    return (
        not join.args.get("side")
        and (join.args.get("kind") or "INNER").upper() == "INNER"
        and not join.args.get("using")
    )


ColumnKey = tuple[str, str]  # (qualifier, name) in lower case


class Equalities:
    """The equalities of a SELECT's ``WHERE`` and of its inner joins' ``ON`` (which hold for every row
    it returns): the columns they tie together."""

    def __init__(self, select: exp.Select) -> None:
        where = select.args.get("where")
        conditions = conjuncts(where.this if where is not None else None)
        for join in select.args.get("joins") or []:
            if inner_join(join):  # its ON holds for every row
                conditions += conjuncts(join.args.get("on"))
        self.equal: dict[ColumnKey, set[ColumnKey]] = {}  # a column -> the columns an equality pairs it with
        for condition in conditions:
            left, right = (condition.left, condition.right) if isinstance(condition, exp.EQ) else (None, None)
            if isinstance(left, exp.Column) and isinstance(right, exp.Column):
                self.equal.setdefault(self.key(left), set()).add(self.key(right))
                self.equal.setdefault(self.key(right), set()).add(self.key(left))

    @staticmethod
    def key(column: exp.Column) -> ColumnKey:
        return column.table.lower(), column.name.lower()

    def tied(self, start: ColumnKey) -> set[ColumnKey]:
        """The columns the equalities make equal to ``start`` in every row, ``start`` included."""
        reached, frontier = {start}, [start]
        while frontier:
            for other in self.equal.get(frontier.pop(), set()) - reached:
                reached.add(other)
                frontier.append(other)
        return reached


class StatementScope:
    """The schema's tables as one statement names them, to place its column references (the defect
    checks' and the answer writer's one way to tell which table and column a reference is)."""

    def __init__(self, tree: exp.Expr, schema: SchemaDescriber) -> None:
        self.tree, self.schema = tree, schema
        self.tables = {name.lower(): name for name in schema.tables}
        self.used = [self.tables[t.name.lower()] for t in tree.find_all(exp.Table) if t.name.lower() in self.tables]

    def place(self, column: exp.Column) -> Optional[tuple[Table, Column]]:
        """The table and column a reference stands for: by its qualifier, or (unqualified) the one table
        of the statement that has a column of that name; None when that is not exactly one."""
        if column.table:
            named = table_named(self.tree, column.table)
            candidates = [self.tables[named.lower()]] if named and named.lower() in self.tables else []
        else:
            candidates = list(dict.fromkeys(self.used))
        found = []
        for name in candidates:
            table = self.schema.table(name)
            match = table.column(column.name)
            if match is not None:
                found.append((table, match))
        return found[0] if len(found) == 1 else None


class DescribedSQLDatabase(SQLDatabase):
    """LlamaIndex's ``SQLDatabase`` whose table info is :class:`SchemaDescriber`'s description: the
    table's ``CREATE TABLE`` with its notes, or in the view :meth:`as_catalogue` returns its one-line
    catalogue entry (:meth:`Table.catalogue_entry`), or in the view :meth:`as_compact` returns its
    ``CREATE TABLE`` with shorter value lists."""

    catalogue = False
    listed_at_most: Optional[int] = None

    def __init__(self, connection: MariaDBConnection, database: str, tables: Sequence[str]) -> None:
        # Reflected without following foreign keys first: SQLAlchemy's default reflects each
        # referenced table too, which the read-only account may not be allowed to see (its grants
        # are the allow-list); LlamaIndex's reflection then finds these tables loaded and stops.
        metadata = MetaData()
        metadata.reflect(bind=connection.engine, only=list(tables), resolve_fks=False)
        super().__init__(connection.engine, metadata=metadata, include_tables=list(tables), sample_rows_in_table_info=0)
        self.describer = SchemaDescriber(connection, database, tables)

    def get_single_table_info(self, table_name: str) -> str:
        if self.catalogue:
            return self.describer.catalogue_entry(table_name)
        return self.describer.describe(table_name, self.listed_at_most)

    def as_compact(self, listed_at_most: int) -> DescribedSQLDatabase:
        """The same database whose ``CREATE TABLE`` texts show a list of more than ``listed_at_most``
        values as two examples."""
        view = copy.copy(self)
        view.listed_at_most = listed_at_most
        return view

    def as_catalogue(self) -> DescribedSQLDatabase:
        """The same database (its connection, reflection and describer shared) whose table info is
        each table's catalogue entry."""
        view = copy.copy(self)
        view.catalogue = True
        return view
