"""Repairs of LLM-written statements that kb makes itself, after the server rejected them.

A 1.5B model makes a few mistakes again and again, and told about one it often writes the same
statement once more. Where the server's error and the schema alone decide the repair, kb writes it
(the guard checks the result like any other attempt, and the response lists both). The trigger is
always the server's "Unknown column" for a statement that could not run, never the question's words:

* a join's condition pairs two tables as if they were neighbours (``course.course_id =
  enrollment.course_id``, where enrollments belong to sections of courses): the one shortest chain
  of foreign keys between them, through a table that has the column, replaces the condition (of
  several, the one made only of foreign keys named after what they reference: an appointment's
  ``DoctorID``, not its ``ReferredByID``);
* a join's condition names, on one side, a column its table lacks and, on the other, a column that
  references that table (``Employee.SupportRepId = Customer.SupportRepId`` where
  ``Customer.SupportRepId`` references ``Employee(EmployeeId)``): the referenced key takes its place;
* the column is qualified with the wrong table of the statement while exactly one of its tables has
  it, or with its table's name where the statement gave that table an alias (``products.name`` beside
  ``products AS p``): the qualifier is corrected;
* otherwise the join along the foreign keys to the one nearest table that has the column is added
  (placed before the join whose ON clause needed it), along the one chain that reaches it
  (:meth:`StatementRepairs.chains_to`: followed from the referencing side where there is such a
  chain, each row's order, that order's customer; of several, the one made only of foreign keys named
  after what they reference). Where several chains remain (a line's nation: its supplier's, or its
  order's customer's), which row is meant is the question's: no repair, and the hint lists the chains;
* no table has the column, and exactly one of the tables it may come from (its qualifier's, or the
  query's) has it with that table's prefix (``l.extended_price`` where most of lineitem's columns
  begin ``l_`` and it has ``l_extended_price``): the prefixed name takes its place.

Each repair has a name in :data:`REPAIRS` (``sql.skip_repairs`` switches repairs off by name;
``benchmarks/sql_accuracy.py --ablate`` prices each). Once one column is repaired, every other qualified column of the statement whose table lacks it
(the schema tells, before the server would) is repaired the same way, so a statement with two such
mistakes costs one attempt, not two.

kb never writes a statement with a defect (:mod:`kb.engines.sql.checks`, such as a column compared
with itself) that the model's statement did not have: such a repair is not made.

Repairs here apply only to a statement the server rejected: one that runs is not touched by this
module (what it means is the model's; the prompt's rules and value linking, :mod:`kb.engines.sql.values`,
inform it, and execution-guided selection votes between its candidates; the statements that
:mod:`kb.engines.sql.checks` writes for a defect are another matter, see there). Everything else
goes back to the model with the error and :meth:`StatementRepairs.hint_for`'s hint.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from sqlglot import exp

from kb.engines.sql.checks import defects
from kb.engines.sql.english import noun_forms
from kb.engines.sql.guard import parse_statement, table_named
from kb.engines.sql.schema import Column, Edge, Equalities, SchemaDescriber, Table, shortest_chains

_FURTHER_REPAIRS = 3  # other unknown columns of the same statement repaired in one attempt
_FORWARD_STEPS = 4  # the longest chain of many-to-one foreign keys a repair follows
_LISTED_CHAINS = 3  # the chains a hint lists when several reach the table that has the column
_UNKNOWN_COLUMN = re.compile(r"Unknown column '(?:([^'.]+)\.)?([^'.]+)'", re.I)
_AMBIGUOUS_COLUMN = re.compile(r"Column '([^'.]+)' in .* is ambiguous", re.I)
_UNKNOWN_TABLE = re.compile(
    r"table '([^']+)' is not one of the allowed tables|Table '[^'.]*\.?([^']+)' doesn't exist", re.I
)


def _joins_nothing(sql: str) -> bool:
    """Whether ``sql`` compares a column with itself (``c.book_id = c.book_id``) or joins a table on a
    condition that names none of its columns (``JOIN loans l ON b.id = c.book_id``): what a qualifier
    corrected into the wrong place does to a join. Such a condition holds for every row, so the join
    pairs every row with every other; a repair that writes one is not made."""
    try:
        tree = parse_statement(sql)
    except Exception:  # the guard and the server report a statement that does not parse
        return False
    for comparison in tree.find_all(exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ):
        if isinstance(comparison.left, exp.Column) and comparison.left == comparison.right:
            return True
    for join in tree.find_all(exp.Join):
        on, joined = join.args.get("on"), join.this
        if on is None or on.find(exp.Select) or not isinstance(joined, (exp.Table, exp.Subquery)):
            continue
        columns = list(on.find_all(exp.Column))
        name = joined.alias_or_name.lower()
        if columns and all(c.table for c in columns) and all(c.table.lower() != name for c in columns):
            return True
    return False


@dataclass(frozen=True)
class Repair:
    """One repair kb makes itself: its name (what ``sql.skip_repairs`` names) and when it applies, in
    schema terms (the module's docstring says where it must not)."""

    name: str
    trigger: str


# In the order they are tried on a statement the server rejected for an unknown column; the last one
# answers an ambiguous column.
REPAIRS: tuple[Repair, ...] = (
    Repair(
        "bridge",
        "a join's whole ON pairs two tables as neighbours through a column one lacks; one chain of keys links them",
    ),
    Repair("referenced key", "a join's ON names a column its table lacks beside a column that references that table"),
    Repair(
        "table prefix", "no table has the column; exactly one table it may come from has it after its column prefix"
    ),
    Repair("table's alias", "a column qualified with its table's name where the statement gave that table an alias"),
    Repair(
        "qualifier", "a column qualified with a table of the statement that lacks it; exactly one of its tables has it"
    ),
    Repair(
        "missing join",
        "no table of the statement has the column; one chain of keys reaches the nearest table that has it",
    ),
    Repair(
        "ambiguous column",
        "an unqualified column several joined tables have, all tied by inner joins' equalities of it",
    ),
)
REPAIR_NAMES = frozenset(repair.name for repair in REPAIRS)


class StatementRepairs:
    """The repairs for one schema (read through its :class:`SchemaDescriber`, which caches it), those
    named in ``skip`` (:data:`REPAIRS`) left out."""

    def __init__(self, schema: SchemaDescriber, skip: Collection[str] = ()) -> None:
        self.schema = schema
        self.skip = frozenset(skip)

    def _on(self, name: str) -> bool:
        """Whether the repair of :data:`REPAIRS` named ``name`` is made (not skipped)."""
        assert name in REPAIR_NAMES, name
        return name not in self.skip

    @property
    def tables(self) -> list[str]:
        return self.schema.tables

    def table(self, name: str) -> Table:
        return self.schema.table(name)

    def _edges(self, named_only: bool = False) -> dict[str, list[Edge]]:
        """Each table's foreign keys, both ways (:meth:`SchemaDescriber.foreign_key_steps`); with
        ``named_only``, only those named after what they reference (:func:`_named_after_target`)."""
        return self.schema.foreign_key_steps(_named_after_target if named_only else None)

    def _shortest_chains(self, start: str, goal: str, named_only: bool = False) -> list[list[Edge]]:
        """The shortest chains of foreign keys, steps either way, from ``start`` to ``goal``
        (:func:`shortest_chains`; at most ``_LISTED_CHAINS * 2``: enough to tell one from several and
        to list a few). ``named_only``: through foreign keys named after what they reference only."""
        return shortest_chains(self._edges(named_only), start, goal, _LISTED_CHAINS * 2)

    def _forward_chains(self, start: str, goal: str) -> list[list[Edge]]:
        """Every chain of foreign keys followed from the referencing side only (each step many-to-one:
        the row's order, that order's customer, that customer's nation) from ``start`` to ``goal``, of
        at most ``_FORWARD_STEPS`` steps, no table twice. Each is one meaning of "``start``'s ``goal``"."""
        chains: list[list[Edge]] = []

        def follow(here: str, chain: list[Edge], seen: set[str]) -> None:
            if here == goal and chain:
                chains.append(chain)
                return
            if len(chain) == _FORWARD_STEPS:
                return
            for col in self.table(here).columns:
                if col.references and col.references[0] in self.tables and col.references[0] not in seen:
                    target, key = col.references
                    follow(target, [*chain, (here, col.name, target, key)], seen | {target})

        follow(start, [], {start})
        return chains

    def chains_to(self, start: str, goal: str) -> tuple[Optional[list[Edge]], list[list[Edge]]]:
        """The chain of foreign keys a repair joins ``goal`` from ``start`` along, and the chains it had
        to choose from. Where ``start``'s rows each reach one ``goal`` row by foreign keys followed from
        the referencing side (:meth:`_forward_chains`), those chains are the meanings; otherwise the
        shortest chains either way (:meth:`_shortest_chains`). Of several, the one made only of foreign keys
        named after what they reference (:func:`_named_after_target`: an appointment's ``doctor_id``,
        not its ``referred_by_id``) if exactly one is; else none (None): a line's nation may be its
        supplier's or its customer's, which is the question's to say."""
        forward = self._forward_chains(start, goal)
        if forward:
            shortest = min(len(chain) for chain in forward)
            chains = sorted(forward, key=len)
        else:
            chains = self._shortest_chains(start, goal)
            if not chains:
                return None, []
            shortest = len(chains[0])
        if len(chains) == 1:
            return chains[0], chains
        named = [chain for chain in chains if all(self._named(edge) for edge in chain)]
        if len(named) == 1 and (forward or len(named[0]) == shortest):
            return named[0], chains
        return None, chains

    def _named(self, edge: Edge) -> bool:
        """Whether the foreign key of a step is named after what it references, whichever way the step goes."""
        here, here_col, there, there_col = edge
        own = self._column(here, here_col)
        if own is not None and own.references and own.references[0] == there:
            return _named_after_target(own)
        other = self._column(there, there_col)
        return other is not None and _named_after_target(other)

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
            prefixed = self._prefixed(column, used_tables)
            if prefixed is not None:
                return f"There is no column {column}; {prefixed[0]}'s columns begin with its prefix: {prefixed[1]}."
            near = self._nearest_names(column, used_tables)
            closest = f" The closest names in the statement's tables: {', '.join(near)}." if near else ""
            return f"There is no column {column} in any table; use only the columns listed above.{closest}"
        wrong = table_named(sql, qualifier) if qualifier and sql else None
        starts = [wrong] if wrong else [t for t in used_tables if t not in owners]
        best: Optional[tuple[str, str, list[list[Edge]]]] = None  # start, owner, the chains to choose from
        for start in starts:
            for owner in owners:
                path, chains = self.chains_to(start, owner)
                chains = [path] if path else chains
                if chains and (best is None or len(chains[0]) < len(best[2][0])):
                    best = (start, owner, chains)
        hint = f"{column} is a column of {', '.join(owners)}" + (f", not of {wrong}" if wrong else "") + "."
        if best:
            start, owner, chains = best
            ways = ["JOIN " + " JOIN ".join(f"{b} ON {b}.{bc} = {a}.{ac}" for a, ac, b, bc in c) for c in chains]
            if len(ways) == 1:
                hint += f" From {start}: {ways[0]}, then use {owner}.{column}."
            else:
                hint += (
                    f" From {start}, {owner} is reached in {len(ways)} ways, each a different {owner} row: "
                    + "; or ".join(ways[:_LISTED_CHAINS])
                    + f". Join the one the question means, then use {owner}.{column}."
                )
        return hint

    def _nearest_owner(self, start: str, column: str) -> Optional[tuple[str, list[Edge]]]:
        """The one table holding ``column`` that is fewest foreign keys away from ``start``, and the one
        chain to it (:meth:`chains_to`); None when two are equally near or the nearest is reached by
        several chains: which one was meant is the model's call."""
        reachable = []
        for owner in self.tables:
            if owner != start and self._column(owner, column):
                path, chains = self.chains_to(start, owner)
                if chains:
                    reachable.append((len(chains[0]), owner, path))
        reachable.sort(key=lambda r: r[0])
        if not reachable or (len(reachable) > 1 and reachable[0][0] == reachable[1][0]) or not reachable[0][2]:
            return None
        return reachable[0][1], reachable[0][2]

    def add_missing_join(self, sql: str, error: str) -> Optional[str]:
        """The statement repaired along the foreign keys when the server says a column is unknown; None
        when there is no single obvious repair, or when the repair would run with a defect the statement
        did not have (:mod:`kb.engines.sql.checks`, or a join condition that pairs every row:
        :func:`_joins_nothing`; kb never writes one itself). A small model, told
        where the column is, often writes the same statement again; these repairs are what it meant,
        so kb writes them itself (the guard checks the result like any other attempt):

        * a join's whole condition pairs two tables as neighbours through a column one of them lacks:
          the tables between them are joined (:meth:`_bridge`);
        * the column is qualified with the wrong table while the query has one table holding it
          (``T2.Name`` where ``T1`` is that table, or ``InvoiceLine.Quantity`` where it is ``T2``):
          the qualifier is corrected;
        * otherwise the table it was taken from (its qualifier's, or the query's only table; a
          subquery keeps its own) reaches the nearest table holding it through foreign keys: that
          join is added;
        * no table has the column, and one of the tables it may come from has it with that table's
          prefix (``l.extended_price``, lineitem's ``l_extended_price``): the prefixed name is used
          (:meth:`_prefixed`);
        * an unqualified column several of the query's tables have, all of them tied by inner joins'
          equalities of that column (``COUNT(DISTINCT RentalID)`` over ``RentalItems ri JOIN Rentals r ON
          r.RentalID = ri.RentalID``): every row holds one value in all of them, so the first table's
          qualifier is added (:meth:`_disambiguated`)."""
        ambiguous = _AMBIGUOUS_COLUMN.search(error or "")
        if ambiguous:
            return self._disambiguated(sql, ambiguous[1]) if self._on("ambiguous column") else None
        repaired = self._repaired(sql, error)
        for _ in range(_FURTHER_REPAIRS):
            missing = self._unknown_column(repaired) if repaired is not None else None
            further = self._repaired(repaired, f"Unknown column '{missing}'") if missing and repaired else None
            if further is None:
                break
            repaired = further
        if repaired is None:
            return None
        for flawed in (_joins_nothing, lambda statement: bool(defects(statement, self.schema))):
            if flawed(repaired) and not flawed(sql):
                return None
        return repaired

    def _disambiguated(self, sql: str, column: str) -> Optional[str]:
        """``sql`` with its unqualified ``column`` qualified, when the tables of its outer query that have
        that column are all tied together by equalities of it in inner joins' ``ON`` conditions (each row
        then has one value of it, whichever table it is read from); None otherwise (which table was
        meant is then the model's to say)."""
        from sqlglot import exp

        parsed = _outer_query(sql)
        if parsed is None:
            return None
        tree, select, outer = parsed
        if any(t.name not in self.tables for t in outer):
            return None
        holders = [t.alias_or_name.lower() for t in outer if self._column(t.name, column) is not None]
        if len(holders) < 2 or len(set(holders)) != len(holders):
            return None
        # the qualifiers whose column the WHERE's and inner joins' equalities make equal to the first's
        tied = {
            qualifier
            for qualifier, name in Equalities(select).tied((holders[0], column.lower()))
            if name == column.lower()
        }
        if not set(holders) <= tied:
            return None
        first = next(t.alias_or_name for t in outer if t.alias_or_name.lower() == holders[0])
        unqualified = [
            c
            for c in select.find_all(exp.Column)
            if c.find_ancestor(exp.Select) is select and not c.table and c.name.lower() == column.lower()
        ]
        if not unqualified:
            return None
        for col in unqualified:
            col.set("table", exp.to_identifier(first))
        return tree.sql(dialect="mysql")

    def _unknown_column(self, sql: str) -> Optional[str]:
        """The first column of the statement's outer query qualified with one of its tables that lacks it
        (``T1.SupportRepId`` where T1 is Employee), as the server would name it; None: none."""
        from sqlglot import exp

        parsed = _outer_query(sql)
        if parsed is None:
            return None
        _, select, tables = parsed
        outer = {t.alias_or_name.lower(): t.name for t in tables if t.name in self.tables}
        for col in select.find_all(exp.Column):
            table = outer.get(col.table.lower()) if col.table else None
            if table and col.find_ancestor(exp.Select) is select and self._column(table, col.name) is None:
                return f"{col.table}.{col.name}"
        return None

    def _repaired(self, sql: str, error: str) -> Optional[str]:
        """:meth:`add_missing_join`'s repair, before its check for defects."""
        from sqlglot import exp

        match = _UNKNOWN_COLUMN.search(error or "")
        if not match:
            return None
        qualifier, column = (match[1] or "").lower(), match[2].lower()
        parsed = _outer_query(sql)
        if parsed is None:
            return None
        tree, select, outer = parsed
        if not outer or any(t.name not in self.tables for t in outer):
            return None

        if (self._on("bridge") and self._bridge(select, qualifier, column, outer)) or (
            self._on("referenced key") and self._along_reference(select, qualifier, column, outer)
        ):
            return tree.sql(dialect="mysql")

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
        if not any(has(t) for t in self.tables):
            if not self._on("table prefix"):
                return None
            prefixed = self._prefixed(column, [t.name for t in (named if qualifier else outer)])
            if prefixed is None:
                return None
            for col in outer_columns():
                col.set("this", exp.to_identifier(prefixed[1]))
            return tree.sql(dialect="mysql")
        if (
            self._on("table's alias")
            and len(named) == 1
            and has(named[0].name)
            and named[0].alias_or_name.lower() != qualifier
        ):
            for col in outer_columns():  # the table's name where the statement calls it by its alias
                col.set("table", exp.to_identifier(named[0].alias_or_name))
            return tree.sql(dialect="mysql")
        if self._on("qualifier") and qualifier and len(holders) == 1 and (not named or not has(named[0].name)):
            for col in outer_columns():
                col.set("table", exp.to_identifier(holders[0].alias_or_name))
            return tree.sql(dialect="mysql")
        if holders or not self._on("missing join"):
            return None  # a table of the query has it: the error is about something else
        start = named[0] if qualifier and named else (outer[0] if not qualifier and len(outer) == 1 else None)
        if start is None:
            return None
        nearest = self._nearest_owner(start.name, column)
        if nearest is None:
            return None
        owner, path = nearest
        start, path = self._own_link(start, owner, path, outer)
        alias = start.alias_or_name
        wrong = outer_columns()
        for col in wrong:
            col.set("table", exp.to_identifier(owner))
        if len(outer) == 1:  # the others are qualified, as the join could make them ambiguous
            self._qualify(select, start.name, alias)
        joins = select.args.get("joins") or []
        # A join's ON clause that used the column needs the new joins before it, not after
        needing = [i for i, join in enumerate(joins) if any(col.find_ancestor(exp.Join) is join for col in wrong)]
        if needing and any(join.this is start for join in joins[needing[0] :]):
            return None  # the new joins would come before the join that brings in the table they start from
        existing = len(joins)
        for a, a_col, b, b_col in path:
            left = alias if a == start.name else a
            select.join(b, on=f"{b}.{b_col} = {left}.{a_col}", dialect="mysql", copy=False)
        if needing:
            joins = select.args["joins"]
            joins[:] = joins[: needing[0]] + joins[existing:] + joins[needing[0] : existing]
        return tree.sql(dialect="mysql")

    def _own_link(self, start: Any, owner: str, path: list[Edge], outer: list[Any]) -> tuple[Any, list[Edge]]:
        """The table of the query to join ``owner`` from, and the chain: ``start`` (the table the column
        was taken from) and its ``path``, unless that chain passes through a role (a foreign key not
        named after what it references, :func:`_named_after_target`: ``projects.lead_no``) while exactly
        one other table of the query reaches ``owner`` as near along foreign keys named after their
        tables only (``assignments.emp_no``). The model took the column from a table that lacks it;
        of the two links to ``owner``, the rows' own is the named one, the role is what some rows play
        (the project's lead, where the question asks who is assigned)."""
        own = self._shortest_chains(start.name, owner, named_only=True)
        if own and len(own[0]) == len(path):
            return start, path
        others = []
        for table in outer:
            if table.name == start.name:
                continue
            found = self._shortest_chains(table.name, owner, named_only=True)
            if len(found) == 1 and len(found[0]) <= len(path):
                others.append((table, found[0]))
        return others[0] if len(others) == 1 else (start, path)

    def _bridge(self, select: Any, qualifier: str, column: str, outer: list[Any]) -> bool:
        """Join two tables through the tables between them, in place; False when this repair does not apply.

        It applies when the unknown column ``qualifier.column`` is one side of a join's whole ON
        condition ``B.y = A.x`` (B the qualifier's table, which has no ``y``; A another table of the
        query, which has ``x``), A and B are not linked by a foreign key of their own but by exactly
        one shortest chain of foreign keys (or, of several, exactly one made only of foreign keys named
        after what they reference: :func:`_named_after_target`), that chain leaves A through ``x`` and passes only through
        tables the query does not use, one of which has ``y``. The model joined two tables as if they were neighbours
        (``course JOIN enrollment ON course.course_id = enrollment.course_id`` where enrollments
        belong to sections of courses); the chain's joins replace that condition."""
        from sqlglot import exp

        if not qualifier:
            return False
        by_alias = {t.alias_or_name.lower(): t for t in outer}
        joins = select.args.get("joins") or []
        for position, join in enumerate(joins):
            sides = _unknown_side(join, qualifier, column)
            if sides is None:
                continue
            unknown, known = sides
            b_table, a_table = by_alias.get(unknown.table.lower()), by_alias.get(known.table.lower())
            a_column = self._column(a_table.name, known.name) if a_table is not None else None
            if b_table is None or a_table is None or a_column is None:
                continue
            if b_table.name == a_table.name or self._column(b_table.name, column):
                return False
            joined = join.this
            if (joined is not b_table and joined is not a_table) or join.side or join.kind not in ("", "INNER"):
                return False  # an outer join keeps rows an inner chain would drop: the model's to mend
            earlier, later = (a_table, b_table) if joined is b_table else (b_table, a_table)
            chosen = self.chains_to(earlier.name, later.name)[0]
            if chosen is None:
                return False
            path = chosen
            between = {edge[2] for edge in path[:-1]}
            used = {t.name for t in outer}
            if len(path) < 2 or between & used or not any(self._column(t, column) for t in between):
                return False  # neighbours, a table already used, or a chain not through the column's table
            a_edge = path[0] if earlier is a_table else path[-1]
            a_side = (a_edge[0], a_edge[1]) if earlier is a_table else (a_edge[2], a_edge[3])
            if a_side != (a_table.name, a_column.name):
                return False  # the chain does not start from the column the model named
            name = {earlier.name: earlier.alias_or_name, later.name: later.alias_or_name}
            added = []
            for here, here_col, there, there_col in path[:-1]:
                added.append(
                    exp.Join(
                        this=exp.to_table(there),
                        on=exp.condition(f"{there}.{there_col} = {name.get(here, here)}.{here_col}", dialect="mysql"),
                    )
                )
            here, here_col, there, there_col = path[-1]
            join.set("on", exp.condition(f"{name[there]}.{there_col} = {here}.{here_col}", dialect="mysql"))
            select.set("joins", [*joins[:position], *added, *joins[position:]])
            return True
        return False

    def _along_reference(self, select: Any, qualifier: str, column: str, outer: list[Any]) -> bool:
        """Put the referenced key in place of an unknown column, in place; False when this repair does
        not apply. It applies when ``qualifier.column`` is one side of a join's whole ON equality, its
        table lacks the column, and the other side is a column of another table of the query that
        references the qualifier's table: ``ON T1.SupportRepId = T2.SupportRepId`` (T1 Employee, T2
        Customer, Customer.SupportRepId referencing Employee(EmployeeId)) becomes ``ON T1.EmployeeId =
        T2.SupportRepId``."""
        from sqlglot import exp

        if not qualifier:
            return False
        by_alias = {t.alias_or_name.lower(): t for t in outer}
        for join in select.args.get("joins") or []:
            sides = _unknown_side(join, qualifier, column)
            if sides is None:
                continue
            unknown, known = sides
            lacking, referencing = by_alias.get(qualifier), by_alias.get(known.table.lower())
            if lacking is None or referencing is None or lacking.name == referencing.name:
                continue
            if self._column(lacking.name, column) is not None:
                return False  # its table has it: the error is about something else
            reference = self._column(referencing.name, known.name)
            target = reference.references if reference is not None else None
            if target is None or target[0].lower() != lacking.name.lower():
                continue
            unknown.set("this", exp.to_identifier(target[1]))
            return True
        return False

    def _nearest_names(self, column: str, tables: Sequence[str]) -> list[str]:
        """The columns of ``tables`` whose names are closest to ``column`` (``table.column``, the
        closest first, at most three): difflib's ratio of at least 0.6 over the names in lower case,
        with their ``_`` and the table's column prefix (:func:`_table_prefix`) left out."""
        wanted = column.lower().replace("_", "")
        by_name: dict[str, list[str]] = {}
        for name in tables:
            if name not in self.tables:
                continue
            table = self.table(name)
            prefix = _table_prefix(table)
            for col in table.columns:
                bare = (
                    col.name.lower().removeprefix(prefix).replace("_", "")
                    if prefix
                    else col.name.lower().replace("_", "")
                )
                by_name.setdefault(bare, []).append(f"{name}.{col.name}")
        close = difflib.get_close_matches(wanted, list(by_name), n=3, cutoff=0.6)
        return [place for bare in close for place in by_name[bare]][:3]

    def _prefixed(self, column: str, tables: Sequence[str]) -> Optional[tuple[str, str]]:
        """(table, name) of the one column of ``tables`` named ``column`` after its table's prefix
        (``l_extended_price`` for ``extended_price`` in a table most of whose columns begin ``l_``);
        None when no table, or more than one, has such a column."""
        found = []
        for name in tables:
            prefix = _table_prefix(self.table(name))
            if prefix and (match := self._column(name, prefix + column)) is not None:
                found.append((name, match.name))
        return found[0] if len(found) == 1 else None

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
        return self.table(table).column(name)

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


def _table_prefix(table: Table) -> str:
    """The prefix most of a table's columns begin with, up to and with its first ``_`` (``l_`` for
    ``l_orderkey, l_partkey, l_quantity``): the table's naming convention; "" when no prefix is
    shared by more than half of its columns (two or more)."""
    heads = [c.name[: c.name.index("_") + 1].lower() for c in table.columns if "_" in c.name[1:]]
    if not heads:
        return ""
    head = max(set(heads), key=heads.count)
    shared = heads.count(head)
    return head if shared >= 2 and shared * 2 > len(table.columns) else ""


def _outer_query(sql: str) -> Optional[tuple[Any, Any, list[Any]]]:
    """The statement's tree, its outer ``SELECT`` and the tables that query reads itself (not those of
    its subqueries); None when it does not parse (the LLM rewrites it) or has no ``SELECT``."""
    from sqlglot import exp

    try:
        tree = parse_statement(sql)
    except Exception:
        return None
    select = tree if isinstance(tree, exp.Select) else tree.find(exp.Select)
    if select is None:
        return None
    return tree, select, [t for t in select.find_all(exp.Table) if t.find_ancestor(exp.Select) is select]


def _named_after_target(column: Column) -> bool:
    """Whether a foreign key is named after the table or key it references: ``DoctorID`` and
    ``customer_id`` are, a role such as ``ReferredByID``, ``SupervisorID`` or ``captainId`` (to pilots) is
    not. Between two tables linked by both kinds, the named one is the rows' own link (an appointment's
    doctor), the other a role some rows play (the doctor who referred it)."""
    if not column.references:
        return False
    name = column.name.replace("_", "").lower()
    table, key = column.references
    key = key.replace("_", "").lower()
    return (key != "id" and key in name) or any(form.replace("_", "") in name for form in noun_forms(table))


def _unknown_side(join: Any, qualifier: str, column: str) -> Optional[tuple[Any, Any]]:
    """(the unknown ``qualifier.column``, the column on the other side) when a join's whole ON condition
    is one equality of two columns with that unknown column on either side; None otherwise."""
    from sqlglot import exp

    on = join.args.get("on")
    if not isinstance(on, exp.EQ) or not isinstance(on.left, exp.Column) or not isinstance(on.right, exp.Column):
        return None
    for unknown, known in ((on.left, on.right), (on.right, on.left)):
        if (unknown.table.lower(), unknown.name.lower()) == (qualifier, column):
            return unknown, known
    return None
