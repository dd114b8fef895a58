"""Value linking: which column holds a value the question names, read from the data.

A question says "orders from Hamburg" or "tracks in the Rock genre"; the model has to know that
'Hamburg' is a value of ``customers.city`` (not of ``orders``) and how the data spells it. The
schema's description lists a column's values when it has few (ENUM and SET members, text columns
of at most ``MAX_LISTED`` values: :mod:`kb.engines.sql.schema`); this index holds the distinct values
of the other text columns, those with up to ``MAX_VALUES`` of them (names, titles, cities), and finds
those the question names: its words, case and punctuation aside,
equal to a stored value's words (a one-word value also in the singular or plural; in a column of
many distinct values, such as names and titles, a one-word value only where the question writes it
capitalized, so that "belong" does not name a track called "Belong"; a code in capitals, such as
'WA', by its own letters only, so that "was" does not name it). The prompt then
says where each named value lives and how it is spelled ("'Hamburg' is a value of customers.city"),
which the model may use or not: nothing in the statement is changed by it. Values the schema
already lists are not repeated: a state's word in a question is often its event's verb ("orders
placed in May" against ``status = 'placed'``), and a line saying the question names that value
pushes the model into a filter the question did not ask for.

The index is built on the first question and rebuilt when the tables change (their row counts or
last update time in ``information_schema``, looked at most once a ``refresh_s``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Optional

from kb.engines.sql.english import (
    STOP_WORDS,
    WORD,
    is_code,
    mentions,
    name_words,
    noun_forms,
    singular,
    table_nouns,
    table_words,
    words,
)
from kb.engines.sql.schema import MAX_LISTED, Table
from kb.stores.connection import MariaDBConnection, quote_identifier

MAX_VALUES = 5000  # a column with more distinct values is free text or an identifier: not indexed
MAX_VALUE_LENGTH = 80
MAX_WORDS = 8  # the longest value matched, in words
MAX_HINTS = 8  # values named in one prompt at most
CATEGORICAL = 100  # a column with at most this many distinct values holds categories, not names
_TEXT_TYPES = ("char", "varchar", "tinytext")  # ENUM and SET members are listed by the schema itself


@dataclass(frozen=True)
class ValueLink:
    """A stored value the question names, and the columns that hold it."""

    value: str  # as stored
    columns: tuple[str, ...]  # "table.column"
    categorical: bool = True  # one of its columns has few distinct values

    def sentence(self) -> str:
        where = " and ".join(self.columns) if len(self.columns) <= 3 else ", ".join(self.columns[:3]) + ", ..."
        return f"'{self.value}' is a value of {where}"


class ValueIndex:
    """The linkable values of some tables of one database, read through the given (read-only) account."""

    def __init__(
        self, connection: MariaDBConnection, database: str, tables: Sequence[str], *, refresh_s: float = 60.0
    ) -> None:
        self._conn = connection
        self.database = database
        self.tables = list(tables)
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._by_words: dict[
            tuple[str, ...], dict[str, set[tuple[str, bool]]]
        ] = {}  # words -> value -> (column, categorical)
        self._signature: tuple | None = None
        self._checked = 0.0

    # -- building ----------------------------------------------------------------------------------
    def _current_signature(self) -> tuple:
        if not self.tables:
            return ()
        rows = self._conn.fetchall(
            "SELECT TABLE_NAME, TABLE_ROWS, UPDATE_TIME, CREATE_TIME FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ({', '.join('?' for _ in self.tables)}) ORDER BY TABLE_NAME",
            (self.database, *self.tables),
        )
        return tuple(tuple(str(v) for v in row) for row in rows)

    def _build(self) -> dict[tuple[str, ...], dict[str, set[tuple[str, bool]]]]:
        index: dict[tuple[str, ...], dict[str, set[tuple[str, bool]]]] = {}
        schema = quote_identifier(self.database)
        for table in self.tables:
            columns = self._conn.fetchall(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND DATA_TYPE IN "
                f"({', '.join('?' for _ in _TEXT_TYPES)}) AND COALESCE(CHARACTER_MAXIMUM_LENGTH, 0) <= 255",
                (self.database, table, *_TEXT_TYPES),
            )
            for column, _, _ in columns:
                col = quote_identifier(column)
                rows = self._conn.fetchall(
                    f"SELECT DISTINCT {col} FROM {schema}.{quote_identifier(table)} WHERE {col} IS NOT NULL "
                    f"LIMIT {MAX_VALUES + 1}"
                )
                if len(rows) <= MAX_LISTED or len(rows) > MAX_VALUES:
                    continue  # listed by the schema already, or free text and identifiers
                values = [str(row[0]) for row in rows]
                for value in values:
                    key = words(value)
                    if not key or len(key) > MAX_WORDS or len(value) > MAX_VALUE_LENGTH:
                        continue
                    if all(w in STOP_WORDS or w.isdigit() for w in key):
                        continue
                    where = (f"{table}.{column}", len(values) <= CATEGORICAL)
                    index.setdefault(key, {}).setdefault(value, set()).add(where)
        return index

    def _index(self) -> dict[tuple[str, ...], dict[str, set[tuple[str, bool]]]]:
        with self._lock:
            now = time.monotonic()
            if self._signature is None or now - self._checked >= self.refresh_s:
                signature = self._current_signature()
                if signature != self._signature:
                    self._by_words = self._build()
                    self._signature = signature
                self._checked = now
            return self._by_words

    # -- linking -----------------------------------------------------------------------------------
    def links(self, question: str) -> list[ValueLink]:
        """The stored values the question names, longest first; a value inside a longer one named is left out."""
        index = self._index()
        said = words(question)
        written = WORD.findall(question)  # the same words as the question writes them
        found: list[tuple[int, int, ValueLink]] = []
        for size in range(min(MAX_WORDS, len(said)), 0, -1):
            for start in range(len(said) - size + 1):
                if any(s <= start and start + size <= e for s, e, _ in found):
                    continue  # part of a longer value already named
                key = said[start : start + size]
                stored = index.get(key)
                other_form = stored is None and size == 1
                if other_form:  # one word: singular or plural of a stored value
                    stored = index.get((key[0][:-1],)) if key[0].endswith("s") else index.get((key[0] + "s",))
                for value, places in sorted((stored or {}).items()):
                    categorical = any(c for _, c in places)
                    if size == 1 and not categorical and not written[start][:1].isupper():
                        continue  # a lower-case word matching one name among many: a word, not the name
                    if other_form and is_code(value):
                        continue  # "was" for 'WA': a code is named by its own letters only
                    columns = tuple(sorted(column for column, _ in places))
                    found.append((start, start + size, ValueLink(value, columns, categorical)))
        found.sort(key=lambda item: item[0])
        return [link for _, _, link in found[:MAX_HINTS]]

    def hint(self, question: str) -> str:
        """One line for the prompt, or "" when the question names no stored value."""
        links = self.links(question)
        return ("Values named in the question: " + "; ".join(link.sentence() for link in links) + ".") if links else ""


# A row named by its table's name and a number: "order 1042", "support ticket #57", "order no. 7".
_KEY_NUMBER = r"\s+(?:#\s*|no\.?\s*|number\s+)?(\d+)\b"


def _says(said: Sequence[str], word: str) -> bool:
    """Whether the question's words say ``word`` (of an identifier's name): in the singular or the
    plural, or a word begun by it ("refunded" for "refund", "ordered" for "orders" singular), for a
    word of four letters or more."""
    return any(w in noun_forms(word) or (len(word) >= 4 and w.startswith(word)) for w in said)


def says_column(said: Sequence[str], table: Table, column: str) -> bool:
    """Whether the question's words name ``column`` of ``table``: every word of the column's name
    that is not the table's own name (``productVendor`` of products: "vendor"; ``creditLimit``:
    "credit" and "limit") is among them (:func:`_says`)."""
    own = {form for words_ in table_words(table.name) for word in words_.split() for form in noun_forms(word)}
    wanted = [word for word in name_words(column) if word not in own]
    return bool(wanted) and all(_says(said, word) for word in wanted)


def _says_table(said: Sequence[str], table: Table) -> bool:
    """Whether the question's words name ``table``: every word of its name, in the singular or the
    plural or begun by it (:func:`_says`): "orders" and "ordered" name ``orders``, "support tickets"
    names ``support_tickets`` and "tickets" alone does not."""
    wanted = name_words(table.name)
    return bool(wanted) and all(_says(said, word) or _says(said, singular(word)) for word in wanted)


def _listed_names(table: Table) -> Iterator[tuple[str, str]]:
    """(column, value) for each value the schema lists of ``table``'s text columns that could name a
    row: not ENUM and SET members (states and kinds), nor values of stop words and numbers only."""
    for column in table.columns:
        if column.kind != "text" or re.match(r"(?i)(enum|set)\(", column.type_text):
            continue
        for value in column.values or []:
            key = words(str(value))
            if key and not all(w in STOP_WORDS or w.isdigit() for w in key):
                yield column.name, str(value)


def _named_rows(question: str, tables: Sequence[Table], index: Optional[ValueIndex]) -> list[tuple[Table, str, str]]:
    """The rows the question names: (table, the column naming the row, how the question names it).
    A row is named by a value of one of its table's text columns ('Barista Pro', a value of
    ``products.name``; ENUM and SET members are states and kinds, not rows) or by the table's name
    and a number ("order 1042"). ``index`` adds the values of columns too many to list
    (:class:`ValueIndex`); the listed values are the schema's own (:attr:`Column.values`)."""
    by_name = {table.name.lower(): table for table in tables}
    named: list[tuple[Table, str, str]] = []
    for link in index.links(question) if index is not None else []:
        for place in link.columns:
            table_name, column_name = place.split(".", 1)
            if table_name.lower() in by_name:
                named.append((by_name[table_name.lower()], column_name, f"'{link.value}'"))
    for table in tables:
        for column, value in _listed_names(table):
            if mentions(question, value):
                named.append((table, column, f"'{value}'"))
        keys = [column.name for column in table.columns if column.primary]
        if len(keys) == 1:
            for form in table_nouns(table.name):
                for number in re.findall(rf"\b{re.escape(form)}{_KEY_NUMBER}", question, re.I):
                    named.append((table, keys[0], f"{form} {number}"))
    return named


