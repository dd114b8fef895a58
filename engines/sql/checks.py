"""Defects of a statement that the server runs without complaint, decided from the statement, the
schema's keys and values, the rows it returned and, for one check, the question.

MariaDB (without ``ONLY_FULL_GROUP_BY``) runs statements whose result no question could have asked
for; a small model writes them often. A check of kind ``statement`` needs only the statement, the
schema and the rows: it finds a result no question can mean, so it stays whether or not our labelled
sets happen to hit it, provided it never fires on a right statement (tests/test_sql_defects.py holds
the statements where each must not fire). A check of kind ``question`` also reads the question's
English; it stays only where an ablation on the test parts and the held-out sets shows it earns its
place (``benchmarks/sql_accuracy.py --ablate``; docs/benchmarks.md), and its docstring gives that
figure.

* **one arbitrary row** (:func:`_arbitrary_row`, with the schema): a ``SELECT`` without ``GROUP BY``
  that selects a plain column beside an aggregate (``SELECT c.country, COUNT(*) FROM customers c JOIN
  orders o ...``), or orders by an aggregate without selecting one (``SELECT ordered_at FROM orders
  ORDER BY COUNT(*) DESC LIMIT 1``). MariaDB makes one group of every row and takes the plain column
  from whichever row it met first. It does not fire with ``GROUP BY``, on aggregates alone, on a
  window function (``COUNT(*) OVER ()``), on an aggregate inside a subquery, on a column the ``WHERE``
  clause fixes to one literal (``WHERE c.country = 'Japan'``), or when it fixes a unique column (one
  row, found by its key).
* **a join that multiplies rows and is read nowhere** (:func:`_unused_join_that_multiplies`, with the
  schema): a ``SELECT`` that counts or sums another table's column without ``DISTINCT`` joins a table
  on a column that is not unique in it, and reads nothing of that table outside the join's own ``ON`` (``... FROM
  department d JOIN course c ON c.department_id = d.department_id JOIN student s ON s.major_id =
  d.department_id ... COUNT(s.student_id)``: each student counted once per course of the department).
  The message gives the statement without that join. It does not fire on a join on a unique column
  (``JOIN customers c ON c.id = o.customer_id``), on a table read anywhere else (a column selected,
  filtered, grouped, or a bridge to another join), on ``COUNT(DISTINCT ...)``, on ``COUNT(*)`` (it
  may count the joined table's rows: orders per country), or without a count or sum.
* **counts that are all 1** (:func:`_counts_of_one`, with the schema): a ``SELECT`` that reads one
  table, without joins, groups it by its one-column primary key and counts (``SELECT name FROM customers GROUP BY id ORDER BY COUNT(*) DESC LIMIT 1``): every group
  is one row, every count is 1, and an order by it picks an arbitrary row. It does not fire with a
  join (``customers JOIN orders ... GROUP BY customers.id`` counts orders), on another column (even
  one whose values happen to be unique today), or without a count.
* **a column compared with itself** (:func:`_compared_with_itself`): ``c.nation_id = c.nation_id``,
  the same reference on both sides, which holds for every row (``<>``, ``<``, ``>``: for none). It
  does not fire on a self-join's two aliases (``a.x = b.x``) or on two columns of one table.
* **a subquery's column taken from the outer row** (:func:`_outer_column_in_a_subquery`, with the
  schema): a subquery selects an unqualified column that none of its own tables has and a table of a
  query around it does (``customer_id NOT IN (SELECT customer_id FROM returns ...)`` when ``returns``
  has no ``customer_id``); SQL resolves it to the outer row, the subquery returns each row's own
  value, and ``NOT IN`` matches nothing. It does not fire when a table of the subquery has the
  column, on a qualified reference (a correlation written on purpose: ``WHERE r.order_id = o.id``),
  on a subquery reading a derived table (its columns are not known here), or on the outer query.
* **dates subtracted as numbers** (:func:`_dates_subtracted`, with the schema): ``shipped_on -
  ordered_on`` over two date or time columns; MariaDB subtracts 20250305 - 20250226 = 79, not days.
  The message gives the statement with ``DATEDIFF(shipped_on, ordered_on)``. It does not fire on
  number columns, on ``DATEDIFF``/``TIMESTAMPDIFF``, or on a date minus an ``INTERVAL``.
* **a time of day bounded by a bare date** (:func:`_time_bounded_by_a_date`, with the schema): a
  column some of whose values are not at midnight (:attr:`Column.times_of_day`) compared with a date
  without a time as ``BETWEEN ... AND '2025-03-31'`` or ``<= '2025-03-31'`` (ends at that day's
  midnight), ``= '2025-03-05'`` (only midnight), or ``> '2025-03-31'`` (keeps that day's later times).
  The message gives the statement comparing ``DATE(column)``. It does not fire on a ``DATE`` column,
  on a ``DATETIME`` column whose values are all at midnight, on a bound with a time, on ``<`` or
  ``>=`` a date (right as written), or on ``DATE(column)``.
* **part of a composite reference** (:func:`_part_of_a_composite_reference`, with the schema): a
  table whose foreign key has several columns (``line (part_id, supplier_id) REFERENCES
  part_supplier (part_id, supplier_id)``) is paired with the table it references by some of those
  columns and not the others (``ON ps.part_id = l.part_id``): each line meets every supplier of its
  part, and counts and sums are multiplied. The message gives the statement with the missing
  equalities added where the first one is (the join's ``ON``, or the ``WHERE`` clause). It does not
  fire when every column of the key is paired (in ``ON`` or ``WHERE``), on a join to another table
  (the line's ``part_id`` alone references ``part(id)`` when ``part_supplier.part_id`` does:
  :mod:`kb.engines.sql.schema`), or on a table whose composite key no other table references.
* **keys that do not belong together** (:func:`_unrelated_keys`, with the schema): an equality between
  columns of two different tables where one side references a table (a declared foreign key, or one
  inferred from its name: :mod:`kb.engines.sql.schema`) and the other is the primary key of a
  *different* table (``Customer.SupportRepId = Customer2.CustomerId`` when SupportRepId references
  Employee), or where both sides are the whole one-column primary keys of two tables neither of which
  references the other (``orders.id = customers.id``). Such a join pairs rows by coincidence of
  numbers. It does not fire on a join along a key (``o.customer_id = c.id``; a column of a composite
  reference alone references what its target column does: :mod:`kb.engines.sql.schema`), on two keys
  referencing the same table (``o.customer_id = t.customer_id``, or two composite keys' columns:
  ``ps.supplier_id = sc.supplier_id``), on columns that are not keys (``c.city = s.city``), on a
  self-join, or on a column it cannot place in exactly one table of the statement.
* **a text compared with a value its column does not hold but another column does**
  (:func:`_value_of_another_column`, with the schema's lists of values: :attr:`Column.values`, every
  value of an ENUM or of a text column with few distinct values): ``emp.dept_code = 'Customer
  Support'`` (or ``IN (...)``) where ``dept_code``'s values are codes ('SUP', ...) and 'Customer
  Support' is a value of ``depts.dept_name``, in the table ``dept_code`` references, another table of
  the statement or any other table (the members of a ``SET`` column count as its values, as an
  ``ENUM``'s do). No row matches; the message names the column that holds the value and, from a
  referenced table, the join to it. A ``SET`` column compared with a combination of its members
  (``tags = 'gift,sale'``) holds it. A word compared with a number column
  (``Rentals.StatusID = 'Cancelled'``, which the server reads as 0 without a warning) is the same
  defect. It does not fire when the column holds the value (compared as the server compares, without
  regard to case), when its values are not all known (a sample of many), on a value no listed column
  holds (no row may be the answer), on a number written as a string (``StatusID = '4'``) or on
  ``LIKE``. With a small lookup table it also gives the statement with the word's key, or compared
  through the table.
* **figures of groups that do not say whose they are** (:func:`_counts_without_their_groups`, from the
  rows the statement returned): a ``SELECT`` with ``GROUP BY`` whose every selected expression is an
  aggregate, and that returned several rows (``SELECT COUNT(*) FROM RentalItems GROUP BY RentalID
  HAVING COUNT(*) > 2`` for "how many rentals have more than two items?"): no row can be read on its
  own. The message gives the statement that counts the groups. It does not fire when a group key (or
  any plain column) is selected, or on a single row.
* **ids, or another table's name, where the question asks which rows** (:func:`_not_the_rows_asked`,
  kind ``question``: :func:`kb.engines.sql.english.asks_which`, "which product", "the customer who";
  general interrogatives, no word of any labelled question): the question asks which rows of a table
  that has a name column (a text column whose name says ``name`` or ``title``), and every column the
  statement selects, aggregates aside, is that table's key or a column referencing it (``SELECT
  product_id, COUNT(*) FROM returns GROUP BY product_id ...`` for "Which product was returned most
  often?"); or it asks which rows of exactly one such table and the statement selects a name column
  of another table and nothing of the asked one (``SELECT t.Name FROM Genre g JOIN Track t ... GROUP BY
  g.GenreId`` for "Which genre has the most tracks?"). It does not fire when the statement also
  selects a name of the asked table, when the table has no name column (``Which order ...``: its id is
  how an order is named), when the question does not ask which rows of that table ("What is the
  customer_id of ...": asked for by the column's name), when the question names every column selected
  ("Which airports are in Spain? Give their codes.": ``airportCode``; :func:`kb.engines.sql.values.says_column`),
  when it asks which rows of two tables, or on an expression it cannot place in one table.
* **rows merged by a name they share, where the question asks which rows**
  (:func:`_rows_merged_by_a_shared_name`, kind ``question``: :func:`kb.engines.sql.english.asks_which`,
  as for the line above the question, :meth:`kb.engines.sql.schema.SchemaDescriber.shared_name_hint`):
  a ``GROUP BY`` of a table's name that several of its rows share (:attr:`Column.shared`: the demo's
  400 customers have 214 names) and of none of its unique columns, where the question asks which rows
  of that table (``SELECT c.name, COUNT(*) FROM customers c JOIN orders o ... GROUP BY c.name`` for
  "Which customers placed the most orders?" counts the orders of every customer called Laura Kask
  together). The message gives the statement grouped by the table's key first. It does not fire when
  the group has the key or another unique column of that table, on a name no two rows share, when the
  question does not ask which rows of that table ("How many customers share each name?"), or on a
  name of another table.
* **a code where the question names the row's value** (:func:`_code_for_a_named_value`, kind
  ``question``): the statement compares a text column that references a table T with text keys
  (``baseCode = 'OPO'``, ``destinationCode = 'PAR'``), the question does not give those keys, and it
  names a value of a listed column of T that the statement does not read ("based in Portugal":
  ``airports.country`` holds 'Portugal'), and the keys compared are not exactly those of some named
  values (Portugal's airports are LIS and OPO; no airport is PAR). The model guessed the code. The
  message lists the named value's keys and gives the statement that compares through T (``baseCode
  IN (SELECT airportCode FROM airports WHERE country = 'Portugal')``). It does not fire when the keys
  are exactly named values' ("based in Porto": OPO alone), when the question gives the key ("based at
  LIS"), names no value of T, or the statement reads the named value's column, nor on a number column
  or a row's own key.
* **a LIKE pattern of another column** (:func:`_pattern_of_another_column`, with the schema's lists of
  values and one look at the rows): ``c.name LIKE 'Japan%'`` where no customer's name is like it
  and the nation table's listed names hold 'JAPAN'. The comparison matches no row; the message names
  the column whose values match and, where the compared column's table references that column's
  table, the join to it. It does not fire on ``NOT LIKE``, when some row of the compared column
  matches (the server is asked when its values are not all listed), when no listed column matches
  either, or on a date or number column (``ordered_at LIKE '2025-03%'``).
* **a text compared with a value no column holds and the question does not name**
  (:func:`_value_held_by_no_column`, kind ``question``): ``=`` or an ``IN`` none of whose values the
  column holds, on a column all of whose values are known, with a value no listed column holds and
  that the question does not name (:func:`kb.engines.sql.english.mentions`): the model invented it,
  and the comparison matches no row; the message lists the column's values. It does not fire on a
  value the question names (no row having it may be the answer), on a value of the form every value
  of the column shares, where those values are an open set (no ENUM, no reference to a table that
  holds them all: ``country = 'NO'`` where the values are 'FI', 'DE', ...: a code no row holds today,
  for "customers from Norway"), on ``<>``, or on a column whose values are not all known.
* **whole days where the question asks a shorter unit** (:func:`_days_where_a_shorter_unit_is_asked`,
  kind ``question``): ``DATEDIFF(a, b)`` (whole days) over a column that holds times of day
  (:attr:`Column.times_of_day`), where the question asks in minutes, hours or seconds
  (:data:`kb.engines.sql.english.SHORTER_THAN_A_DAY`). The message gives the statement with
  ``TIMESTAMPDIFF(<unit>, b, a)``. It does not fire when the question asks in days, on columns without
  times of day, or on a statement without ``DATEDIFF``.
* **the present asked of a history without its current row** (:func:`_history_without_current_row`,
  kind ``question``: :func:`kb.engines.sql.english.speaks_of_now`, general words such as "current",
  "now", "today"): the statement reads a table of periods (:meth:`Table.period_end`: a primary key of
  several columns with a date among them, and one other date column that may be NULL, as in
  ``salaries(emp_no, from_date, to_date, amount)``) and mentions that end column nowhere. Every period
  of the history answers, where the question asks for the one in effect (``to_date IS NULL``);
  ``to_date IS NOT NULL`` keeps only the periods that ended. It does not fire when the statement uses
  the end column otherwise (``IS NULL``, a comparison with a date), when the question does not speak
  of the present ("the salary history"), or on a table without that shape (a one-column key, no
  nullable date).
* **a LIMIT that cuts through ties** (:func:`_cut_ties`, from the engine's second look at the rows
  past the limit, :func:`kb.engines.sql.ties.ties_throughout`): more rows than the engine reads past
  the ``LIMIT`` (20) have the same ``ORDER BY`` values as the last row kept (``GROUP BY c.id ORDER BY
  COUNT(*) DESC LIMIT 1`` where every count is 1, or an order by a column all rows share): the order
  does not tell which rows are meant, and the answer would be arbitrary rows or a list of every row.
  It does not fire without ``ORDER BY`` and ``LIMIT``, when fewer rows tie (they are answered as a
  tie: :mod:`kb.engines.sql.ties`), when the rows past the limit differ from the last one, or when
  every tied row reads as a kept row does (``SELECT COUNT(*) ... GROUP BY student_id ORDER BY COUNT(*)
  DESC LIMIT 1``: the largest count, whichever student has it).
* **a value the server could not convert** (:func:`_server_warning`, from the warning the engine
  kept while running the statement): MariaDB's warnings 1292 and 1366 (``YEAR()`` of a flight number,
  a name summed: the value became NULL or 0 and the rows are computed from that). Where the server
  could not read a date, the message names the date and time columns of the table it names. It does
  not fire without such a warning (other warnings are not kept).

A check never changes a statement in place: :class:`kb.engines.sql.SQLEngine` gives the statement
back to the model with the defect as its error. A message that ends with a whole statement kb wrote
(the count of the groups, the comparison through a lookup table, ...) is a :class:`Defect` carrying
it as ``rewrite``. The engine runs it only when the model's corrections did not take it up and none
ran clean, as a voice among its rescue samples: it answers where one of the model's samples gives its
rows (alone only with ``sql.rewrites_answer``), and the answer then says the rows are kb's rewrite of
a statement with a defect. When nothing runs clean, the statement with the defect answers as written.

The checks are listed in :data:`CHECKS` at the end of the module (a :class:`Check` each: its name,
its kind, ``statement`` or ``question``, whether it writes a rewrite, its trigger), in the order
their messages are shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Optional, Union

from sqlglot import exp

from kb.engines.sql.english import (
    SHORTER_THAN_A_DAY,
    asks_which,
    mentions,
    speaks_of_now,
    words,
)
from kb.engines.sql.guard import parse_statement
from kb.engines.sql.schema import Column, SchemaDescriber, StatementScope, Table, conjuncts
from kb.engines.sql.values import says_column


class Defect(str):
    """One defect: the message the model is shown (the string itself), the name of the :class:`Check`
    that found it (``check``) and, where the message ends with a whole statement kb wrote from the
    statement and the schema, that statement (``rewrite``; None where the message says what to change
    without writing it). The model is shown the rewrite first; the engine runs it only among its
    rescue samples (:meth:`kb.engines.sql.SQLEngine.compute`)."""

    rewrite: Optional[str]
    check: str

    def __new__(cls, message: str, rewrite: Optional[exp.Expr] = None, check: str = "") -> Defect:
        defect = super().__new__(cls, message)
        defect.rewrite = rewrite.sql(dialect="mysql") if rewrite is not None else None
        defect.check = check
        return defect


def _suggesting(message: str, rewrite: exp.Expr) -> Defect:
    """``message`` ending with the statement kb would write instead (": SELECT ...")."""
    return Defect(f"{message}: {rewrite.sql(dialect='mysql')}", rewrite)


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")

CheckKind = Literal["statement", "question"]
Found = Union[str, Defect, None]


@dataclass(frozen=True)
class Inspected:
    """What a check may look at: the parsed statement, its tables placed in the schema (None without a
    schema), the rows it returned, the question (empty when the checks may not read it), and the
    server's warning that it could not convert a value while running it ("": none), and, where the
    engine found more rows tied with the last one a ``LIMIT`` kept than it reads past it
    (:func:`kb.engines.sql.ties.ties_throughout`), that limit and the ORDER BY expressions."""

    tree: exp.Expr
    scope: Optional[StatementScope]
    rows: Sequence[dict[str, Any]]
    question: str
    warning: str = ""
    cut_ties: Optional[tuple[int, list[str]]] = None  # a LIMIT and ORDER BY cut through ties (cut ties)


@dataclass(frozen=True)
class Check:
    """One defect check. ``kind`` is ``statement`` when it needs only the statement, the schema and the
    rows, ``question`` when it also reads the question's words; ``rewrites`` says whether its message
    can end with a statement kb wrote (:attr:`Defect.rewrite`); ``trigger`` is when it fires, in
    schema terms (the module's docstring says when it must not)."""

    name: str
    kind: CheckKind
    rewrites: bool
    trigger: str
    find: Callable[[Inspected], Iterable[Found]]
    needs_schema: bool = True

    def run(self, inspected: Inspected) -> list[Defect]:
        """What this check finds in ``inspected`` (nothing when it lacks the schema or question it needs)."""
        if (self.needs_schema and inspected.scope is None) or (self.kind == "question" and not inspected.question):
            return []
        found = [said if isinstance(said, Defect) else Defect(said) for said in self.find(inspected) if said]
        for defect in found:
            defect.check = self.name
        return found


def _references(column: Column) -> str:
    return column.references[0].lower() if column.references else ""


def _mismatched_reference(a: tuple[Table, Column], b: tuple[Table, Column], shown: str) -> str:
    """``a``'s column references a table, ``b``'s column is the key of another one (and not itself a
    reference to ``a``'s table or to the same table: a one-to-one table)."""
    (table, column), (other_table, other) = a, b
    target = _references(column)
    if not target or not other.primary or target == other_table.name.lower():
        return ""
    if _references(other) in (table.name.lower(), target):
        return ""
    ref_table, ref_column = column.references or ("", "")
    return (
        f"the join condition {shown} pairs {table.name}.{column.name}, which references {ref_table}.{ref_column}, "
        f"with {other_table.name}.{other.name}, the key of another table; "
        f"join {ref_table} ON {ref_table}.{ref_column} = {table.name}.{column.name}"
    )


def _unrelated_keys(scope: StatementScope) -> list[str]:
    """Equalities that pair a foreign key with another table's key, or two keys of tables that do
    not reference each other (the module's docstring).

    Ablation (test parts and held-out sets, 2026-11-29): no answer changed with it off (it fired on
    Northwind, classicmodels and supply).
    """
    found = []
    for equality in scope.tree.find_all(exp.EQ):
        left, right = equality.left, equality.right
        if not (isinstance(left, exp.Column) and isinstance(right, exp.Column)):
            continue
        a, b = scope.place(left), scope.place(right)
        if a is None or b is None or a[0].name.lower() == b[0].name.lower():
            continue
        shown = equality.sql(dialect="mysql")
        mismatch = _mismatched_reference(a, b, shown) or _mismatched_reference(b, a, shown)
        if mismatch:
            found.append(mismatch)
        elif (
            a[0].key == [a[1]]  # the whole key of each table: a column of a composite key is not
            and b[0].key == [b[1]]  # a row's own key (dept_emp.emp_no = salaries.emp_no is a join)
            and _references(a[1]) != b[0].name.lower()
            and _references(b[1]) != a[0].name.lower()
        ):
            found.append(
                f"the join condition {shown} pairs the keys of two tables, {a[0].name} and {b[0].name}, "
                "that do not reference each other; join along a column that references the other table"
            )
    return found


def _own(node: exp.Expr, select: exp.Select) -> bool:
    """Whether ``node`` belongs to ``select`` itself rather than to a subquery or window inside it."""
    parent = node.parent
    while parent is not None and parent is not select:
        if isinstance(parent, (exp.Select, exp.Window, exp.Subquery)):
            return False
        parent = parent.parent
    return parent is select


def _selected_columns(scope: StatementScope) -> list[tuple[exp.Column, Table, Column]]:
    """The plain columns a SELECT answers with, each with its table and column in the schema
    (aggregates beside them skipped: the count or total beside the ids, "product_id, COUNT(*)");
    empty when it selects an expression or a column kb cannot place (either might be what is asked)."""
    tree = scope.tree
    if not isinstance(tree, exp.Select):
        return []
    placed = []
    for projection in tree.expressions:
        column = projection.this if isinstance(projection, exp.Alias) else projection
        if isinstance(column, exp.AggFunc):
            continue
        where = scope.place(column) if isinstance(column, exp.Column) else None
        if where is None:
            return []
        placed.append((column, *where))
    return placed


def _not_the_rows_asked(question: str, scope: StatementScope) -> str:
    """Ids, or another table's name, selected where the question asks which rows of a table (the
    module's docstring).

    Ablation (test parts and held-out sets, 2026-11-29): 2 answers lost with it off (classicmodels).
    """
    schema = scope.schema
    placed = [(table, column) for _, table, column in _selected_columns(scope)]
    said = words(question)
    if not placed or all(says_column(said, table, column.name) for table, column in placed):
        return ""  # "Give their codes": the columns selected are the ones the question names
    asked = [name for name in schema.tables if asks_which(question, name) and schema.table(name).name_columns()]
    for name in asked:
        names = schema.table(name).name_columns()
        ids = [
            f"{table.name}.{column.name}"
            for table, column in placed
            if (column.primary and table.name == name) or _references(column) == name.lower()
        ]
        if len(ids) == len(placed):
            return (
                f"it answers with {', '.join(ids)}, ids of {name}, but the question asks which {name}: select "
                f"{name}.{names[0]} (JOIN {name} on its key) instead of the id"
            )
    if len(asked) != 1:
        return ""
    name = asked[0]
    if any(table.name == name or _references(column) == name.lower() for table, column in placed):
        return ""
    others = [f"{table.name}.{column.name}" for table, column in placed if column.name in table.name_columns()]
    if others:
        return (
            f"it answers with {', '.join(others)}, a name of another table, where the question asks which {name}: "
            f"select {name}.{schema.table(name).name_columns()[0]} (JOIN {name} on its key) instead"
        )
    return ""


def _compared_literals(node: exp.Expr, *, text: bool) -> Optional[tuple[exp.Column, list[str]]]:
    """(the column, its literals) of ``col = x``, ``x = col``, ``col <> x`` (any two-sided comparison) or
    ``col IN (x, ...)``, where every literal is a string (``text``) or every one a number; None for any
    other comparison."""
    if isinstance(node, exp.In):
        items = node.expressions
        if not isinstance(node.this, exp.Column) or not items:
            return None
        if not all(isinstance(i, exp.Literal) and i.is_string == text for i in items):
            return None
        return node.this, [i.this for i in items]
    if not isinstance(node, exp.Binary):
        return None
    for column, literal in ((node.left, node.right), (node.right, node.left)):
        if isinstance(column, exp.Column) and isinstance(literal, exp.Literal) and literal.is_string == text:
            return column, [literal.this]
    return None


def _rewritten(tree: exp.Expr, kinds: tuple[type[exp.Expr], ...], position: int, replacement: exp.Expr) -> exp.Expr:
    """A copy of ``tree`` whose ``position``-th node of ``kinds`` (in ``find_all`` order) is ``replacement``:
    the statement a message suggests, built from the one the model wrote."""
    copy = tree.copy()
    list(copy.find_all(*kinds))[position].replace(replacement)
    return copy


def _label_key(schema: SchemaDescriber, lookup: Table, column: Column, value: str) -> Optional[str]:
    """The key of the row of small lookup table ``lookup`` (:meth:`SchemaDescriber.labels`) whose name in
    ``column`` is ``value`` (compared as the server compares, without regard to case); None when
    ``lookup`` is not such a table or no row has that name."""
    label_column, labels = schema.labels(lookup.name)
    if label_column != column.name:
        return None
    return next((key for key, label in labels.items() if label.casefold() == value.casefold()), None)


def _listed_holder(holds: re.Pattern[str], column: Column, scope: StatementScope) -> Optional[tuple[Table, Column]]:
    """The first column other than ``column`` one of whose listed values ``holds`` matches whole: in the table
    ``column`` references, then in a table the statement reads, then in any other table of the schema;
    None: none does."""
    nearby = [column.references[0]] if column.references else []
    tables = {name.lower(): name for name in scope.schema.tables}
    searched = [*nearby, *scope.used, *scope.schema.tables]
    for name in dict.fromkeys(tables[n.lower()] for n in searched if n.lower() in tables):
        table = scope.schema.table(name)
        for other in table.columns:
            if other is not column and other.values and any(holds.fullmatch(v) for v in other.values):
                return table, other
    return None


def _value_of_no_column(
    value: str, node: exp.Expr, compared: exp.Column, table: Table, column: Column, listed: str
) -> str:
    """The message for a text value that ``column`` (all of whose values are known) does not hold and no
    listed column holds either: the condition ``node`` matches no row."""
    said = (
        f"'{value}' is not a value of {table.name}.{column.name} (its values: {listed}), so it matches no row "
        f"in {node.sql(dialect='mysql')}; compare it with one of those values"
    )
    if column.references:
        written = compared.table or table.name
        said += (
            f", or JOIN {column.references[0]} ON {column.references[0]}.{column.references[1]} = "
            f"{written}.{column.name} and compare the {column.references[0]} column that holds the question's value"
        )
    return said


def _through(compared: exp.Column, lookup: Table, key: str, holder: Column, value: str) -> exp.In:
    """``compared IN (SELECT key FROM lookup WHERE holder = 'value')``: a column that references
    ``lookup`` compared with the rows whose ``holder`` is ``value``, whatever their keys."""
    subquery = (
        exp.select(exp.column(key))
        .from_(lookup.name)
        .where(exp.EQ(this=exp.column(holder.name), expression=exp.Literal.string(value)))
    )
    return exp.In(this=compared.copy(), query=exp.Subquery(this=subquery))


@dataclass(frozen=True)
class _UnheldValue:
    """A text value compared (``=``, ``<>``, ``IN``) with a column that cannot hold it: a column all of
    whose values are known (or a number column), which does not hold the value."""

    node: exp.Expr  # the comparison
    position: int  # its place among the statement's comparisons (for a rewrite of it)
    compared: exp.Column
    table: Table
    column: Column
    value: str
    values: tuple[str, ...]  # every value the comparison names
    held: frozenset[str]  # the column's known values, case-folded
    listed: str  # the column's known values as a message shows them
    found_in: Optional[tuple[Table, Column]]  # the listed column of another table that holds the value

    @property
    def numeric(self) -> bool:
        return self.column.kind == "number"  # a word compared with a number column is read as 0


_VALUE_COMPARISONS = (exp.EQ, exp.NEQ, exp.In)


def _unheld_values(scope: StatementScope) -> Iterator[_UnheldValue]:
    """Every text value compared with a column that cannot hold it (:class:`_UnheldValue`)."""
    for position, node in enumerate(scope.tree.find_all(*_VALUE_COMPARISONS)):
        compared = _compared_literals(node, text=True)
        placed = scope.place(compared[0]) if compared is not None else None
        if compared is None or placed is None:
            continue
        table, column = placed
        numeric = column.kind == "number"
        if column.values is None and not numeric:
            continue  # its values are not all known
        known = column.values or []
        held = frozenset(v.casefold() for v in known)
        listed = ", ".join(f"'{v}'" for v in known[:8]) + (", ..." if len(known) > 8 else "")
        a_set = column.type_text.upper().startswith("SET(")  # holds any combination of its members: 'gift,sale'
        for value in compared[1]:
            members = value.split(",") if a_set and value else [value]
            if all(m.casefold() in held for m in members) or (numeric and _NUMBER.fullmatch(value.strip())):
                continue
            found_in = _listed_holder(re.compile(re.escape(value), re.IGNORECASE), column, scope)
            yield _UnheldValue(
                node, position, compared[0], table, column, value, tuple(compared[1]), held, listed, found_in
            )


def _value_of_another_column(scope: StatementScope) -> list[str]:
    """A text value compared with a column that cannot hold it (:func:`_unheld_values`) that a listed
    column of another table holds: the message names that column and, where the compared column
    references its table, the join to it (or the key to compare).

    Ablation (test parts and held-out sets, 2026-11-29): 3 answers lost with it off (Northwind,
    classicmodels and supply 1 each).
    """
    found = []
    for unheld in _unheld_values(scope):
        if unheld.found_in is None:
            continue
        node, table, column, value = unheld.node, unheld.table, unheld.column, unheld.value
        other, holder = unheld.found_in
        said = (
            f"'{value}' is not a value of {table.name}.{column.name} "
            f"({'a number column' if unheld.numeric else f'its values: {unheld.listed}'}), so it matches no "
            f"row in {node.sql(dialect='mysql')}; it is a value of {other.name}.{holder.name}"
        )
        if column.references and other.name.lower() == column.references[0].lower():
            written = unheld.compared.table or table.name  # the statement's own name for the table (an alias)
            said += (
                f": JOIN {other.name} ON {other.name}.{column.references[1]} = {written}.{column.name} and "
                f"compare {other.name}.{holder.name}"
            )
            key = _label_key(scope.schema, other, holder, value)
            single = len(unheld.values) == 1
            if key is None and single and isinstance(node, exp.EQ):
                through = _through(unheld.compared, other, column.references[1], holder, value)
                said = _suggesting(said, _rewritten(scope.tree, _VALUE_COMPARISONS, unheld.position, through))
            if key is not None and single and not isinstance(node, exp.In):
                literal = exp.Literal.number(key) if unheld.numeric else exp.Literal.string(key)
                by_key = _rewritten(
                    scope.tree,
                    _VALUE_COMPARISONS,
                    unheld.position,
                    type(node)(this=unheld.compared.copy(), expression=literal),
                )
                said = _suggesting(
                    f"{said}; or compare the key: '{value}' is {other.name}.{column.references[1]} "
                    f"{literal.sql(dialect='mysql')}",
                    by_key,
                )
        found.append(said)
    return found


def like_matcher(pattern: str) -> re.Pattern[str]:
    """``LIKE pattern`` as a regular expression: ``%`` any run of characters, ``_`` one, ``\\`` makes
    the next character itself (MariaDB's default escape), without regard to case (as the default
    collations compare). Kept here: neither sqlglot nor LlamaIndex evaluates a pattern."""
    parts, escaped = [], False
    for char in pattern:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _pattern_of_another_column(scope: StatementScope) -> list[str]:
    """``column LIKE 'pattern'`` on a text column no row of which matches the pattern (all its values
    known and none matches, or none found by the server) where a listed value of another column does:
    the message names that column, its matching values and, where the compared column's table
    references the holder's table, the join to it."""
    found = []
    for node in scope.tree.find_all(exp.Like):
        compared, literal = node.this, node.expression
        negated = node.args.get("negate") or isinstance(node.parent, exp.Not)
        if negated or isinstance(node.parent, exp.Escape) or not isinstance(compared, exp.Column):
            continue
        if not (isinstance(literal, exp.Literal) and literal.is_string):
            continue
        placed = scope.place(compared)
        if placed is None or placed[1].kind != "text":
            continue
        table, column = placed
        matcher = like_matcher(literal.this)
        holder = _listed_holder(matcher, column, scope)
        if holder is None:
            continue
        if column.values is not None:
            if any(matcher.fullmatch(v) for v in column.values):
                continue
        elif scope.schema.any_like(table.name, column.name, literal.this):
            continue
        other, holding = holder
        matching = [v for v in holding.values or [] if matcher.fullmatch(v)]
        said = (
            f"no value of {table.name}.{column.name} is like '{literal.this}', so {node.sql(dialect='mysql')} "
            f"matches no row; values of {other.name}.{holding.name} are: " + ", ".join(f"'{v}'" for v in matching[:5])
        )
        written = compared.table or table.name
        reference = next(
            (c for c in table.columns if c.references and c.references[0].lower() == other.name.lower()), None
        )
        if reference is not None and other.name.lower() != table.name.lower():
            assert reference.references is not None
            said += (
                f": JOIN {other.name} ON {other.name}.{reference.references[1]} = {written}.{reference.name} "
                f"and compare {other.name}.{holding.name}"
            )
        found.append(said)
    return found


def _shape(value: str) -> str:
    """A value's form: each capital ``A``, each small letter ``a``, each digit ``9``, the rest as it is."""
    return re.sub(r"[0-9]", "9", re.sub(r"[a-z]", "a", re.sub(r"[A-Z]", "A", value)))


def _of_the_columns_form(unheld: _UnheldValue) -> bool:
    """Whether the column's values are an open set, today's sample of them (not an ENUM or SET, and
    referencing no table, whose keys would be every value it may hold), all of one form (:func:`_shape`:
    ``'FI'``, ``'DE'``: two capitals), and the value compared has that form too (``'NO'``): a code of
    the column's own kind that no row holds today, so no row may well be the answer ("customers from
    Norway"). A made-up department code is not: the departments table holds every code there is."""
    column = unheld.column
    if column.references or re.match(r"(?i)(enum|set)\(", column.type_text) or len(column.values or []) < 2:
        return False
    return {_shape(v) for v in column.values or []} == {_shape(unheld.value)}


def _value_held_by_no_column(scope: StatementScope, question: str) -> list[str]:
    """A text value compared with a column that cannot hold it (:func:`_unheld_values`) that no listed
    column holds either and the question does not name (a value the question names that no row has
    makes no such row the answer), and that is not of the form all the column's values share
    (:func:`_of_the_columns_form`): only for ``=`` and an ``IN`` none of whose values the column holds,
    which can then match no row.

    Ablation (test parts and held-out sets, 2026-11-29): no answer changed with it off (it fired on
    airline; 1 lost there in the ablation of 2026-11-27).
    """
    found: list[str] = []
    if not question:
        return found
    for unheld in _unheld_values(scope):
        if unheld.found_in is not None or not unheld.held:
            continue
        node = unheld.node
        matches_nothing = isinstance(node, exp.EQ) or (
            isinstance(node, exp.In) and not unheld.held.intersection(v.casefold() for v in unheld.values)
        )
        if matches_nothing and not mentions(question, unheld.value) and not _of_the_columns_form(unheld):
            found.append(
                _value_of_no_column(unheld.value, node, unheld.compared, unheld.table, unheld.column, unheld.listed)
            )
    return found


def _history_without_current_row(question: str, scope: StatementScope) -> str:
    """A table of periods read without its end column where the question speaks of the present (the
    module's docstring).

    Ablation (test parts and held-out sets, 2026-11-29): 3 answers lost with it off (staff).
    """
    if not speaks_of_now(question):
        return ""
    for name in dict.fromkeys(scope.used):
        table = scope.schema.table(name)
        end = table.period_end()
        if end is None:
            continue
        uses = [c for c in scope.tree.find_all(exp.Column) if c.name.lower() == end.name.lower()]
        ended = [c for c in uses if isinstance(c.parent, exp.Is) and isinstance(c.parent.parent, exp.Not)]
        if len(ended) < len(uses):
            continue  # IS NULL, or compared with a date: the statement chose its periods
        keys = [c.name for c in table.columns if c.primary]
        reads = f"keeps only the periods that have ended ({end.name} IS NOT NULL)" if ended else "reads every period"
        return (
            f"the question asks about the present, and each row of {table.name} is a period (key "
            f"{', '.join(keys)}; {end.name} is NULL while it lasts) and the statement {reads}: the row in effect "
            f"now has {table.name}.{end.name} IS NULL"
        )
    return ""


def _counts_without_their_groups(tree: exp.Expr, rows: Sequence[dict[str, Any]]) -> str:
    """A GROUP BY whose every selected expression is an aggregate, that returned several rows (the
    module's docstring).

    Ablation (test parts and held-out sets, 2026-11-29): 1 answer lost with it off (demo).
    """
    if not isinstance(tree, exp.Select) or len(rows) < 2 or not tree.expressions:
        return ""
    group = tree.args.get("group")
    if group is None:
        return ""
    for projection in tree.expressions:
        aggregates = [a for a in projection.find_all(exp.AggFunc) if _own(a, tree)]
        loose = [c for c in projection.find_all(exp.Column) if _own(c, tree) and c.find_ancestor(exp.AggFunc) is None]
        if not aggregates or loose:
            return ""  # a group key (or another plain column) is selected: each row says whose figure it is
    keys = ", ".join(key.sql(dialect="mysql") for key in group.expressions)
    shown = tree.expressions[0].unalias().sql(dialect="mysql")
    groups_counted = exp.select(exp.Count(this=exp.Star())).from_(tree.copy().subquery("g"))
    return Defect(
        f"it returns {len(rows)} rows, one {shown} per group of {keys}, and selects nothing that says which group "
        f"a row is; to answer with one number, count the groups: {groups_counted.sql(dialect='mysql')}; to answer "
        f"per group, select {keys} beside {shown}",
        groups_counted,
    )


# Periods of time a question may ask a figure for each of ("each month of 2025"): general English.


def _code_for_a_named_value(question: str, scope: StatementScope) -> list[Defect]:
    """A text key compared in place of a value the question names: ``col = 'x'`` (or ``IN``) where
    ``col`` is a text column that references table T, the question names a value of a listed
    column of T that the statement does not read, no named value's rows of T are exactly the keys
    compared, and the question does not give those keys itself. The model guessed a code (``baseCode
    = 'OPO'`` for "based in Portugal", whose airports are more than Porto; ``destinationCode = 'PAR'``
    for "to Paris", a code no airport has). The statement with ``col IN (SELECT key FROM T WHERE c =
    'value')``, for the named value some compared key belongs to, else for the first named value no
    other comparison's keys are exactly. Keys that are exactly those of some named values together
    are theirs ("Porto or Madrid": OPO, MAD), as are they with keys ``col`` does not hold besides
    ("engineering or marketing": ENG, and MKT, no employee's).

    Ablation (test parts and held-out sets, 2026-11-29): 1 answer lost with it off (airline).
    """
    asked = {word.casefold() for word in words(question)}
    read = {c.name.lower() for c in scope.tree.find_all(exp.Column)}
    kinds = (exp.EQ, exp.In)
    comparisons = []
    for position, node in enumerate(scope.tree.find_all(*kinds)):
        compared = _compared_literals(node, text=True)
        placed = scope.place(compared[0]) if compared is not None else None
        if compared is None or placed is None or placed[1].references is None or placed[1].kind == "number":
            continue
        referenced = scope.tables.get(placed[1].references[0].lower())
        if referenced is not None:
            comparisons.append((position, node, compared, placed, scope.schema.table(referenced)))
    found = []
    for position, _node, (column, codes), (table, key_column), lookup in comparisons:
        referenced_key = (key_column.references or ("", ""))[1]  # every comparison kept references a table
        if any(code.casefold() in asked for code in codes):
            continue  # the question gives the key itself
        keys = {code.casefold() for code in codes}
        named: list[tuple[Column, str, set[str], list[str]]] = []  # (its column, the value, its keys folded, as stored)
        for holder in lookup.columns:
            if holder.primary or holder.references or not holder.values or holder.name.lower() in read:
                continue
            for value in holder.values:
                rows = scope.schema.keys_holding(lookup.name, holder.name, value) if mentions(question, value) else None
                if rows:
                    named.append((holder, value, {k.casefold() for k in rows}, sorted(rows)))
        inside = [rows for _, _, rows, _ in named if rows <= keys]
        held = None if key_column.values is None else {v.casefold() for v in key_column.values}
        leftover = keys - set().union(*inside)
        if not named or (inside and (not leftover or (held is not None and not leftover & held))):
            continue  # the keys of named values, with perhaps some of no row ("engineering or marketing": ENG, MKT)
        others = [
            {code.casefold() for code in other[2][1]}
            for other in comparisons
            if other[4] is lookup and other[0] != position
        ]
        meant = next((n for n in named if n[2] & keys), None) or next((n for n in named if n[2] not in others), None)
        if meant is None:
            continue
        holder, value, _, theirs = meant
        key = referenced_key
        by_value = _through(column, lookup, key, holder, value)
        written = column.table or table.name
        listed = ", ".join(f"'{k}'" for k in theirs[:8]) + (", ..." if len(theirs) > 8 else "")
        found.append(
            _suggesting(
                f"the question names '{value}', a value of {lookup.name}.{holder.name}, but the statement compares "
                f"{written}.{key_column.name} with {', '.join(repr(c) for c in codes)}, and the {lookup.name} rows "
                f"whose {holder.name} is '{value}' have {key} {listed}; compare through {lookup.name}",
                _rewritten(scope.tree, kinds, position, by_value),
            )
        )
    return found


def _days_where_a_shorter_unit_is_asked(question: str, scope: StatementScope) -> Optional[Defect]:
    """``DATEDIFF(a, b)`` (whole days) over a column that holds times of day, where the question asks
    for minutes, hours or seconds: the statement with ``TIMESTAMPDIFF(<unit>, b, a)`` instead.

    Ablation (test parts and held-out sets, 2026-11-29): 1 answer lost with it off (airline).
    """
    asked = SHORTER_THAN_A_DAY.search(question)
    if asked is None:
        return None
    unit = asked.group(1).upper().rstrip("S")
    for position, diff in enumerate(scope.tree.find_all(exp.DateDiff)):
        sides = [diff.this, diff.expression]
        placed = [scope.place(side) if isinstance(side, exp.Column) else None for side in sides]
        if not any(p is not None and p[1].times_of_day for p in placed):
            continue
        later, earlier = (side.sql(dialect="mysql") for side in sides)
        counted = parse_statement(f"SELECT TIMESTAMPDIFF({unit}, {earlier}, {later})").expressions[0]
        return _suggesting(
            f"{diff.sql(dialect='mysql')} counts whole days, but the question asks in {asked.group(1).lower()} "
            f"and the columns hold times of day: {counted.sql(dialect='mysql')} counts "
            f"{asked.group(1).lower()}",
            _rewritten(scope.tree, (exp.DateDiff,), position, counted),
        )
    return None


def _arbitrary_row(scope: StatementScope) -> list[str]:
    """An aggregate beside a plain column, or in ORDER BY, in a SELECT without GROUP BY (the module's
    docstring): one row whose plain columns come from whichever row the server met first."""
    found = []
    for select in scope.tree.find_all(exp.Select):
        if select.args.get("group") is not None:
            continue
        if any((placed := scope.place(c)) is not None and placed[1].unique for c in _fixed_by_equality(select)):
            continue  # one row, found by its key: its columns are that row's
        aggregates = [a for p in select.expressions for a in p.find_all(exp.AggFunc) if _own(a, select)]
        fixed = {c.name.lower() for c in _fixed_by_equality(select)}
        loose = [
            c
            for p in select.expressions
            for c in p.find_all(exp.Column)
            if _own(c, select) and c.find_ancestor(exp.AggFunc) is None and c.name.lower() not in fixed
        ]
        if aggregates and loose:
            column, aggregate = loose[0].sql(dialect="mysql"), aggregates[0].sql(dialect="mysql")
            found.append(
                f"it selects {column} beside {aggregate} without GROUP BY: the server makes one group of every "
                f"row and returns one row whose {column} is whichever it met first; for a figure per {column}, "
                f"add GROUP BY {column}; for one figure, leave {column} out"
            )
            continue
        order = select.args.get("order")
        ordered = [a for a in order.find_all(exp.AggFunc) if _own(a, select)] if order is not None else []
        if ordered and not aggregates:
            aggregate = ordered[0].sql(dialect="mysql")
            found.append(
                f"it orders by {aggregate} without GROUP BY: every row is one group, so the order says nothing "
                f"and LIMIT keeps an arbitrary row; GROUP BY the column the question counts or sums per"
            )
    return found


def _fixed_by_equality(select: exp.Select) -> list[exp.Column]:
    """The columns the WHERE clause of ``select`` fixes to one literal (``country = 'Japan'``, joined
    to the rest with AND): one value whichever row the server meets."""
    where = select.args.get("where")
    fixed = []
    for condition in conjuncts(where.this if where is not None else None):
        if isinstance(condition, exp.EQ):
            for side, other in ((condition.this, condition.expression), (condition.expression, condition.this)):
                if isinstance(side, exp.Column) and isinstance(other, exp.Literal):
                    fixed.append(side)
    return fixed


def _compared_with_itself(tree: exp.Expr) -> list[str]:
    """A column compared with itself, as one reference (``c.nation_id = c.nation_id``; the module's
    docstring)."""
    found = []
    for comparison in tree.find_all(exp.EQ, exp.NEQ, exp.LT, exp.GT, exp.LTE, exp.GTE):
        left, right = comparison.this, comparison.expression
        if (
            isinstance(left, exp.Column)
            and isinstance(right, exp.Column)
            and left.name.lower() == right.name.lower()
            and left.table.lower() == right.table.lower()
        ):
            said = comparison.sql(dialect="mysql")
            outcome = (
                "every row where it is not NULL" if isinstance(comparison, (exp.EQ, exp.GTE, exp.LTE)) else "no row"
            )
            found.append(
                f"{said} compares {left.sql(dialect='mysql')} with itself, which holds for {outcome}; compare it "
                f"with the column of the other table it was meant to match"
            )
    return found


def _dates_subtracted(scope: StatementScope) -> list[Defect]:
    """Two date or time columns subtracted with ``-`` (the module's docstring); the rewrite takes
    ``DATEDIFF`` instead."""
    found = []
    for position, difference in enumerate(scope.tree.find_all(exp.Sub)):
        left, right = difference.this, difference.expression
        if not (isinstance(left, exp.Column) and isinstance(right, exp.Column)):
            continue
        placed = [scope.place(left), scope.place(right)]
        if any(p is None or p[1].kind != "time" for p in placed):
            continue
        days = exp.func("DATEDIFF", left.copy(), right.copy())
        rewrite = _rewritten(scope.tree, (exp.Sub,), position, days)
        found.append(
            _suggesting(
                f"{difference.sql(dialect='mysql')} subtracts two dates as numbers (20250305 - 20250226 = 79), "
                f"not as days; DATEDIFF({left.sql(dialect='mysql')}, {right.sql(dialect='mysql')}) is the number "
                f"of days (TIMESTAMPDIFF(HOUR, earlier, later) for hours)",
                rewrite,
            )
        )
    return found


_BARE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _bare_date(node: Optional[exp.Expr]) -> Optional[str]:
    """The date a string literal holds when it is a bare ``YYYY-MM-DD`` (no time), else None."""
    if isinstance(node, exp.Literal) and node.is_string and _BARE_DATE.fullmatch(node.this):
        return node.this
    return None


def _time_bounded_by_a_date(scope: StatementScope) -> list[Defect]:
    """A column holding times of day compared with a bare date as an upper bound, for equality, or
    as ``>`` (the module's docstring); the rewrite compares ``DATE(column)``."""
    found = []
    kinds = (exp.Between, exp.LTE, exp.EQ, exp.GT)
    for position, comparison in enumerate(scope.tree.find_all(*kinds)):
        column = comparison.this
        bound = comparison.args.get("high") if isinstance(comparison, exp.Between) else comparison.expression
        date = _bare_date(bound)
        if not isinstance(column, exp.Column) or date is None:
            continue
        placed = scope.place(column)
        if placed is None or not placed[1].times_of_day:
            continue
        on_day = comparison.copy()
        on_day.set("this", exp.func("DATE", column.copy()))
        rewrite = _rewritten(scope.tree, kinds, position, on_day)
        said = column.sql(dialect="mysql")
        what = {
            exp.Between: f"ends at midnight of '{date}', leaving out that day's later times",
            exp.LTE: f"ends at midnight of '{date}', leaving out that day's later times",
            exp.EQ: f"matches only midnight of '{date}', not the rest of that day",
            exp.GT: f"keeps the times of '{date}' itself after midnight",
        }[type(comparison)]
        found.append(
            _suggesting(
                f"{said} holds times of day, so {comparison.sql(dialect='mysql')} {what}; compare DATE({said}) "
                f"with dates",
                rewrite,
            )
        )
    return found


def _outer_column_in_a_subquery(scope: StatementScope) -> list[str]:
    """A subquery that selects an unqualified column none of its own tables has but a table of a query
    around it does (the module's docstring): the server takes the outer row's value."""
    found = []
    for select in scope.tree.find_all(exp.Select):
        outer_selects = []
        around = select.parent_select
        while around is not None:
            outer_selects.append(around)
            around = around.parent_select
        if not outer_selects:
            continue
        names = [scope.tables.get(t.name.lower()) for t in select.find_all(exp.Table) if _own(t, select)]
        if not names or None in names:
            continue  # a derived table, or a table outside the schema: its columns are not known here
        inner = [scope.schema.table(name) for name in names if name is not None]
        outer = [
            scope.schema.table(scope.tables[t.name.lower()])
            for query in outer_selects
            for t in query.find_all(exp.Table)
            if _own(t, query) and t.name.lower() in scope.tables
        ]
        for projection in select.expressions:
            for column in projection.find_all(exp.Column):
                if column.table or not _own(column, select) or _has_column(inner, column.name):
                    continue
                holders = [t.name for t in outer if _has_column([t], column.name)]
                if not holders:
                    continue
                tables = ", ".join(t.name for t in inner)
                found.append(
                    f"the subquery on {tables} selects {column.name}, which {tables} does not have: the server "
                    f"takes {holders[0]}.{column.name} of the outer row, so the subquery returns each row's own "
                    f"value; select the column of {tables} that holds what is meant, or join the table that has it"
                )
    return found


def _has_column(tables: Iterable[Table], name: str) -> bool:
    return any(t.column(name) is not None for t in tables)


def _reads(names: Collection[str], table: Table, column: exp.Column) -> bool:
    """Whether ``column`` may be a column of ``table``, known in the statement by ``names``: qualified
    with one of them, or unqualified with a name the table has (a guess that errs towards "it may")."""
    if column.table:
        return column.table.lower() in names
    return _has_column([table], column.name)


def _unused_join_that_multiplies(scope: StatementScope) -> list[Defect]:
    """A joined table that nothing but its own ``ON`` clause reads, joined on a column that is not
    unique in it, in a ``SELECT`` that counts or sums without ``DISTINCT`` (the module's docstring);
    the rewrite leaves the join out."""
    found = []
    for index, select in enumerate(scope.tree.find_all(exp.Select)):
        totals = [  # the counts and sums of another table's column (COUNT(*) may count the joined rows)
            a
            for a in select.find_all(exp.Count, exp.Sum)
            if _own(a, select) and not isinstance(a.this, exp.Distinct) and a.find(exp.Column) is not None
        ]
        if not totals:
            continue
        for position, join in enumerate(select.args.get("joins") or []):
            table, on = join.this, join.args.get("on")
            if not isinstance(table, exp.Table) or on is None or table.name.lower() not in scope.tables:
                continue
            described = scope.schema.table(scope.tables[table.name.lower()])
            reads = partial(_reads, {table.alias_or_name.lower(), table.name.lower()}, described)
            elsewhere = [
                c for c in scope.tree.find_all(exp.Column) if reads(c) and c.find_ancestor(exp.Join) is not join
            ]
            if elsewhere or not isinstance(on, exp.EQ):
                continue
            sides = [s for s in (on.this, on.expression) if isinstance(s, exp.Column) and reads(s)]
            if len(sides) != 1:
                continue
            joined_column = described.column(sides[0].name)
            if joined_column is None or joined_column.unique:
                continue
            without = scope.tree.copy()
            copied = list(without.find_all(exp.Select))[index]
            del copied.args["joins"][position]
            found.append(
                _suggesting(
                    f"it joins {table.name} on {on.sql(dialect='mysql')} and reads nothing of it: every row meets "
                    f"each {table.name} row with the same {joined_column.name}, so "
                    f"{totals[0].sql(dialect='mysql')} counts each row once per such {table.name} row; leave the "
                    f"join out",
                    without,
                )
            )
    return found


def _counts_of_one(scope: StatementScope) -> list[str]:
    """``COUNT`` per group of a table's own one-column primary key, over that table alone (the
    module's docstring): every group is one row and counts 1."""
    found = []
    for select in scope.tree.find_all(exp.Select):
        group, source = select.args.get("group"), select.args.get("from_")
        if group is None or select.args.get("joins") or source is None or not isinstance(source.this, exp.Table):
            continue
        counts = [a for a in select.find_all(exp.Count) if _own(a, select)]
        if not counts:
            continue
        for key in group.expressions:
            placed = scope.place(key) if isinstance(key, exp.Column) else None
            if (
                placed is not None
                and placed[0].key == [placed[1]]
                and placed[0].name.lower() == source.this.name.lower()
            ):
                found.append(
                    f"it groups {placed[0].name} by {key.sql(dialect='mysql')}, its key, so every group "
                    f"is one row and {counts[0].sql(dialect='mysql')} is 1 for each (an order by it picks an "
                    f"arbitrary row); group by the column the question counts per, or join the table whose rows "
                    f"are counted"
                )
                break
    return found


def _rows_merged_by_a_shared_name(question: str, scope: StatementScope) -> list[Defect]:
    """A ``GROUP BY`` of a name several rows of a table share, without a unique column of that table,
    where the question asks which rows of it (the module's docstring); the rewrite groups by the
    table's key first.

    Ablation (test parts and held-out sets, 2026-11-29): fired on no question there (0); written for the
    demo's "Which customers placed the most orders?", answered with three customers' orders added up.
    """
    found = []
    for index, select in enumerate(scope.tree.find_all(exp.Select)):
        group = select.args.get("group")
        if group is None:
            continue
        instances = _instances(select, scope)
        grouped: dict[str, list[Column]] = {}
        for key in group.expressions:
            name = _instance_of(key, instances) if isinstance(key, exp.Column) else None
            column = instances[name].column(key.name) if name is not None else None
            if name is not None and column is not None:
                grouped.setdefault(name, []).append(column)
        for name, columns in grouped.items():
            table = instances[name]
            shared = next(((column.name, column.shared) for column in columns if column.shared), None)
            if shared is None or any(column.unique for column in columns) or not asks_which(question, table.name):
                continue
            (column_name, key), rewrite = shared, scope.tree.copy()
            copied = list(rewrite.find_all(exp.Select))[index]
            copied.args["group"].set("expressions", [exp.column(key, table=name), *copied.args["group"].expressions])
            found.append(
                _suggesting(
                    f"it groups by {name}.{column_name}, which several rows of {table.name} share, so each group "
                    f"adds up every row of {table.name} with that name, but the question asks which {table.name}: "
                    f"group by {name}.{key}, its key, and select the name beside it",
                    rewrite,
                )
            )
    return found


def _instances(select: exp.Select, scope: StatementScope) -> dict[str, Table]:
    """The schema's tables a SELECT reads itself (its FROM and joins, not its subqueries), by the name
    the statement calls each (alias or table name, as written: an alias's case matters to the server)."""
    found = {}
    for source in [select.args.get("from_"), *(select.args.get("joins") or [])]:
        table = source.this if source is not None else None
        if isinstance(table, exp.Table) and table.name.lower() in scope.tables:
            found[table.alias_or_name] = scope.schema.table(scope.tables[table.name.lower()])
    return found


def _instance_of(column: exp.Column, instances: dict[str, Table]) -> Optional[str]:
    """The name of the table instance (:func:`_instances`) a column belongs to: its qualifier, or the
    one instance whose table has it; None when that is not exactly one."""
    if column.table:
        return next((name for name in instances if name.lower() == column.table.lower()), None)
    holders = [name for name, table in instances.items() if _has_column([table], column.name)]
    return holders[0] if len(holders) == 1 else None


def _equated(select: exp.Select, instances: dict[str, Table]) -> dict[tuple[str, str, str, str], Optional[int]]:
    """The equalities of two columns in a SELECT's ``WHERE`` and its joins' ``ON`` (outer joins
    included: their ``ON`` pairs the rows they join), both ways round, as (instance, column, instance,
    column), the columns' names in lower case, each with the position of the join whose ``ON`` has it (None: the ``WHERE``)."""
    where = select.args.get("where")
    conditions: list[tuple[Optional[int], exp.Expr]] = [(None, c) for c in conjuncts(where.this if where else None)]
    for place, join in enumerate(select.args.get("joins") or []):
        conditions += [(place, c) for c in conjuncts(join.args.get("on"))]
    equal: dict[tuple[str, str, str, str], Optional[int]] = {}
    for position, condition in conditions:
        if not isinstance(condition, exp.EQ):
            continue
        left, right = condition.left, condition.right
        if isinstance(left, exp.Column) and isinstance(right, exp.Column):
            a, b = _instance_of(left, instances), _instance_of(right, instances)
            if a and b:
                equal.setdefault((a, left.name.lower(), b, right.name.lower()), position)
                equal.setdefault((b, right.name.lower(), a, left.name.lower()), position)
    return equal


def _part_of_a_composite_reference(scope: StatementScope) -> list[Defect]:
    """A table joined to the table a composite foreign key of its references by some of the key's
    columns and not the others (``line JOIN part_supplier ps ON ps.part_id = line.part_id`` where the
    line references ``part_supplier(part_id, supplier_id)``; the module's docstring); the rewrite adds
    the missing equalities to the join's ``ON``."""
    found: list[Defect] = []
    for index, select in enumerate(scope.tree.find_all(exp.Select)):
        instances = _instances(select, scope)
        equal = _equated(select, instances)
        for own, table in instances.items():
            for reference in table.composite_references:
                for other, target in instances.items():
                    if target.name.lower() != reference.table.lower() or other == own:
                        continue
                    pairs = list(zip(reference.columns, reference.referenced))
                    held = [(c, r) for c, r in pairs if (own, c.lower(), other, r.lower()) in equal]
                    if not held or len(held) == len(pairs):
                        continue
                    missing = [(c, r) for c, r in pairs if (c, r) not in held]
                    said = " AND ".join(f"{other}.{r} = {own}.{c}" for c, r in missing)
                    message = (
                        f"it pairs {table.name} with {target.name} on "
                        f"{', '.join(f'{own}.{c} = {other}.{r}' for c, r in held)} alone, but {table.name}'s rows "
                        f"reference {target.name} by ({', '.join(reference.columns)}) together: each {table.name} row "
                        f"meets every {target.name} row of the same {held[0][1]}, so counts and sums are multiplied; "
                        f"add {said}"
                    )
                    position = equal[(own, held[0][0].lower(), other, held[0][1].lower())]
                    rewritten = scope.tree.copy()
                    copied = list(rewritten.find_all(exp.Select))[index]
                    if position is None:  # the equality is the WHERE clause's: the others go there too
                        copied.where(said, dialect="mysql", copy=False)
                    else:
                        join = copied.args["joins"][position]
                        join.set("on", exp.and_(join.args["on"], exp.condition(said, dialect="mysql")))
                    found.append(_suggesting(message, rewritten))
    return found


_NOT_A_DATE = re.compile(r"Incorrect (?:datetime|date|time) value: .* for column `[^`]*`\.`([^`]*)`\.`[^`]*`")


def _cut_ties(cut: Optional[tuple[int, list[str]]]) -> str:
    """The message for a ``LIMIT`` that cuts through ties (the module's docstring)."""
    if cut is None:
        return ""
    limit, labels = cut
    kept = "the first row" if limit == 1 else f"the first {limit} rows"
    return (
        f"it keeps {kept} ordered by {', '.join(labels)}, but many more rows have the same "
        f"{', '.join(labels)}: the order does not tell which rows the question means, and the LIMIT keeps "
        "arbitrary ones; order by the value the question ranks by (a count or total per group: GROUP BY the "
        "column it counts per)"
    )


def _server_warning(warning: str, schema: Optional[SchemaDescriber]) -> str:
    """The server's warning that it could not convert a value (MariaDB's 1292 and 1366, which the engine
    keeps: ``YEAR()`` of a flight number, a name summed), with the date and time columns of the table
    it names where it could not read a date."""
    if not warning:
        return ""
    said = (
        f"the server warned: {warning} (a value it could not read as the type the expression needs, "
        "replaced by NULL or 0); use the column that holds that kind of value, or a value of the column's own type"
    )
    not_a_date = _NOT_A_DATE.search(warning)
    named = (
        next((t for t in schema.tables if not_a_date and t.lower() == not_a_date[1].lower()), None) if schema else None
    )
    if schema is not None and named is not None:
        table = schema.table(named)
        dates = table.columns_of_kind("time")
        if dates:
            said += f" ({table.name}'s date/time columns: {', '.join(dates)})"
    return said


def _scoped(i: Inspected) -> StatementScope:
    assert i.scope is not None  # Check.run calls a check that needs the schema only with one
    return i.scope


# In the order their messages are listed (the model is shown the first defect found): the statement's
# own properties first, a guessed code for a named value before the value check (it is told with its
# rows), the checks that read the question last.
CHECKS: tuple[Check, ...] = (
    Check(
        "arbitrary row",
        "statement",
        False,
        "an aggregate beside a plain column, or in ORDER BY, in a SELECT without GROUP BY",
        lambda i: _arbitrary_row(_scoped(i)),
    ),
    Check(
        "unused join that multiplies",
        "statement",
        True,
        "a table joined on a column not unique in it, read nowhere else, under COUNT or SUM of another column",
        lambda i: _unused_join_that_multiplies(_scoped(i)),
    ),
    Check(
        "counts of one",
        "statement",
        False,
        "COUNT per group of the primary key of the one table the SELECT reads",
        lambda i: _counts_of_one(_scoped(i)),
    ),
    Check(
        "compared with itself",
        "statement",
        False,
        "a column compared with the same reference of itself",
        lambda i: _compared_with_itself(i.tree),
        needs_schema=False,
    ),
    Check(
        "outer column in a subquery",
        "statement",
        False,
        "a subquery selecting an unqualified column its own tables lack and an outer table has",
        lambda i: _outer_column_in_a_subquery(_scoped(i)),
    ),
    Check(
        "dates subtracted",
        "statement",
        True,
        "two date or time columns subtracted with -",
        lambda i: _dates_subtracted(_scoped(i)),
    ),
    Check(
        "time bounded by a date",
        "statement",
        True,
        "a column holding times of day compared with a bare date by BETWEEN, <=, = or >",
        lambda i: _time_bounded_by_a_date(_scoped(i)),
    ),
    Check(
        "part of a composite reference",
        "statement",
        True,
        "a table joined to the table its composite foreign key references by only some of the key's columns",
        lambda i: _part_of_a_composite_reference(_scoped(i)),
    ),
    Check(
        "unrelated keys",
        "statement",
        False,
        "an equality of a foreign key with another table's primary key, or of two unrelated primary keys",
        lambda i: _unrelated_keys(_scoped(i)),
    ),
    Check(
        "code for a named value",
        "question",
        True,
        "a text column compared with a code no row holds where the question names a value of the table",
        lambda i: _code_for_a_named_value(i.question, _scoped(i)),
    ),
    Check(
        "value of another column",
        "statement",
        True,
        "a text compared with a column whose known values lack it and another listed column holds it",
        lambda i: _value_of_another_column(_scoped(i)),
    ),
    Check(
        "pattern of another column",
        "statement",
        False,
        "a LIKE pattern no value of its text column matches and a listed value of another column does",
        lambda i: _pattern_of_another_column(_scoped(i)),
    ),
    Check(
        "value of no column",
        "question",
        False,
        "a text compared with a column whose known values lack it, no column holds it and the question "
        "does not name it",
        lambda i: _value_held_by_no_column(_scoped(i), i.question),
    ),
    Check(
        "counts without their groups",
        "statement",
        True,
        "a GROUP BY whose every selected column is an aggregate, over several rows",
        lambda i: [_counts_without_their_groups(i.tree, i.rows)],
        needs_schema=False,
    ),
    Check(
        "not the rows asked",
        "question",
        False,
        "ids or another table's name selected where the question asks which rows of a table",
        lambda i: [_not_the_rows_asked(i.question, _scoped(i))],
    ),
    Check(
        "rows merged by a shared name",
        "question",
        True,
        "a GROUP BY of a name several rows of a table share, and of none of its unique columns, where the "
        "question asks which rows of that table",
        lambda i: _rows_merged_by_a_shared_name(i.question, _scoped(i)),
    ),
    Check(
        "history without current row",
        "question",
        False,
        "the present asked of a table of periods whose current row has no end date",
        lambda i: [_history_without_current_row(i.question, _scoped(i))],
    ),
    Check(
        "days where a shorter unit is asked",
        "question",
        True,
        "a difference of times in days where the question asks minutes, hours or seconds",
        lambda i: [_days_where_a_shorter_unit_is_asked(i.question, _scoped(i))],
    ),
    Check(
        "cut ties",
        "statement",
        False,
        "more rows than the engine reads past a LIMIT tie with the last row it keeps on the ORDER BY values "
        "and read differently from it",
        lambda i: [_cut_ties(i.cut_ties)],
        needs_schema=False,
    ),
    Check(
        "server warning",
        "statement",
        False,
        "the server warned that it could not convert a value while running the statement (1292, 1366)",
        lambda i: [_server_warning(i.warning, i.scope.schema if i.scope else None)],
        needs_schema=False,
    ),
)
CHECK_NAMES = frozenset(check.name for check in CHECKS)


def defects(
    sql: str,
    schema: Optional[SchemaDescriber] = None,
    rows: Sequence[dict[str, Any]] = (),
    question: str = "",
    skip: Collection[str] = (),
    warning: str = "",
    cut_ties: Optional[tuple[int, list[str]]] = None,
) -> list[Defect]:
    """What is wrong with ``sql`` although it runs: what each of :data:`CHECKS` not named in ``skip``
    finds, in that order (empty: nothing found, or it does not parse). Without ``schema`` only the
    checks that need none run; without ``question`` no check of kind ``question`` runs; the ``rows``
    the statement returned tell a group of NULLs and counts without their groups; ``warning`` is the
    server's warning that it could not convert a value while running it; ``cut_ties`` the limit and
    ORDER BY of a statement whose ``LIMIT`` cuts through more ties than the engine read past it."""
    try:
        tree = parse_statement(sql)
    except Exception:  # the guard and the server report a statement that does not parse
        return []
    scope = StatementScope(tree, schema) if schema is not None else None
    inspected = Inspected(tree, scope, rows, question, warning, cut_ties)
    return [found for check in CHECKS if check.name not in skip for found in check.run(inspected)]
