"""Repairs of LLM-written statements that kb makes itself, before or after the server sees them.

A 1.5B model makes a few mistakes again and again, and told about one it often writes the same
statement once more. Where the repair follows from the schema alone, kb writes it (the guard checks
the result like any other attempt, and the response lists both):

* after the server's "Unknown column": the join along the foreign keys to the table that has the
  column (placed before the join whose ON clause needed it), or the right table's alias;
* before running (a statement that would run and silently answer something else): a text value
  compared with the wrong column of its table; a filter on the state every record starts in, where
  the question names the event ("orders placed in 2025" counts every order, whatever its status
  now); an id selected where a "which"/"what" question asks for the thing's name.

Everything else goes back to the model with the error and :meth:`StatementRepairs.hint_for`'s hint.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from typing import Any, Optional

from kb.engines.sql_schema import Column, SchemaDescriber, Table

_UNKNOWN_COLUMN = re.compile(r"Unknown column '(?:([^'.]+)\.)?([^'.]+)'", re.I)
_UNKNOWN_TABLE = re.compile(
    r"table '([^']+)' is not one of the allowed tables|Table '[^'.]*\.?([^']+)' doesn't exist", re.I
)

_STATE_COLUMN = re.compile(r"(^|_)(status|state)$", re.I)
_ABOUT_STATE = re.compile(r"\b(status|state|still|currently|yet|remain\w*)\b", re.I)
_ASKS_WHICH = re.compile(r"\s*(which|what)\b", re.I)
_ASKS_ID = re.compile(r"\b(ids?|identifiers?|numbers?|codes?|sku)\b", re.I)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(milliseconds?|ms|seconds?|secs?|minutes?|mins?|hours?)\b", re.I)
_UNIT_SECONDS = {"millisecond": 0.001, "ms": 0.001, "second": 1, "sec": 1, "minute": 60, "min": 60, "hour": 3600}


def _seconds_per(unit: str) -> Optional[float]:
    unit = unit.lower()
    return _UNIT_SECONDS.get(unit if unit == "ms" else unit.rstrip("s"))


def _column_unit(name: str) -> Optional[float]:
    """Seconds per unit of a column named after its unit (Milliseconds, duration_ms, length_seconds)."""
    words = [w for w in re.split(r"_|(?<=[a-z])(?=[A-Z])", name) if w]
    return next((unit for word in reversed(words) if (unit := _seconds_per(word)) is not None), None)


def _participle(state: str) -> str:
    """The event's word for a state: placed -> placed, open -> opened, close -> closed."""
    return state if state.endswith("ed") else state + ("d" if state.endswith("e") else "ed")


def _names_event(question: str, state: str) -> bool:
    """The question uses a state's word as the event ("were placed", "opened"), not as a state ("are open")."""
    for match in re.finditer(rf"\b{re.escape(_participle(state))}\b", question, re.I):
        if not re.search(r"\b(is|are)\s+$", question[: match.start()], re.I):
            return True
    return False


def _drop_conjunct(condition: Any) -> bool:
    """Remove a condition ANDed into a WHERE clause; False (nothing removed) anywhere else."""
    from sqlglot import exp

    node, parent = condition, condition.parent
    while isinstance(parent, exp.Paren):
        node, parent = parent, parent.parent
    if isinstance(parent, exp.And):
        other = parent.expression if parent.this is node else parent.this
        above: Any = parent
        while isinstance(above.parent, (exp.And, exp.Paren)):
            above = above.parent
        if not isinstance(above.parent, exp.Where):
            return False
        parent.replace(other)
        return True
    if isinstance(parent, exp.Where):
        parent.pop()
        return True
    return False