def tables_named(question: str, tables: Sequence[Table], index: Optional[ValueIndex] = None) -> list[str]:
    """The tables the question names, in ``tables``' order: by their own name's words
    (:func:`_says_table`: "invoices" names ``invoice`` and ``invoices``, not ``ar_invoice``) or by a
    value one of their text columns holds: one ``index`` links (:meth:`ValueIndex.links`), or one the
    schema lists (:attr:`Column.values`; not ENUM and SET members, which are states and kinds) whose
    words the question writes in a row, a one-word value as the data spells it ('WA' is not "was",
    'Customer' not "customer"). A value that several tables hold names only those of them the
    question names by name, where it names any ("students from 'Japan'": ``student``, not the
    customers table that also holds 'Japan'). Stricter than :func:`_named_rows`: a table named here
    is ranked before every other, so a value must be written, not only hinted at by a noun's other form."""
    said = words(question)
    written = WORD.findall(question)
    by_name = {table.name for table in tables if _says_table(said, table)}
    holders: dict[str, set[str]] = {}  # a value the question writes -> the tables holding it
    for link in index.links(question) if index is not None else []:
        holders.setdefault(link.value, set()).update(place.split(".", 1)[0] for place in link.columns)
    for table in tables:
        for _, value in _listed_names(table):
            if value in written if len(words(value)) == 1 else mentions(question, value):
                holders.setdefault(value, set()).add(table.name)
    named = set(by_name)
    for holding in holders.values():
        named |= (holding & by_name) or holding
    return [table.name for table in tables if table.name in named]


@dataclass(frozen=True)
class RowsAsked:
    """What a question asks of the rows it names (:func:`rows_asked`)."""

    # another column of a named row's own table: "products.price of 'Barista Pro'"
    fields: tuple[str, ...] = ()
    # another table named beside a named row: "orders of 'Cold Brew Tower'"
    records: tuple[str, ...] = ()


def rows_asked(question: str, tables: Sequence[Table], index: Optional[ValueIndex] = None) -> RowsAsked:
    """What the question asks of the rows it names (:func:`_named_rows`), read from the schema and the
    data, not asked of a model:

    * ``fields``: another column of the same table, by its name's words ("price", "credit limit",
      "email address"): "What is the price of the Barista Pro?" asks ``products.price of 'Barista
      Pro'``. Such a question asks for what a record holds, however it is worded, and no counting
      word need appear in it.
    * ``records``: another table, by its name's words (:func:`_says_table`: "orders", "were
      ordered", "returned"): "How many Barista Pro machines were ordered?" names ``orders of 'Barista
      Pro'``. With a counting word such a question counts or sums that row's records; without one it
      may ask anything ("Can I return the Barista Pro?"), so the caller decides what it means."""
    said = words(question)
    fields: list[str] = []
    records: list[str] = []
    for table, naming, row in _named_rows(question, tables, index):
        for column in table.columns:
            asked = f"{table.name}.{column.name} of {row}"
            if column.name != naming and asked not in fields and says_column(said, table, column.name):
                fields.append(asked)
        for other in tables:
            counted = f"{other.name} of {row}"
            if other is not table and counted not in records and _says_table(said, other):
                records.append(counted)
    return RowsAsked(tuple(fields), tuple(records))