class StatementRepairs:
    """The repairs for one schema (read through its :class:`SchemaDescriber`, which caches it)."""

    def __init__(self, schema: SchemaDescriber) -> None:
        self.schema = schema

    @property
    def tables(self) -> list[str]:
        return self.schema.tables

    def table(self, name: str) -> Table:
        return self.schema.table(name)

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
    def _table_of(statement: Any, qualifier: str) -> Optional[str]:
        """The table an alias (or a table name) stands for in a statement (its text, or parsed)."""
        import sqlglot
        from sqlglot import exp

        tree = statement
        if isinstance(statement, str):
            try:
                tree = sqlglot.parse_one(statement, read="mysql")
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
        owners = [t for t in self.tables if self._column(t, column)]
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
            if owner != start and self._column(owner, column):
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
            return self._column(table, column) is not None

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
        wrong = outer_columns()
        for col in wrong:
            col.set("table", exp.to_identifier(owner))
        if len(outer) == 1:  # the others are qualified, as the join could make them ambiguous
            self._qualify(select, start.name, alias)
        joins = select.args.get("joins") or []
        # A join's ON clause that used the column needs the new joins before it, not after
        needing = [i for i, join in enumerate(joins) if any(col.find_ancestor(exp.Join) is join for col in wrong)]
        existing = len(joins)
        for a, a_col, b, b_col in path:
            left = alias if a == start.name else a
            select.join(b, on=f"{b}.{b_col} = {left}.{a_col}", dialect="mysql", copy=False)
        if needing:
            joins = select.args["joins"]
            joins[:] = joins[: needing[0]] + joins[existing:] + joins[needing[0] : existing]
        return tree.sql(dialect="mysql")

    def before_running(self, question: str, sql: str) -> Optional[tuple[str, str]]:
        """What is wrong with a statement that would run but answer something else than ``question``
        asks, and the repaired statement; None when nothing is. Each repair below looks at the
        parsed statement and mends it in place."""
        import sqlglot

        try:
            tree = sqlglot.parse_one(sql, read="mysql")
        except Exception:
            return None
        problems = [
            problem
            for repair in (self._misplaced_value, self._initial_state_filter, self._names_for_ids, self._units)
            if (problem := repair(question, tree))
        ]
        return ("; ".join(problems), tree.sql(dialect="mysql")) if problems else None

    def _misplaced_value(self, question: str, tree: Any) -> Optional[str]:
        """A text value compared with a column whose values are all known and do not include it, while
        another column of the same table holds exactly that value (``status = 'urgent'`` where
        ``priority`` has 'urgent'): the statement then compares the right column. Such a statement
        runs and silently counts nothing; small models confuse sibling columns."""
        from sqlglot import exp

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
            return problem
        return None

    def _initial_state_filter(self, question: str, tree: Any) -> Optional[str]:
        """``status = 'placed'`` where 'placed' is the first value of a status ENUM (the state every
        record is created in) and the question names that event ("orders placed in 2025", "tickets
        opened by business customers"): the question counts every record the event happened to,
        whatever its state now, so the filter is dropped. Kept when the question asks about the
        state (status, still, currently, yet, remain) or uses the word as a state ("open tickets")."""
        from sqlglot import exp

        if _ABOUT_STATE.search(question):
            return None
        for comparison in list(tree.find_all(exp.EQ)):
            col, value = comparison.this, comparison.expression
            if not (isinstance(col, exp.Column) and isinstance(value, exp.Literal) and value.is_string):
                continue
            table = self._column_table(tree, col)
            column = self._column(table, col.name) if table else None
            if column is None or not _STATE_COLUMN.search(column.name) or not column.type_text.startswith("ENUM("):
                continue
            first = (column.values or [""])[0]
            if str(value.this).lower() != first.lower() or not _names_event(question, first):
                continue
            if _drop_conjunct(comparison):
                return (
                    f"{table}.{column.name} = '{first}' keeps only the records still in their first state; "
                    f"the question asks about every record {_participle(first)}"
                )
        return None

    def _names_for_ids(self, question: str, tree: Any) -> Optional[str]:
        """An id selected where a "which"/"what" question asks for the thing: the thing's name
        instead (its table's one ``name`` or ``title`` column; the join added for a foreign key)."""
        from sqlglot import exp

        if not _ASKS_WHICH.match(question) or _ASKS_ID.search(question) or not isinstance(tree, exp.Select):
            return None
        own = [t for t in tree.find_all(exp.Table) if t.find_ancestor(exp.Select) is tree]
        changed = []
        for projection in tree.expressions:
            col = projection.this if isinstance(projection, exp.Alias) else projection
            table = self._column_table(tree, col) if isinstance(col, exp.Column) else None
            column = self._column(table, col.name) if table else None
            if table is None or column is None:
                continue
            target = (table, column.name) if column.primary else column.references
            name_column = self._name_column(target[0]) if target else None
            if target is None or name_column is None:
                continue
            grouped = [g for g in (tree.args.get("group") or exp.Group()).expressions if g == col]
            if len(own) == 1:  # a join may come: the query's own columns are qualified first
                self._qualify(tree, own[0].name, own[0].alias_or_name)
            joined = [t for t in own if t.name == target[0]]
            if column.primary or joined:
                qualifier = col.table if column.primary and col.table else (joined or own)[0].alias_or_name
            else:
                qualifier = target[0]
                tree.join(
                    qualifier, on=f"{qualifier}.{target[1]} = {col.sql(dialect='mysql')}", dialect="mysql", copy=False
                )
            name = exp.column(name_column, table=qualifier)
            if grouped:  # grouped by the id: by its name too
                tree.args["group"].append("expressions", name.copy())
            col.replace(name)
            changed.append(f"{target[0]}.{name_column}, not {table}.{column.name}")
        return f"the question asks which: {'; '.join(changed)}" if changed else None

    def _units(self, question: str, tree: Any) -> Optional[str]:
        """A duration in the question compared, in the wrong unit, with a column whose name gives its
        unit (``Milliseconds > 50000`` for "longer than 5 minutes"): the number converted."""
        from sqlglot import exp

        quantities = _DURATION.findall(question)
        if len(quantities) != 1:
            return None
        amount, unit = float(quantities[0][0]), _seconds_per(quantities[0][1]) or 1.0
        for comparison in tree.find_all(exp.GT, exp.GTE, exp.LT, exp.LTE, exp.EQ):
            col, number = comparison.this, comparison.expression
            if not (isinstance(col, exp.Column) and isinstance(number, exp.Literal) and not number.is_string):
                continue
            column_unit = _column_unit(col.name)
            if column_unit is None:
                continue
            wanted = amount * unit / column_unit
            if float(number.this) == wanted:
                return None
            shown = str(int(wanted)) if wanted == int(wanted) else str(wanted)
            number.replace(exp.Literal.number(shown))
            return f"{quantities[0][0]} {quantities[0][1]} is {shown} in {col.name}, not {number.this}"
        return None

    def _qualify(self, select: Any, table: str, alias: str) -> None:
        """Qualify a query's unqualified columns of ``table`` with ``alias``: a join about to be added
        could make them ambiguous."""
        from sqlglot import exp

        own_columns = {c.name.lower() for c in self.table(table).columns}
        for col in select.find_all(exp.Column):
            if col.find_ancestor(exp.Select) is select and not col.table and col.name.lower() in own_columns:
                col.set("table", exp.to_identifier(alias))

    def _column(self, table: str, name: str) -> Optional[Column]:
        """A table's column by name, as MariaDB matches names: case-insensitively."""
        return next((c for c in self.table(table).columns if c.name.lower() == name.lower()), None)

    def _name_column(self, table: str) -> Optional[str]:
        """The column that names a table's records: its one ``name`` or ``title`` column."""
        if table not in self.tables:
            return None
        names = [c.name for c in self.table(table).columns if c.name.lower() in ("name", "title")]
        return names[0] if len(names) == 1 else None

    def _known_values(self, table: str, column: str) -> Optional[set[str]]:
        """Every value of a column, lower-cased (MariaDB compares case-insensitively), when known."""
        col = self._column(table, column)
        return {v.lower() for v in col.values} if col and col.values is not None else None

    def _column_table(self, tree: Any, col: Any) -> Optional[str]:
        """The table a column of ``tree`` belongs to: its qualifier's, or the one table of its query having it."""
        from sqlglot import exp

        if col.table:
            return self._table_of(tree, col.table)
        scope = col.find_ancestor(exp.Select)
        if scope is None:
            return None
        names = [
            t.name for t in scope.find_all(exp.Table) if t.find_ancestor(exp.Select) is scope and t.name in self.tables
        ]
        having = [t for t in names if self._column(t, col.name)]
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
