"""Defects of a statement that the server runs without complaint, decided from the statement and
the schema's keys.

MariaDB (without ``ONLY_FULL_GROUP_BY``) runs statements whose result no question could have asked
for; a small model writes them often. Most defects here are properties of the SQL text and the
schema's keys and values; those decided with the question's words come last:

* **an aggregate collapses the rows**: a ``SELECT`` with an aggregate function (``COUNT``, ``SUM``,
  ``AVG``, ``MIN``, ``MAX``, ...) in its select list, ``ORDER BY`` or ``HAVING``, no ``GROUP BY``, and a
  plain column in its select list. The server folds every row into one and picks that column's value
  from an arbitrary row (``SELECT name FROM t ORDER BY COUNT(*) DESC LIMIT 1`` is one row, not the
  top item). It does not fire on an aggregate alone (``SELECT COUNT(*) ...``), on an aggregate inside a
  subquery or a window (``COUNT(*) OVER ()``), or on any statement with ``GROUP BY``.
* **a column compared with itself**: ``a.x = a.x`` (any comparison whose two sides are the same
  column reference) in a ``WHERE``, ``ON`` or ``HAVING`` condition is true for every row (false for
  every row with ``<>``), so the join or filter it belongs to does nothing it seems to. It does not fire
  on a self-join's ``c1.city = c2.city`` (two aliases).
* **a column compared with itself moved by a constant**: ``d < DATE_ADD(d, INTERVAL 60 MINUTE)``,
  ``x + 5 > x`` (one side a column, the other that same column plus or minus a constant or an
  interval, and no other column) holds for every row or for none, whatever the data. It does not fire
  when the other side has another column (``actual > DATE_ADD(scheduled, ...)``), on other functions of
  the column (``name <> TRIM(name)`` finds untrimmed names), or on two aliases of a self-join.
* **a join whose condition ignores the joined table**: ``JOIN t ON ...`` where every column of the
  condition is qualified and none is ``t``'s (``JOIN loans l ON b.id = c.book_id``): every row of
  ``t`` is paired with every row before it. It does not fire on a condition with an unqualified
  column (it may be ``t``'s), on a condition with a subquery, or on ``USING``/``CROSS JOIN``.
* **keys that do not belong together** (with the schema): an equality between columns of two
  different tables where one side references a table (a declared foreign key, or one inferred from
  its name: :mod:`kb.engines.sql.schema`) and the other is the primary key of a *different* table
  (``Customer.SupportRepId = Customer2.CustomerId`` when SupportRepId references Employee), or where
  both sides are primary keys of two tables neither of which references the other
  (``orders.id = customers.id``). Such a join pairs rows by coincidence of numbers. It does not fire
  on a join along a key (``o.customer_id = c.id``), on two keys referencing the same table
  (``o.customer_id = t.customer_id``), on columns that are not keys (``c.city = s.city``), on a
  self-join, or on a column it cannot place in exactly one table of the statement.

* **a count of groups that are single rows** (with the schema): a ``SELECT`` over one table (no join,
  no derived table) that groups by a column each of whose values one row holds (the one-column
  primary key, a ``UNIQUE`` column, or a column the data shows so: :attr:`Column.unique`) and has a
  ``COUNT`` in its select list, ``ORDER BY`` or ``HAVING``. Every group is one row, so every count is
  1: ``SELECT MedicationName FROM Medications GROUP BY MedicationName ORDER BY COUNT(*) DESC LIMIT 1``
  ranks nothing and names an arbitrary medication. What is counted per row lives in a table that
  references it; the message names those. It does not fire with a join (the count is of the joined
  rows), on a column that rows share (``GROUP BY City``), on a ``COUNT`` inside a subquery, or on
  other aggregates (``SUM(price)`` of one row is that row's price).
* **a bare date as the end of a range on a column with times of day** (with the schema and a
  sample of the data: :attr:`Column.times_of_day`): a ``DATETIME`` or ``TIMESTAMP`` column some of
  whose values are not at midnight, compared as ``col BETWEEN ... AND '2025-07-31'``, ``col <=
  '2025-07-31'`` or ``col = '2025-07-31'``. The date stands for its midnight, so the range stops at
  the start of its last day and the equality finds only the rows at 00:00:00. It does not fire on a
  ``DATE`` column, on a column whose values are all at midnight (the date is then exact), on a bound
  with a time (``'2025-07-31 23:59:59'``), on ``<`` (``col < '2025-08-01'`` is how a range ends), or on
  a function of the column (``DATE(col) = '2025-07-31'``).

* **a NOT IN over the very rows it tests**: ``c NOT IN (SELECT c FROM t)`` in a query over ``t``
  alone, where the subquery reads the same column of the same table with no condition of its own
  (no ``WHERE``, ``GROUP BY``, ``HAVING`` or ``LIMIT``): every row's value is in the list, so the
  condition is false for every row (``SELECT COUNT(*) FROM timesheets WHERE emp_no NOT IN (SELECT emp_no
  FROM timesheets)`` for employees who logged nothing is 0 whatever the data). The rows without a
  match are those of the table the column references; the message names it. It does not fire on a
  subquery over another table, with a condition, on another column, or on ``IN`` without ``NOT``.
* **a text compared with a value its column does not hold but another column does** (with the
  schema's lists of values: :attr:`Column.values`, every value of an ENUM or of a text column with
  few distinct values): ``emp.dept_code = 'Customer Support'`` (or ``IN (...)``) where
  ``dept_code``'s values are codes ('SUP', ...) and 'Customer Support' is a value of
  ``depts.dept_name``, in the table ``dept_code`` references, another table of the statement or any
  other table (``EquipmentTypes.TypeName = 'Van Delivery'``, a value of ``DeliveryMethods.MethodName``).
  No row matches; the message names the column that holds the value and, from a referenced table, the
  join to it. It does not
  fire when the column holds the value (compared as the server compares, without regard to case),
  when its values are not all known (a sample of many), on a value no listed column holds (no
  row may be the answer), or on ``LIKE``.
* **the present asked of a history without its current row** (with the schema and the question:
  :func:`kb.engines.sql.english.speaks_of_now`, general words such as "current", "now", "today"): the
  statement reads a table of periods (:meth:`Table.period_end`: a primary key of several columns
  with a date among them, and one other date column that may be NULL, as in ``salaries(emp_no,
  from_date, to_date, amount)``) and mentions that end column nowhere. Every period of the history
  answers, where the question asks for the one in effect (``to_date IS NULL``); ``to_date IS NOT NULL``
  keeps only the periods that ended. It does not fire when the statement uses the end column otherwise
  (``IS NULL``, a comparison with a date), when the question does not speak of
  the present ("the salary history"), or on a table without that shape (a one-column key, no
  nullable date).

* **a word compared with a number column** (with the schema): ``Rentals.StatusID = 'Cancelled'``
  where the column is a number and a listed column of the table it references (or of a table the
  statement reads) holds the word. The server reads the word as 0, without an error or a warning,
  so no row matches; the message names the column that holds the word and the join. It does not fire
  on a number written as a string (``StatusID = '4'``) or on a word no listed column holds. (With a
  small lookup table, this check and the text-value check above also give the statement with the
  word's key.)
* **a join that only repeats rows** (with the schema): an inner ``JOIN`` of a table none of whose
  columns the statement uses outside the join's own ``ON``, which pairs its reference with the key
  of the table it references (``Customers c JOIN Rentals r ON r.CustomerCode = c.CustomerCode``), in
  a statement whose ``WHERE`` picks one row of the referenced table by its key (``c.CustomerCode =
  'BAKK36'``) or by another column each of whose values one row holds (:attr:`Column.unique`:
  ``d.DepartmentName = 'Neurology'`` where no two departments share a name) and that has no aggregate, ``GROUP BY`` or ``DISTINCT``: that one row comes back once per
  referencing row. A self-join counts too (``Staff s1 JOIN Staff s2 ON s1.StaffID = s2.SupervisorID
  WHERE s1.StaffID = 108``: staff member 108 once per person reporting to them); there the joined
  alias's columns are those it qualifies. Inner joins that hang from the joined table (``JOIN
  Invoices i ON i.RentalID = r.RentalID``), directly or through one another, and whose tables are read
  nowhere but in those ``ON`` conditions, go with it: they only test that rows exist. The message
  gives the statement with ``EXISTS`` in place of the join and the joins hanging from it (the same
  rows, once). It does not fire on a list of rows (no key fixed: whether repeating them is wrong
  depends on what is asked), when a column of the joined table is selected or filtered on, when the
  join goes to the referenced side (each row meets at most one), on ``DISTINCT``, an aggregate or
  ``GROUP BY``.
* **groups merged by a shared name** (with the schema): the statement joins tables and groups by a
  name column the describer marks shared (:attr:`Column.shared`: a ``name`` column whose values
  several rows hold, ``customers.name``), and neither the table's key nor a column the equalities tie
  to it is grouped (``SELECT c.name, COUNT(*) FROM customers c JOIN support_tickets t ON c.id =
  t.customer_id GROUP BY c.name``): the rows of different customers of one name fall into one
  group. The message gives the statement grouped by the key too. It does not fire on one table
  grouped by its own name (counting the rows that share each name may be what is asked), when the
  key or a column tied to it is grouped, or on a column that is not a shared name (a city).
* **an answer the statement fixes itself**: every selected column is tied by the equalities of the
  ``WHERE`` and of inner joins' ``ON`` to a constant, through at least one other column
  (``SELECT s2.SupervisorID FROM Staff s1 JOIN Staff s2 ON s1.StaffID = s2.SupervisorID WHERE
  s1.StaffID = 108`` can only answer 108). The message names the row the constant picks. Likewise a
  ``COUNT(DISTINCT c)`` in the select list whose column is so tied (``SELECT COUNT(DISTINCT
  s2.SupervisorID) ... WHERE s1.StaffID = 1`` is 1 whenever a row matches); its message gives the
  statement with ``COUNT(*)``, which counts the rows that match. It does not fire on a column fixed by
  its own condition alone (``SELECT id FROM t WHERE id = 5`` tests that the row exists), on a column
  another condition does not fix, or through an outer join.

* **a group key its WHERE fixes**: a ``SELECT`` that groups by two expressions or more and selects
  one of them (as written or through its alias) that an equality of its ``WHERE`` sets to a constant
  (``SELECT YEAR(StartsAt), MONTH(StartsAt), COUNT(*) ... WHERE YEAR(StartsAt) = 2025 GROUP BY
  YEAR(StartsAt), MONTH(StartsAt)`` for "each month of 2025"): that column holds the constant in
  every row and divides nothing. The message gives the statement without it (select list, ``GROUP
  BY``, ``ORDER BY``). It does not fire on a key that is the only one grouped by, one not selected,
  one the ``WHERE`` only bounds (``BETWEEN``, ``>=``), the only column selected, or under ``WITH
  ROLLUP``.

And two decided from the rows a statement returned (``rows``):

* **a group of NULLs among the groups**: a ``SELECT`` with ``GROUP BY`` that returned a row with NULL
  in a selected column it groups by. In a ranking (an aggregate in its ``ORDER BY`` and a ``LIMIT``)
  only the first row counts: "Which insurance provider covers the most patients?" answered by the
  group of patients with no provider names no provider. In a list of groups, any row: "What is the
  total invoiced for each payment method?" lists the invoices with no method as if NULL were one.
  The message tells the model to leave them out unless the question asks about missing values. It
  does not fire on a NULL in a column that is not grouped by (an aggregate of nothing, a missing
  date), on a ranking whose NULL row is not the first, under ``WITH ROLLUP`` (its NULLs are the
  totals), or when the statement tests the column for NULL itself (``OR client IS NULL``: it chose).
* **figures of groups that do not say whose they are**: a ``SELECT`` with ``GROUP BY`` whose every
  selected expression is an aggregate, and that returned several rows (``SELECT COUNT(*) FROM
  RentalItems GROUP BY RentalID HAVING COUNT(*) > 2`` for "how many rentals have more than two
  items?"): no row can be read on its own. The message gives the statement that counts the groups.
  It does not fire when a group key (or any plain column) is selected, or on a single row.

And one decided from the statement, the schema and whether the question asks which rows of a table
(:func:`kb.engines.sql.english.asks_which`: "which product", "the customer who"; general
interrogatives, no word of any labelled question) (``question``):

* **ids where the question asks which rows**: the question asks which rows of a table that has a
  name column (a text column whose name says ``name`` or ``title``), and every column the statement
  selects, aggregates aside, is that table's key or a column referencing it (``SELECT product_id,
  COUNT(*) FROM returns GROUP BY product_id ...`` for "Which product was returned most often?"). The
  answer would be a number the user cannot read. It does not fire when the statement also selects a
  name, when the table has no name column (``Which order ...``: its id is how an order is named), or
  when the question does not ask which rows of that table ("What is the customer_id of ...": asked
  for by the column's name).
* **another table's name where the question asks which rows**: the question asks which rows of
  exactly one table that has a name column, no column the statement selects (aggregates aside) is
  that table's or references it, and one is a name column of another table (``SELECT t.Name FROM
  Genre g JOIN Track t ... GROUP BY g.GenreId ORDER BY COUNT(*) DESC LIMIT 1`` for "Which genre has
  the most tracks?" names a track). It does not fire when the question asks which rows of two tables
  ("which customers are looked after by the employee with ..."), when the asked table's own column
  or a reference to it is selected, on a possessive ("which customer's rep ..." asks which rep), or on
  an expression it cannot place in one table.
* **an id where the question asks for a column of its row**: the question asks for a column C of a
  table T by a possessive (:func:`kb.engines.sql.english.asks_for_column`: "Give the employee's last
  name" names ``Employee.LastName``), no selected column has C's name, and a selected column is T's
  key or references T (``SELECT SupportRepId, COUNT(*) FROM Customer GROUP BY SupportRepId``): the
  answer is a number where a name was asked. The message says which join and column to select. It
  does not fire when C (or a column of its name) is selected, when C is T's key ("the customer's
  code"), when no selected column is an id of T, or when a selected expression might compute C.
* **rows counted where the question counts what they belong to**: the question asks how many rows
  of a table T there are (:func:`kb.engines.sql.english.asks_how_many`: "how many students", the
  noun in the plural), and the statement is ``SELECT COUNT(*) FROM U WHERE c IN (SELECT c FROM U
  GROUP BY c HAVING ...)`` with ``U.c`` referencing T: it counts U's rows of the groups chosen (every
  enrollment of the students with at least 7), not the groups. It does not fire when the question
  counts U's rows ("how many enrollments ..."), on ``COUNT(DISTINCT ...)``, on a subquery over
  another table or without ``GROUP BY``, or on an outer ``GROUP BY`` or join.
* **rows of another table counted**: the question asks how many rows of exactly one table T there
  are (:func:`kb.engines.sql.english.asks_how_many`), and the statement is one ``COUNT`` over one
  other table U (no join, no ``GROUP BY``) none of whose columns references T (``SELECT COUNT(*) FROM
  pilots WHERE licenseLevel = 'training captain'`` for "How many flights had a training captain as
  their captain?"): nothing in U's rows stands for T's. It does not fire when U is T, when a column
  of U references T (``COUNT(*) FROM invoice_lines`` for "how many tracks were sold": each line a
  sale of a track), on a join (the count is of the joined rows), or when the question counts no
  table ("how many cities ...").
* **joined rows counted where the question counts the table they reference**: the question asks how
  many rows of exactly one table T of the statement there are (:func:`kb.engines.sql.english.asks_how_many`),
  and the statement is one ``COUNT(*)`` (or ``COUNT(c)``, not ``DISTINCT``; no ``GROUP BY``, inner joins
  only) over T joined to a table U by an equality of ``U.c``, which references T, with T's key
  (``SELECT COUNT(*) FROM medications m JOIN prescriptions p ON p.medication_id = m.id`` for "How many
  medications were prescribed?"): each T row is counted once per U row that matches it. The message
  gives the statement with ``COUNT(DISTINCT T.key)``. It does not fire when the question counts U's
  rows ("how many prescriptions ..."), on ``COUNT(DISTINCT ...)``, an outer join, ``GROUP BY``, when
  the ``WHERE`` picks one U row by its key, when ``U.c`` is unique (one U row per T row at most), on a
  self-join, or when the question counts no table of the statement.
* **referencing rows counted where the question counts the table they reference**: the question
  asks how many rows of exactly one table T there are, and the statement is one ``COUNT`` (not
  ``DISTINCT``) over one other table U (no join, no ``GROUP BY``) with exactly one column that
  references T and is not unique (``SELECT COUNT(*) FROM orders WHERE YEAR(ordered_at) = 2025`` for
  "How many customers placed an order in 2025?"): each T row is counted once per U row of its own.
  The message gives ``COUNT(DISTINCT c)``. It does not fire when the question counts U's rows, on
  ``COUNT(DISTINCT ...)``, when U's reference is unique (one row per T row at most) or fixed by the
  ``WHERE``, when U has several columns referencing T (roles), or none (the check above).
* **one figure where the question asks for each item**: the question says "each" or "for every",
  at most one word, then a table's name, a column's name as words or a period (year, month, ...)
  (:func:`kb.engines.sql.english.asked_for_each`), and the statement has an aggregate in its select
  list and no ``GROUP BY`` or window anywhere (``SELECT COUNT(*) FROM support_tickets`` for "How many
  support tickets has each customer opened?"). The message names what to group by. It does not fire
  on a ratio of aggregates, on groups counted in a subquery, on "every" alone ("Does every staff
  member have ...?") or on "each" before a word that names nothing in the schema.
* **an id where the question names the row's value**: the statement compares a column that
  references a table with a number (``Rentals.StatusID = 1``), the question does not give that
  number, and it names a value of a listed text column of the referenced table ("cancelled":
  ``RentalStatuses.StatusName`` holds 'Cancelled') that the statement does not read. The id was
  guessed; for a small lookup table (:meth:`kb.engines.sql.schema.SchemaDescriber.labels`) the message says
  which row the id is and gives the statement with the named value's id, otherwise the statement
  that joins the table and compares the name. It does not fire when the id is the named value's
  own (a small lookup table), when the question gives the number or names no value of that table,
  when the statement compares the name column too, nor on a column that references nothing (a
  row's own key).
* **a code where the question names the row's value**: the statement compares a text column that
  references a table T with text keys (``baseCode = 'OPO'``, ``destinationCode = 'PAR'``), the
  question does not give those keys, and it names a value of a listed column of T that the
  statement does not read ("based in Portugal": ``airports.country`` holds 'Portugal'), and the keys
  compared are not exactly those of some named values (Portugal's airports are LIS and OPO; no
  airport is PAR).
  The model guessed the code. The message lists the named value's keys and gives the statement
  that compares through T (``baseCode IN (SELECT airportCode FROM airports WHERE country =
  'Portugal')``), for the named value a compared key belongs to, else for one no other comparison's
  keys are exactly ("from Madrid to Paris" with ``originCode = 'MAD'`` right tells only Paris). It
  does not fire when the keys are exactly named values' ("based in Porto": OPO alone; "engineering
  or marketing": ENG and MKT), when the
  question gives the key ("based at LIS"), names no value of T, or the statement reads the named
  value's column, nor on a number column (the check above) or a row's own key.
* **a state where the question speaks of an event every row had**: the statement compares a column
  of listed values with one (``status = 'open'``, ``State = 'Filed'``), the same table has a date
  or time column that is never NULL and named for that value as an event (``opened_at``,
  ``FiledOn``: the name's first word is the value, or the value with -ed/-d, the others time words),
  and the question names that event ("tickets opened by ...", "returns requested more than 30 days
  after delivery"). Every row had the event, whatever its state is now; the condition keeps only
  the rows still in that state. The message gives the statement without the condition. It does not
  fire when the question names the state only ("how many tickets are open?") or besides the event
  ("How many tickets opened in 2025 are open?"), when the event's
  column may be NULL (``closed_at``: not every ticket was closed), or for a value no such column
  is named for.
* **today's date where the question counts no time from today**: the statement reads the present
  (``CURDATE()``, ``CURRENT_DATE``, ``NOW()``, ...) and the question has none of the words that place
  a time relative to the present (:func:`kb.engines.sql.english.speaks_of_a_time_relative_to_now`:
  "current", "ago", "the last 30 days", "overdue", "older than", "still", ...). "How many projects
  finished after their deadline?" compares two dates of each project, ``finished > deadline``, not
  the deadline with today (``deadline < CURRENT_DATE``). It does not fire when the question has such a
  word ("orders of the last 30 days", "invoices that are overdue"), or on a statement that reads no
  present date.
* **an amount of time in another unit than its column holds**: the question states amounts of time
  ("longer than 5 minutes", "between 3 and 5 minutes", "an hour"), and the statement compares a
  number column whose name ends with a unit of time (``Milliseconds``, ``duration_ms``,
  ``running_minutes``, ``hrs``) with a number that is none of those amounts in that unit
  (``Milliseconds > 50000``). The message gives each amount in the column's unit and, for one
  amount, the statement with it. It does not fire on the amounts converted right, on a column whose
  name states no unit (``length``, ``min_price``: a minimum), or when the question states no
  amount of time.
* **a number of another day of the week than the question names**: the question names days of
  the week ("on a Saturday", "on Mondays"), and the statement compares ``DAYOFWEEK(x)`` (1 is
  Sunday, 7 Saturday) or ``WEEKDAY(x)`` (0 is Monday, 6 Sunday) with numbers none of which is a
  named day (``DAYOFWEEK(d) = 6`` is Friday). The message gives the statement with the named days'
  numbers. It does not fire when one of the numbers is a named day, when the question names no
  day of the week, or on other date functions (``MONTH(d) = 6``).
* **a date the question does not give**: the question has no number, no month, season or period
  name ("year", "week", ...) and places nothing relative to today, and a condition of the outer
  ``WHERE`` compares a date or time column with a literal holding a year (``scheduledDeparture
  LIKE '%2025-06-%'`` for "How many flights departed on a Saturday?"): the model invented the date.
  The message gives the statement without that condition. It does not fire when the question gives
  a year, a month or a period ("in 2025", "in March", "this year", "each year"), on a condition
  with a subquery, or on a year-like number compared with a column that is not a date.

A check never changes a statement in place: :class:`kb.engines.sql.SQLEngine` gives the statement
back to the model with the defect as its error. A message that ends with a whole statement kb wrote
(the statement with the named value's id, the count of the groups, the row picked alone, ...) is a
:class:`Defect` carrying it as ``rewrite``. The engine runs it only when the model's corrections did
not take it up and none ran clean, as a voice among its rescue samples: it answers where one of
the model's samples gives its rows (alone only with ``sql.rewrites_answer``), and the answer then
says the rows are kb's rewrite of a statement with a defect. When nothing runs clean, the statement
with the defect answers as written.

The checks are listed in :data:`CHECKS` at the end of the module (a :class:`Check` each: its name,
its kind, ``statement`` or ``question``, whether it writes a rewrite, its trigger), in the order
their messages are shown.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

from sqlglot import exp

from kb.engines.sql.english import (
    GIVES_A_DATE,
    PERIODS,
    SHORTER_THAN_A_DAY,
    UNIT_SECONDS,
    WEEKDAY_NAMES,
    WEEKDAYS,
    amounts_of_time,
    asked_for_each,
    asks_for_column,
    asks_how_many,
    asks_which,
    mentions,
    name_words,
    speaks_of_a_time_relative_to_now,
    speaks_of_now,
    table_nouns,
    words,
)
from kb.engines.sql.guard import parse_statement, table_named
from kb.engines.sql.schema import Column, SchemaDescriber, StatementScope, Table


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
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ)

CheckKind = Literal["statement", "question"]
Found = Union[str, Defect, None]


@dataclass(frozen=True)
class Inspected:
    """What a check may look at: the parsed statement, its tables placed in the schema (None without a
    schema), the rows it returned, and the question (empty when the checks may not read it)."""

    tree: exp.Expr
    scope: Optional[StatementScope]
    rows: Sequence[dict[str, Any]]
    question: str


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


_SHIFTS = (exp.Add, exp.Sub, exp.DateAdd, exp.DateSub, exp.TimestampAdd, exp.TimestampSub)
_SHIFT_FUNCTIONS = {"ADDDATE", "SUBDATE", "ADDTIME", "SUBTIME"}  # parsed as anonymous functions


def _is_shift_of(side: exp.Expr, column: exp.Column) -> bool:
    """Whether ``side`` is ``column`` plus or minus something without columns (a number, an interval)."""
    shift = isinstance(side, _SHIFTS) or (
        isinstance(side, exp.Anonymous) and str(side.this).upper() in _SHIFT_FUNCTIONS
    )
    if not shift or side.find(exp.Select):
        return False
    columns = list(side.find_all(exp.Column))
    return len(columns) == 1 and columns[0] == column


def _shifted_self_comparison(comparison: exp.Binary, scope: Optional[StatementScope]) -> str:
    left, right = comparison.left, comparison.right
    for column, other in ((left, right), (right, left)):
        if isinstance(column, exp.Column) and _is_shift_of(other, column):
            said = (
                f"the condition {comparison.sql(dialect='mysql')} compares {column.sql(dialect='mysql')} with "
                "itself moved by a constant, so it holds for every row or for none; compare it with the other "
                "column meant (another date or amount of the same row), or with a value"
            )
            placed = scope.place(column) if scope is not None else None
            if placed is not None:
                table, own = placed
                others = table.columns_of_kind(own.kind, but=own.name)
                if others and own.kind != "text":
                    said += f" ({table.name}'s other {'date/time' if own.kind == 'time' else 'number'} columns: "
                    said += ", ".join(others) + ")"
            return said
    return ""


def _condition_ignoring_its_table(join: exp.Join) -> str:
    on, joined = join.args.get("on"), join.this
    if on is None or on.find(exp.Select) or not isinstance(joined, (exp.Table, exp.Subquery)):
        return ""
    columns = list(on.find_all(exp.Column))
    name = joined.alias_or_name.lower()
    if not columns or any(not c.table for c in columns) or any(c.table.lower() == name for c in columns):
        return ""
    return (
        f"the join of {joined.sql(dialect='mysql')} has the condition ON {on.sql(dialect='mysql')}, which names "
        f"none of its columns, so every row of it is paired with every row before it; join it on its own "
        "column that matches the other table's key (or the key it refers to)"
    )


def _references(column: Column) -> str:
    return column.references[0].lower() if column.references else ""


Placed = tuple[exp.Column, Table, Column]  # a column as the statement writes it, and its table and column


def _many_to_one(condition: exp.Expr, scope: StatementScope) -> Optional[tuple[Placed, Placed]]:
    """The two sides of ``condition`` when it is ``many.reference = one.column`` (either way round): an
    equality of two columns kb can place, the first referencing the second's table and not unique, so
    that many rows of its table may match one row of the other; None otherwise."""
    if not isinstance(condition, exp.EQ):
        return None
    sides = [
        (side, *placed)
        for side in (condition.left, condition.right)
        if isinstance(side, exp.Column) and (placed := scope.place(side)) is not None
    ]
    if len(sides) != 2:
        return None
    for many, one in ((sides[0], sides[1]), (sides[1], sides[0])):
        if _references(many[2]) == one[1].name.lower() and not many[2].unique:
            return many, one
    return None


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
            a[1].primary
            and b[1].primary
            and _references(a[1]) != b[0].name.lower()
            and _references(b[1]) != a[0].name.lower()
        ):
            found.append(
                f"the join condition {shown} pairs the keys of two tables, {a[0].name} and {b[0].name}, "
                "that do not reference each other; join along a column that references the other table"
            )
    return found


_BARE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _bare_date(node: Optional[exp.Expr]) -> Optional[dt.date]:
    """The date a string literal such as ``'2025-07-31'`` (a date without a time) names, else None."""
    if not isinstance(node, exp.Literal) or not node.is_string or not _BARE_DATE.fullmatch(node.this):
        return None
    try:
        return dt.date.fromisoformat(node.this)
    except ValueError:
        return None


def _bare_dates_on_times(scope: StatementScope) -> list[str]:
    found = []
    for node in scope.tree.find_all(exp.Between, exp.LTE, exp.GTE, exp.EQ):
        if isinstance(node, exp.Between):
            column, day = node.this, _bare_date(node.args.get("high"))
        elif isinstance(node, exp.GTE):  # '2025-07-31' >= d
            column, day = node.right, _bare_date(node.left)
        elif isinstance(node, (exp.LTE, exp.EQ)):
            column, day = node.left, _bare_date(node.right)
            if day is None and isinstance(node, exp.EQ):
                column, day = node.right, _bare_date(node.left)
        else:
            continue
        placed = scope.place(column) if isinstance(column, exp.Column) and day is not None else None
        if placed is None or day is None or not placed[1].times_of_day:
            continue
        table, own = placed
        shown, name = node.sql(dialect="mysql"), column.sql(dialect="mysql")
        after = (day + dt.timedelta(days=1)).isoformat()
        holds = f"{table.name}.{own.name} holds times of day"
        if isinstance(node, exp.EQ):
            found.append(
                f"the condition {shown} finds only the rows at {day} 00:00:00, but {holds}; for the rows of that "
                f"day write DATE({name}) = '{day}' (or {name} >= '{day}' AND {name} < '{after}')"
            )
            continue
        start = f"{name} >= {node.args['low'].sql(dialect='mysql')} AND " if isinstance(node, exp.Between) else ""
        found.append(
            f"the condition {shown} ends at {day} 00:00:00, but {holds}, so the rows of {day} after midnight are "
            f"left out; to include that day write {start}{name} < '{after}'"
        )
    return found


def _own(node: exp.Expression, select: exp.Select) -> bool:
    """Whether ``node`` belongs to ``select`` itself rather than to a subquery or window inside it."""
    parent = node.parent
    while parent is not None and parent is not select:
        if isinstance(parent, (exp.Select, exp.Window, exp.Subquery)):
            return False
        parent = parent.parent
    return parent is select


def _collapsing_aggregate(select: exp.Select) -> str:
    if select.args.get("group"):
        return ""
    places = [*select.expressions, select.args.get("order"), select.args.get("having")]
    aggregates = [
        agg for place in places if place is not None for agg in place.find_all(exp.AggFunc) if _own(agg, select)
    ]
    if not aggregates:
        return ""
    plain = []
    for projection in select.expressions:
        for column in projection.find_all(exp.Column):
            if not _own(column, select):
                continue
            inside_aggregate = column.find_ancestor(exp.AggFunc)
            if inside_aggregate is None or not _own(inside_aggregate, select):
                plain.append(column.sql(dialect="mysql"))
    if not plain:
        return ""
    aggregate = aggregates[0].sql(dialect="mysql")
    columns = ", ".join(dict.fromkeys(plain))
    return (
        f"it uses {aggregate} without GROUP BY beside the plain column(s) {columns}, so the server folds all "
        "rows into one and takes those values from an arbitrary row; GROUP BY what is counted per item "
        "(its id), or drop the plain columns"
    )


def _group_key_its_where_fixes(select: exp.Select) -> str:
    group, where = select.args.get("group"), select.args.get("where")
    if group is None or where is None or len(group.expressions) < 2 or group.args.get("rollup"):
        return ""
    aliases = {p.alias.lower(): p.this for p in select.expressions if isinstance(p, exp.Alias)}

    def meant(node: exp.Expr) -> exp.Expr:  # an alias of the select list stands for its expression
        if isinstance(node, exp.Alias):
            return node.this
        if isinstance(node, exp.Column) and not node.table and node.name.lower() in aliases:
            return aliases[node.name.lower()]
        return node

    fixed = [
        (side, literal)
        for condition in conjuncts(where.this)
        if isinstance(condition, exp.EQ)
        for side, literal in ((condition.left, condition.right), (condition.right, condition.left))
        if isinstance(literal, exp.Literal) and not isinstance(side, exp.Literal)
    ]
    for key in group.expressions:
        value = next((literal for side, literal in fixed if side == meant(key)), None)
        selected = [p for p in select.expressions if meant(p) == meant(key)]
        if value is None or not selected or len(selected) == len(select.expressions):
            continue
        without = select.copy()
        without.set("expressions", [p.copy() for p in select.expressions if meant(p) != meant(key)])
        without.set("group", exp.Group(expressions=[g.copy() for g in group.expressions if meant(g) != meant(key)]))
        order = select.args.get("order")
        if order is not None:
            kept = [o.copy() for o in order.expressions if meant(o.this) != meant(key)]
            without.set("order", exp.Order(expressions=kept) if kept else None)
        shown, literal = meant(key).sql(dialect="mysql"), value.sql(dialect="mysql")
        return _suggesting(
            f"it selects and groups by {shown}, which its WHERE fixes ({shown} = {literal}), so that column is "
            f"{literal} in every row and divides no group; select and group by the other columns only",
            without,
        )
    return ""


def _single_table(select: exp.Select) -> Optional[exp.Table]:
    """The one plain table a ``SELECT`` reads (``FROM t``, no join, no derived table), else None."""
    source = select.args.get("from_")
    if source is None or select.args.get("joins") or not isinstance(source.this, exp.Table):
        return None
    return source.this


def _count_of_single_rows(select: exp.Select, schema: SchemaDescriber) -> str:
    group, source = select.args.get("group"), _single_table(select)
    if group is None or source is None:
        return ""
    places = [*select.expressions, select.args.get("order"), select.args.get("having")]
    counts = [c for place in places if place is not None for c in place.find_all(exp.Count) if _own(c, select)]
    table_name = next((t for t in schema.tables if t.lower() == source.name.lower()), None)
    if not counts or table_name is None:
        return ""
    table = schema.table(table_name)
    qualifiers = {"", source.name.lower(), source.alias_or_name.lower()}
    for key in group.expressions:
        if not isinstance(key, exp.Column) or key.table.lower() not in qualifiers:
            continue
        column = next((c for c in table.columns if c.name.lower() == key.name.lower()), None)
        if column is None or not column.unique:
            continue
        referencing = [
            f"{other}.{c.name}"
            for other in schema.tables
            if other != table.name
            for c in schema.table(other).columns
            if c.references and c.references[0].lower() == table.name.lower()
        ]
        said = (
            f"it groups {table.name} by {column.name}, which is different in every row, so each group is one row "
            f"and {counts[0].sql(dialect='mysql')} is 1 in every group; to count what belongs to each {table.name} "
            "row, JOIN the table that records it"
        )
        return said + (f" ({', '.join(referencing)} references {table.name})" if referencing else "")
    return ""


def _null_group(tree: exp.Expr, rows: Sequence[dict[str, Any]]) -> str:
    if not isinstance(tree, exp.Select) or not rows:
        return ""
    group, order = tree.args.get("group"), tree.args.get("order")
    if group is None or any(group.args.get(k) for k in ("rollup", "cube", "grouping_sets", "totals")):
        return ""  # ROLLUP's and CUBE's NULLs are the totals' rows
    ranking = (
        tree.args.get("limit") is not None
        and order is not None
        and any(_own(a, tree) for a in order.find_all(exp.AggFunc))
    )
    grouped = {key.name.lower() for key in group.expressions if isinstance(key, exp.Column)}
    tested = {node.this.name.lower() for node in tree.find_all(exp.Is) if isinstance(node.this, exp.Column)}
    for position, projection in enumerate(tree.expressions):
        column = projection.this if isinstance(projection, exp.Alias) else projection
        if not isinstance(column, exp.Column) or column.name.lower() not in grouped - tested:
            continue
        values = [list(row.values())[position] if position < len(row) else "" for row in rows]
        name = column.name
        if ranking and values[0] is None:
            return (
                f"its first row is the group of rows whose {name} is NULL (no value), so the answer names no "
                f"{name}; unless the question asks about missing values, leave them out (WHERE {name} IS NOT NULL)"
            )
        if not ranking and None in values:
            return (
                f"one of its rows is the group of rows whose {name} is NULL (no value), which is no {name}; "
                f"unless the question asks about rows without a {name} too, leave them out "
                f"(WHERE {name} IS NOT NULL)"
            )
    return ""


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
    schema = scope.schema
    placed = [(table, column) for _, table, column in _selected_columns(scope)]
    if not placed:
        return ""
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


def _id_for_the_column_asked(question: str, scope: StatementScope) -> str:
    schema = scope.schema
    placed = _selected_columns(scope)
    for name in schema.tables if placed else ():
        table = schema.table(name)
        asked = [c for c in table.columns if not c.primary and asks_for_column(question, name, c.name)]
        if not asked or any(c.name.lower() in {a.name.lower() for a in asked} for _, _, c in placed):
            continue  # the column asked is selected (or one of its name, from another table: not an id)
        ids = [(w, t, c) for w, t, c in placed if _references(c) == name.lower() or (t.name == name and c.primary)]
        if not ids:
            continue
        written, holder, id_column = ids[0]
        shown, wanted = written.sql(dialect="mysql"), f"{name}.{asked[0].name}"
        said = f"the question asks for {wanted}, and the statement answers with {shown}, an id of {name}: "
        if holder.name == name:
            return said + f"select {asked[0].name} of the same row in place of (or beside) the id"
        key = id_column.references[1] if id_column.references else ""
        return (
            said
            + f"JOIN {name} ON {name}.{key} = {shown} and select {wanted} (group by it too where the statement groups)"
        )
    return ""


def _lone_count(tree: exp.Expr) -> Optional[tuple[exp.Count, exp.Table]]:
    """``SELECT COUNT(...) FROM t`` (one plain table, no join, no ``GROUP BY``, nothing else
    selected): the count and the table, else None."""
    if not isinstance(tree, exp.Select) or tree.args.get("group") or len(tree.expressions) != 1:
        return None
    count, source = tree.expressions[0].unalias(), _single_table(tree)
    return (count, source) if isinstance(count, exp.Count) and source is not None else None


def _rows_of_groups_counted(question: str, scope: StatementScope) -> str:
    tree, schema = scope.tree, scope.schema
    lone = _lone_count(tree)
    where = tree.args.get("where")
    if lone is None or isinstance(lone[0].this, exp.Distinct) or where is None:
        return ""
    source = lone[1]
    for member in where.find_all(exp.In):
        query = member.args.get("query")
        inner = query.this if isinstance(query, exp.Subquery) else None
        if (
            not isinstance(member.this, exp.Column)
            or not isinstance(inner, exp.Select)
            or inner.args.get("group") is None
        ):
            continue
        inner_source = inner.args.get("from_")
        if inner_source is None or not isinstance(inner_source.this, exp.Table):
            continue
        if inner_source.this.name.lower() != source.name.lower():
            continue  # members chosen from another table
        placed = scope.place(member.this)
        if placed is None:
            continue
        table, column = placed
        counted = next((t for t in schema.tables if t.lower() == _references(column)), None)
        if counted is None or counted == table.name or not asks_how_many(question, counted):
            continue
        return (
            f"it counts the rows of {table.name} whose {column.name} is among the subquery's groups, but the "
            f"question asks how many {counted}: count the groups (SELECT COUNT(*) FROM (the subquery) AS g) or "
            f"COUNT(DISTINCT {table.name}.{column.name})"
        )
    return ""


def _count_of_another_table(question: str, scope: StatementScope) -> str:
    schema, lone = scope.schema, _lone_count(scope.tree)
    if lone is None:
        return ""
    counted = next((t for t in schema.tables if t.lower() == lone[1].name.lower()), None)
    if counted is None:
        return ""
    asked = [t for t in schema.tables if t != counted and asks_how_many(question, t)]
    if len(asked) != 1:
        return ""
    table = schema.table(counted)
    if any(_references(column) == asked[0].lower() for column in table.columns):
        return ""  # its rows may stand for the asked ones ("how many tracks were sold": invoice lines)
    return (
        f"it counts rows of {counted}, but the question asks how many {asked[0]}, and no column of {counted} "
        f"references {asked[0]}: count {asked[0]} rows (FROM {asked[0]}, with a JOIN to {counted} for its condition)"
    )


def _counting_distinct(select: exp.Select, column: exp.Column) -> exp.Select:
    """A copy of ``select`` (one count in its select list) that counts the different values of
    ``column`` instead, under the count's alias if it had one."""
    distinct = select.copy()
    projection = distinct.expressions[0]
    counted = exp.Count(this=exp.Distinct(expressions=[column]))
    if isinstance(projection, exp.Alias):
        projection.set("this", counted)
    else:
        projection.replace(counted)
    return distinct


def _referencing_rows_counted(question: str, scope: StatementScope) -> str:
    lone = _lone_count(scope.tree)
    if lone is None or isinstance(lone[0].this, exp.Distinct) or not isinstance(scope.tree, exp.Select):
        return ""
    counted = scope.tables.get(lone[1].name.lower())
    if counted is None or asks_how_many(question, counted):
        return ""
    asked = [t for t in scope.schema.tables if t != counted and asks_how_many(question, t)]
    if len(asked) != 1:
        return ""
    table = scope.schema.table(counted)
    references = [c for c in table.columns if _references(c) == asked[0].lower() and not c.unique]
    if len(references) != 1:
        return ""  # none (another check's matter) or several roles: which one was meant is the model's call
    reference = references[0]
    if any(name == reference.name.lower() for _, name in Equalities(scope.tree).constant):
        return ""  # the WHERE fixes it: one row of the asked table
    distinct = _counting_distinct(scope.tree, exp.column(reference.name))
    return _suggesting(
        f"{lone[0].sql(dialect='mysql')} counts rows of {counted} where the question asks how many {asked[0]}: "
        f"{counted}.{reference.name} references {asked[0]}, so each {asked[0]} row is counted once for every "
        f"{counted} row of its own; count each {asked[0]} row once",
        distinct,
    )


def _count_repeated_by_a_join(question: str, scope: StatementScope) -> str:
    tree = scope.tree
    if not isinstance(tree, exp.Select) or tree.args.get("group") or len(tree.expressions) != 1:
        return ""
    count = tree.expressions[0].unalias()
    if not isinstance(count, exp.Count) or isinstance(count.this, exp.Distinct):
        return ""
    sources = [tree.args["from_"].this] if tree.args.get("from_") else []
    joins = tree.args.get("joins") or []
    if any(not inner_join(join) for join in joins):
        return ""  # an outer join keeps rows without a match: what COUNT(*) counts is then another matter
    sources += [join.this for join in joins]
    if not sources or not all(isinstance(source, exp.Table) for source in sources):
        return ""
    named = [scope.tables.get(source.name.lower()) for source in sources]
    if None in named or len(set(named)) != len(named):
        return ""  # a table kb does not know, or one read twice (a self-join)
    asked = [name for name in named if name and asks_how_many(question, name)]
    if len(asked) != 1:
        return ""
    counted = scope.schema.table(asked[0])
    keys = [column for column in counted.columns if column.primary]
    if len(keys) != 1:
        return ""
    key = keys[0]
    counted_alias = sources[named.index(asked[0])].alias_or_name
    equalities = Equalities(tree)
    for join in joins:
        for condition in conjuncts(join.args.get("on")):
            pair = _many_to_one(condition, scope)  # the many side of the counted table: its rows repeat one
            if pair is None:
                continue
            (_, many, reference), (_, one, target) = pair
            if one.name != counted.name or target.name != key.name or many.name == one.name:
                continue
            many_alias = next(s.alias_or_name for s, n in zip(sources, named) if n == many.name).lower()
            identifying = {c.name.lower() for c in many.columns if c.primary or c.unique}
            if any((many_alias, name) in equalities.constant for name in identifying):
                continue  # the WHERE picks one row of it
            distinct = _counting_distinct(tree, exp.column(key.name, table=counted_alias))
            return _suggesting(
                f"{count.sql(dialect='mysql')} counts the joined rows where the question asks how many "
                f"{counted.name}: {many.name}.{reference.name} references {counted.name}, so each {counted.name} "
                f"row is counted once for every {many.name} row that matches it; count each {counted.name} row once",
                distinct,
            )
    return ""


def _not_in_its_own_rows(tree: exp.Expr, scope: Optional[StatementScope]) -> list[str]:
    found = []
    for negation in tree.find_all(exp.Not):
        member = negation.this
        query = member.args.get("query") if isinstance(member, exp.In) else None
        inner = query.this if isinstance(query, exp.Subquery) else query
        outer = negation.find_ancestor(exp.Select)
        if not isinstance(member.this, exp.Column) or not isinstance(inner, exp.Select) or outer is None:
            continue
        inner_table, outer_table = _single_table(inner), _single_table(outer)
        if inner_table is None or outer_table is None or len(inner.expressions) != 1:
            continue
        if any(inner.args.get(part) for part in ("where", "group", "having", "limit")):
            continue
        picked = inner.expressions[0].unalias()
        tested = member.this
        if (
            not isinstance(picked, exp.Column)
            or picked.name.lower() != tested.name.lower()
            or inner_table.name.lower() != outer_table.name.lower()
            or tested.table.lower() not in ("", outer_table.alias_or_name.lower(), outer_table.name.lower())
        ):
            continue
        placed = scope.place(tested) if scope is not None else None
        target = placed[1].references if placed is not None else None
        said = (
            f"{negation.sql(dialect='mysql')} is false for every row of {outer_table.name}: the subquery lists the "
            f"{tested.name} of every row it tests"
        )
        if target:
            said += (
                f"; the rows with no {outer_table.name} row are those of {target[0]} (which {tested.name} "
                f"references): SELECT ... FROM {target[0]} WHERE {target[1]} NOT IN (SELECT {tested.name} FROM "
                f"{outer_table.name})"
            )
        found.append(said)
    return found


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


def _listed_holder(value: str, column: Column, scope: StatementScope) -> Optional[tuple[Table, Column]]:
    """The first column other than ``column`` whose listed values hold ``value`` (compared without
    regard to case, as the server compares): in the table ``column`` references, then in a table the
    statement reads, then in any other table of the schema; None: none does."""
    wanted = value.casefold()
    nearby = [column.references[0]] if column.references else []
    tables = {name.lower(): name for name in scope.schema.tables}
    searched = [*nearby, *scope.used, *scope.schema.tables]
    for name in dict.fromkeys(tables[n.lower()] for n in searched if n.lower() in tables):
        table = scope.schema.table(name)
        for other in table.columns:
            if other is not column and other.values and wanted in {v.casefold() for v in other.values}:
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
        for value in compared[1]:
            if value.casefold() in held or (numeric and _NUMBER.fullmatch(value.strip())):
                continue
            found_in = _listed_holder(value, column, scope)
            yield _UnheldValue(
                node, position, compared[0], table, column, value, tuple(compared[1]), held, listed, found_in
            )


def _value_of_another_column(scope: StatementScope) -> list[str]:
    """A text value compared with a column that cannot hold it (:func:`_unheld_values`) that a listed
    column of another table holds: the message names that column and, where the compared column
    references its table, the join to it (or the key to compare)."""
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


def _value_held_by_no_column(scope: StatementScope, question: str) -> list[str]:
    """A text value compared with a column that cannot hold it (:func:`_unheld_values`) that no listed
    column holds either and the question does not name (a value the question names that no row has
    makes no such row the answer): only for ``=`` and an ``IN`` none of whose values the column holds,
    which can then match no row."""
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
        if matches_nothing and not mentions(question, unheld.value):
            found.append(
                _value_of_no_column(unheld.value, node, unheld.compared, unheld.table, unheld.column, unheld.listed)
            )
    return found


def _columns_never_equal(scope: StatementScope) -> list[str]:
    """``a = b`` between two text columns all of whose values are known and that have none in common
    (compared without regard to case, as the server compares): the condition holds for no row, as
    when a name is compared with a code. When one of them references the other's table, the join
    that reaches the comparable column is named."""
    found = []
    for node in scope.tree.find_all(exp.EQ):
        left, right = node.left, node.right
        if not (isinstance(left, exp.Column) and isinstance(right, exp.Column)):
            continue
        placed_a, placed_b = scope.place(left), scope.place(right)
        if placed_a is None or placed_b is None:
            continue
        (table_a, column_a), (table_b, column_b) = placed_a, placed_b
        values_a, values_b = column_a.values or [], column_b.values or []
        if column_a.kind != "text" or column_b.kind != "text" or not values_a or not values_b:
            continue
        if {v.casefold() for v in values_a} & {v.casefold() for v in values_b}:
            continue
        said = (
            f"the condition {node.sql(dialect='mysql')} holds for no row: {table_a.name}.{column_a.name} "
            f"(values such as '{values_a[0]}') and {table_b.name}.{column_b.name} (values such as "
            f"'{values_b[0]}') have no value in common; compare columns that hold the same kind of value"
        )
        for (table, column, written), (other_table, other) in (
            ((table_b, column_b, right), (table_a, column_a)),
            ((table_a, column_a, left), (table_b, column_b)),
        ):
            if column.references and column.references[0].lower() == other_table.name.lower():
                said += (
                    f": JOIN {other_table.name} under another name ON its {column.references[1]} = "
                    f"{written.table or table.name}.{column.name} and compare its {other.name}"
                )
                break
        found.append(said)
    return found


def _history_without_current_row(question: str, scope: StatementScope) -> str:
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
    it returns): the columns they tie together and the constants they set them to."""

    def __init__(self, select: exp.Select) -> None:
        where = select.args.get("where")
        conditions = conjuncts(where.this if where is not None else None)
        for join in select.args.get("joins") or []:
            if inner_join(join):  # its ON holds for every row
                conditions += conjuncts(join.args.get("on"))
        self.equal: dict[ColumnKey, set[ColumnKey]] = {}  # a column -> the columns an equality pairs it with
        self.constant: dict[ColumnKey, str] = {}  # a column -> the literal an equality sets it to
        self.written: dict[ColumnKey, str] = {}  # a column -> as the statement writes it
        for condition in conditions:
            left, right = (condition.left, condition.right) if isinstance(condition, exp.EQ) else (None, None)
            for side in (left, right):
                if isinstance(side, exp.Column):
                    self.written[self.key(side)] = side.sql(dialect="mysql")
            if isinstance(left, exp.Column) and isinstance(right, exp.Column):
                self.equal.setdefault(self.key(left), set()).add(self.key(right))
                self.equal.setdefault(self.key(right), set()).add(self.key(left))
            for column, literal in ((left, right), (right, left)):
                if isinstance(column, exp.Column) and isinstance(literal, exp.Literal):
                    self.constant[self.key(column)] = literal.sql(dialect="mysql")

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

    def fixed(self, column: exp.Column) -> Optional[tuple[str, set[ColumnKey]]]:
        """The constant ``column`` equals in every row and the columns that tie it there (``column``
        included), when it is tied to one through at least one other column; None otherwise (not fixed,
        or fixed by its own condition alone: ``SELECT id FROM t WHERE id = 5`` tests that the row exists)."""
        reached = self.tied(self.key(column))
        value = next((self.constant[c] for c in sorted(reached) if c in self.constant), None)
        return None if value is None or len(reached) < 2 else (value, reached)

    def chain(self, column: exp.Column, reached: set[ColumnKey], value: str) -> str:
        """How the statement fixes ``column``: ``s2.SupervisorID = s1.StaffID = 108``."""
        shown = column.sql(dialect="mysql")
        return " = ".join([shown, *(self.written[c] for c in sorted(reached - {self.key(column)})), value])


def _counted_distinct(projection: exp.Expr) -> Optional[exp.Column]:
    """The column of ``COUNT(DISTINCT column)``; None for any other expression."""
    if isinstance(projection, exp.Alias):
        projection = projection.this
    if not isinstance(projection, exp.Count) or not isinstance(projection.this, exp.Distinct):
        return None
    counted = projection.this.expressions
    return counted[0] if len(counted) == 1 and isinstance(counted[0], exp.Column) else None


def _answer_fixed_by_its_conditions(tree: exp.Expr) -> str:
    if not isinstance(tree, exp.Select) or not tree.expressions or tree.args.get("group"):
        return ""
    equalities = Equalities(tree)
    for projection in tree.expressions:
        counted = _counted_distinct(projection)
        fixed = equalities.fixed(counted) if counted is not None else None
        if counted is not None and fixed is not None:
            value, reached = fixed
            rows_counted: exp.Expr = exp.Count(this=exp.Star())
            if isinstance(projection, exp.Alias):
                rows_counted = exp.alias_(rows_counted, projection.alias)
            counting = tree.copy()
            counting.expressions[tree.expressions.index(projection)].replace(rows_counted)
            return _suggesting(
                f"{projection.sql(dialect='mysql')} counts the different values of {counted.sql(dialect='mysql')}, "
                f"which the statement fixes itself ({equalities.chain(counted, reached, value)}): it is 1 "
                "whenever a row matches, whatever the data; to count the rows that match",
                counting,
            )
    first: Optional[tuple[exp.Column, str, set[ColumnKey]]] = None  # a selected column, its value, its equals
    for projection in tree.expressions:
        if not isinstance(projection, exp.Column):
            return ""
        fixed = equalities.fixed(projection)
        if fixed is None:
            return ""
        first = first or (projection, *fixed)
    if first is None:
        return ""
    projection, value, reached = first  # every selected column is fixed; the message speaks of the first
    shown = projection.sql(dialect="mysql")
    said = (
        f"every row it returns has {shown} = {value}, a value the statement fixes itself "
        f"({equalities.chain(projection, reached, value)}): it answers with the question's own value"
    )
    fixing = next(c for c in sorted(reached) if c in equalities.constant and equalities.constant[c] == value)
    qualifier, fixed_name = fixing[0], equalities.written[fixing].split(".")[-1]
    picked = table_named(tree, qualifier) if qualifier else None
    if not picked:
        return said
    said += f"; the row the question means is the {picked} row whose {fixed_name} is {value}: select what the question asks from that row alone"
    if picked.lower() != (table_named(tree, projection.table) or "").lower():
        return said + f" (SELECT ... FROM {picked} WHERE {fixed_name} = {value})"
    alone = exp.select(exp.column(projection.name)).from_(picked).where(f"{fixed_name} = {value}", dialect="mysql")
    return Defect(f"{said} ({alone.sql(dialect='mysql')})", alone)


# Periods of time a question may ask a figure for each of ("each month of 2025"): general English.


def _one_figure_where_each_is_asked(question: str, scope: StatementScope) -> str:
    """The question asks something of each item of a table or of a column's values ("each customer",
    "each country", "each month": :func:`asked_for_each` over the schema's table and column names and
    :data:`PERIODS`), and the statement folds every row into one figure: an aggregate in its select
    list, and no GROUP BY or window anywhere in it. A ratio of aggregates (``COUNT(*) /
    COUNT(DISTINCT customer_id)``, one figure per customer already) does not count."""
    tree = scope.tree
    if not isinstance(tree, exp.Select) or tree.find(exp.Group) or tree.find(exp.Window):
        return ""
    aggregates = [a for p in tree.expressions for a in p.find_all(exp.AggFunc) if _own(a, tree)]
    if not aggregates:
        return ""
    ratios = (d for p in tree.expressions for d in p.find_all(exp.Div))
    if any(d.left.find(exp.AggFunc) and d.right.find(exp.AggFunc) for d in ratios):
        return ""
    read = list(dict.fromkeys(scope.used))
    for name in read + [t for t in scope.tables.values() if t not in read]:  # the statement's tables first
        table = scope.schema.table(name)
        phrase = asked_for_each(question, table_nouns(name))
        meant = f"the rows of {name} (their key, and a column that names them)"
        for column in table.columns if not phrase else ():
            phrase = asked_for_each(question, {" ".join(name_words(column.name))})
            if phrase:
                meant = f"{name}.{column.name}"
                break
        if phrase:
            break
    else:
        phrase = asked_for_each(question, PERIODS)
        meant = "the period of the date column asked (YEAR(...), MONTH(...), ...)"
    if phrase:
        return (
            f'the question asks for "{phrase}", but {aggregates[0].sql(dialect="mysql")} without GROUP BY '
            f"gives one figure for all rows together; GROUP BY {meant} and select it beside the figure"
        )
    return ""


def _groups_merged_by_a_shared_name(scope: StatementScope) -> Optional[Defect]:
    tree = scope.tree
    if not isinstance(tree, exp.Select) or tree.args.get("group") is None or not tree.args.get("joins"):
        return None  # one table grouped by its own name counts the rows that share it: maybe what is asked
    group = tree.args["group"]
    grouped = [g for g in group.expressions if isinstance(g, exp.Column)]
    equalities = Equalities(tree)
    grouped_keys = {Equalities.key(g) for g in grouped}
    for column in grouped:
        placed = scope.place(column)
        if placed is None or placed[1].shared is None:
            continue
        table, name = placed
        shared_key: str = placed[1].shared
        key = exp.column(shared_key, table=column.table) if column.table else exp.column(shared_key)
        if equalities.tied(Equalities.key(key)) & grouped_keys:
            continue  # the key (or a column the joins make equal to it) is grouped too
        keyed = tree.copy()
        keyed.args["group"].set("expressions", [key, *keyed.args["group"].expressions])
        return _suggesting(
            f"it groups {table.name} by {name.name}, which several {table.name} rows share, so the rows of "
            f"different {table.name} with the same {name.name} are merged into one group; group by "
            f"the key {table.name}.{shared_key} too",
            keyed,
        )
    return None


def _hanging_joins(scope: StatementScope, joins: list[exp.Join], start: int) -> list[exp.Join]:
    """The inner joins after ``joins[start]`` that hang from it, directly or through one another: each
    joins a table on ``own.c = hung.c``, ``hung`` the alias of ``joins[start]`` or of an earlier
    hanging join, and no column of their tables is read outside these joins' ON conditions (their rows
    are used by nothing but the test that they exist). When a table of the chain is read elsewhere,
    none hangs (its rows are used, and so are those it hangs from)."""
    hung = {joins[start].this.alias_or_name.lower()}
    hanging: list[exp.Join] = []
    for join in joins[start + 1 :]:
        joined, on = join.this, join.args.get("on")
        if not isinstance(joined, exp.Table) or not isinstance(on, exp.EQ) or not inner_join(join):
            continue
        qualifiers = {side.table.lower() for side in (on.left, on.right) if isinstance(side, exp.Column)}
        mine = joined.alias_or_name.lower()
        if mine not in hung and mine in qualifiers and len(qualifiers) == 2 and qualifiers - {mine} <= hung:
            hung.add(mine)
            hanging.append(join)
    chain = (joins[start], *hanging)
    aliases = {join.this.alias_or_name.lower() for join in hanging}
    tables = {join.this.name.lower() for join in hanging}
    for column in scope.tree.find_all(exp.Column):
        if column.find_ancestor(exp.Join) in chain:
            continue
        placed = None if column.table else scope.place(column)
        if column.table.lower() in aliases or (placed is not None and placed[0].name.lower() in tables):
            return []
    return hanging


def _join_that_repeats_rows(scope: StatementScope) -> str:
    tree = scope.tree
    if not isinstance(tree, exp.Select) or tree.args.get("group") or tree.args.get("distinct"):
        return ""
    if any(_own(a, tree) for p in tree.expressions for a in p.find_all(exp.AggFunc)):
        return ""  # an aggregate counts or totals the joined rows: another check's matter
    if any(not c.table and scope.place(c) is None for c in tree.find_all(exp.Column)):
        return ""  # a column kb cannot place might be the joined table's
    joins = list(tree.args.get("joins") or [])
    for index, join in enumerate(joins):
        joined, on = join.this, join.args.get("on")
        if not isinstance(joined, exp.Table) or on is None or not inner_join(join):
            continue
        pair = _many_to_one(on, scope)  # the joined table's rows each reference the one row on the other side
        mine = joined.alias_or_name.lower()
        if pair is None or any(not side.table for side, _, _ in pair):
            continue
        (own, many, reference), (other, one, key) = pair
        if own.table.lower() != mine or other.table.lower() == mine or not (key.primary or key.unique):
            continue
        hanging = _hanging_joins(scope, joins, index)  # joins to the joined table's rows that only test them
        # In a self-join both aliases place in the same table: the joined alias's own columns are those it
        # qualifies (an unqualified one is counted as its own: the server would call it ambiguous).
        self_join = many.name == one.name
        used = [
            c
            for c in tree.find_all(exp.Column)
            if c.find_ancestor(exp.Join) not in (join, *hanging)
            and (c.table.lower() == mine or (not c.table and (self_join or (scope.place(c) or (one,))[0] is many)))
        ]
        if used:
            continue  # the joined table's columns are selected or filtered on
        constant = Equalities(tree).constant
        identifying = {key.name.lower()} | {c.name.lower() for c in one.columns if c.unique}
        if not any((qualifier, name) in constant for qualifier in ("", other.table.lower()) for name in identifying):
            continue  # no one row picked, a list: whether repeating its rows is wrong depends on what is asked
        exact = tree.copy()
        for position in sorted((joins.index(j) for j in (join, *hanging)), reverse=True):
            exact.args["joins"][position].pop()
        tested = exp.select("1").from_(joined.copy())
        for below in hanging:
            tested = tested.join(below.copy())
        exact = exact.where(exp.Exists(this=tested.where(on.copy())))
        chained = f" and those of the joins of {', '.join(b.this.name for b in hanging)} to it" if hanging else ""
        return _suggesting(
            f"the JOIN of {many.name} is used by nothing but its ON condition{chained}, and "
            f"{many.name}.{reference.name} references {one.name}, so the one {one.name} row the WHERE picks "
            f"comes back once for every {many.name} row that references it; test for those rows instead of "
            "joining them",
            exact,
        )
    return ""


def _id_for_a_named_value(question: str, scope: StatementScope) -> list[str]:
    found = []
    asked = set(words(question))
    read = {c.name.lower() for c in scope.tree.find_all(exp.Column)}
    read_tables = {t.lower() for t in scope.used}
    kinds = (exp.EQ, exp.In)
    for position, node in enumerate(scope.tree.find_all(*kinds)):
        compared = _compared_literals(node, text=False)
        placed = scope.place(compared[0]) if compared is not None else None
        if compared is None or placed is None or placed[1].references is None:
            continue
        if any(number in asked for number in compared[1]):
            continue  # the question gives the id itself
        table, column = placed
        referenced_table, referenced_key = placed[1].references
        referenced = scope.tables.get(referenced_table.lower())
        if referenced is None:
            continue
        lookup = scope.schema.table(referenced)
        for holder in lookup.columns:
            if holder.primary or holder.references or not holder.values or holder.name.lower() in read:
                continue
            named = [value for value in holder.values if mentions(question, value)]
            if not named:
                continue
            label_column, labels = scope.schema.labels(lookup.name)
            names = {v.casefold() for v in named}
            if label_column == holder.name and all(labels.get(n, "").casefold() in names for n in compared[1]):
                continue  # the ids of the very values the question names
            written = compared[0].table or table.name
            join = f"{lookup.name}.{referenced_key} = {written}.{column.name}"
            said = (
                f"the question names '{named[0]}', a value of {lookup.name}.{holder.name}, but the statement "
                f"compares {written}.{column.name} with the id {', '.join(compared[1])}"
            )
            key = _label_key(scope.schema, lookup, holder, named[0])
            single = len(compared[1]) == 1
            if key is not None and _NUMBER.fullmatch(key):  # the lookup table is small: the named value's id
                which = ", ".join(f"'{labels.get(n, '?')}'" for n in compared[1])
                said += f", which is {which}; '{named[0]}' is {key}"
                if single:
                    by_key = exp.EQ(this=compared[0].copy(), expression=exp.Literal.number(key))
                    said = _suggesting(said, _rewritten(scope.tree, kinds, position, by_key))
            else:
                said += (
                    f", which the question does not give: JOIN {lookup.name} ON {join} and compare "
                    f"{lookup.name}.{holder.name} = '{named[0]}'"
                )
                if single and lookup.name.lower() not in read_tables:
                    by_name = exp.EQ(
                        this=exp.column(holder.name, table=lookup.name), expression=exp.Literal.string(named[0])
                    )
                    by_join = _rewritten(scope.tree, kinds, position, by_name)
                    if isinstance(by_join, exp.Select):
                        said = _suggesting(said, by_join.join(lookup.name, on=join))
            found.append(said)
            break
    return found


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
    ("engineering or marketing": ENG, and MKT, no employee's)."""
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


def _state_for_an_event(question: str, scope: StatementScope) -> list[str]:
    found = []
    for node in scope.tree.find_all(exp.EQ, exp.In):
        compared = _compared_literals(node, text=True)
        placed = scope.place(compared[0]) if compared is not None else None
        if compared is None or placed is None or placed[1].values is None:
            continue
        table, status = placed
        events = table.events()
        for value in compared[1]:
            word = next((w for w in events if w in {value.casefold() + end for end in ("", "ed", "d")}), None)
            asked = list(words(question))
            if word is None or word not in asked:
                continue
            asked.remove(word)
            if mentions(" ".join(asked), value):
                continue  # the question names the state besides the event ("opened in 2025 are open")
            event = events[word].name
            said = (
                f"{node.sql(dialect='mysql')} keeps only the {table.name} rows whose {status.name} is still "
                f"'{value}', but every {table.name} row has its {event} (never NULL): every one was {word}, "
                f"whatever its {status.name} is now; unless the question asks for the rows that are '{value}' "
                f"now, leave that condition out ({event} says when it happened)"
            )
            parent = node.parent
            if isinstance(parent, exp.And) and isinstance(node, exp.EQ):  # the statement without the condition
                kept = parent.right if parent.left is node else parent.left
                position = list(scope.tree.find_all(exp.And)).index(parent)
                said = _suggesting(said, _rewritten(scope.tree, (exp.And,), position, kept.copy()))
            found.append(said)
            break
    return found


# Units of time a number column's name may end with, in seconds: general English, no labelled question's.
# Today's date or time as the server reads it: the nodes sqlglot parses them into, and the names of those it
# parses as plain calls (NOW() and SYSDATE() here; the others too, for sqlglot versions that parse them so).
_PRESENT = (
    exp.CurrentDate,
    exp.CurrentDatetime,
    exp.CurrentTime,
    exp.CurrentTimestamp,
    exp.Localtime,
    exp.Localtimestamp,
    exp.UtcDate,
    exp.UtcTime,
    exp.UtcTimestamp,
)
_PRESENT_CALLS = {"NOW", "SYSDATE", "CURTIME", "UTC_TIMESTAMP", "UTC_DATE", "UTC_TIME", "LOCALTIME", "LOCALTIMESTAMP"}


def _days_where_a_shorter_unit_is_asked(question: str, scope: StatementScope) -> Optional[Defect]:
    """``DATEDIFF(a, b)`` (whole days) over a column that holds times of day, where the question asks
    for minutes, hours or seconds: the statement with ``TIMESTAMPDIFF(<unit>, b, a)`` instead."""
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


def _day_numbers(node: exp.Expr) -> Optional[tuple[str, dict[int, str]]]:
    """(the function as written, {its number: the day it stands for}) when ``node`` is ``DAYOFWEEK(x)``
    (1 = Sunday ... 7 = Saturday) or ``WEEKDAY(x)`` (0 = Monday ... 6 = Sunday); None otherwise."""
    if isinstance(node, exp.DayOfWeek):
        return "DAYOFWEEK", {number + 1: day for number, day in enumerate(WEEKDAYS)}
    if isinstance(node, exp.Anonymous) and str(node.this).upper() == "WEEKDAY":
        return "WEEKDAY", {(number - 1) % 7: day for number, day in enumerate(WEEKDAYS)}
    return None


def _another_day_of_the_week(question: str, tree: exp.Expr) -> Optional[Defect]:
    """``DAYOFWEEK(x) = n`` or ``WEEKDAY(x) = n`` (or ``IN`` a list of numbers) where the question names
    days of the week and none of the numbers stands for one of them (``DAYOFWEEK(d) = 6`` is Friday
    for "on a Saturday"): the statement with the named days' numbers."""
    named = list(dict.fromkeys(m.lower() for m in WEEKDAY_NAMES.findall(question)))
    if not named:
        return None
    kinds = (exp.EQ, exp.In)
    for position, node in enumerate(tree.find_all(*kinds)):
        function = node.this
        literals = node.expressions if isinstance(node, exp.In) else [node.expression]
        numbering = _day_numbers(function)
        if numbering is None or not all(isinstance(x, exp.Literal) and x.is_int for x in literals):
            continue
        name, days = numbering
        compared = [int(x.this) for x in literals]
        if any(days.get(number) in named for number in compared):
            continue
        wanted = [exp.Literal.number(number) for day in named for number, d in days.items() if d == day]
        right = (
            exp.EQ(this=function.copy(), expression=wanted[0])
            if len(wanted) == 1
            else exp.In(this=function.copy(), expressions=wanted)
        )
        picked = ", ".join(f"{days.get(n, 'no day').capitalize()}" for n in compared)
        order = "1 is Sunday, 7 is Saturday" if name == "DAYOFWEEK" else "0 is Monday, 6 is Sunday"
        return _suggesting(
            f"{node.sql(dialect='mysql')} picks {picked} ({name}: {order}), but the question asks about "
            f"{' and '.join(day.capitalize() for day in named)}, which is {right.sql(dialect='mysql')}",
            _rewritten(tree, kinds, position, right),
        )
    return None


_YEAR = re.compile(r"\b(?:19|20)\d\d\b")


def _date_the_question_does_not_give(question: str, scope: StatementScope) -> Optional[Defect]:
    """A condition of the outer ``WHERE`` that compares a date or time column with a literal holding a
    year (``d LIKE '%2025-06-%'``, ``d >= '2025-01-01'``, ``YEAR(d) = 2025``) where the question has no
    number, no month, season or period name and places nothing relative to today: the model
    invented the date ("How many flights departed on a Saturday?"). The statement without that
    condition."""
    if GIVES_A_DATE.search(question) or speaks_of_a_time_relative_to_now(question):
        return None
    select = scope.tree
    where = select.args.get("where") if isinstance(select, exp.Select) else None
    parts = conjuncts(where.this if where is not None else None)
    for part in parts:
        dated = any(
            (placed := scope.place(column)) is not None and placed[1].kind == "time"
            for column in part.find_all(exp.Column)
        )
        year = next((lit for lit in part.find_all(exp.Literal) if _YEAR.search(str(lit.this))), None)
        if not dated or year is None or part.find(exp.Select):
            continue
        kept = [other.copy() for other in parts if other is not part]
        without = select.copy()
        without.set("where", exp.Where(this=exp.and_(*kept)) if kept else None)
        return _suggesting(
            f"{part.sql(dialect='mysql')} compares a date with {year.sql(dialect='mysql')}, which the question "
            "does not give (it names no year, month or period): leave the condition out",
            without,
        )
    return None


def _present_date_unasked(question: str, tree: exp.Expr) -> str:
    present = next(
        (
            node
            for node in tree.walk()
            if isinstance(node, _PRESENT)
            or (isinstance(node, exp.Anonymous) and str(node.this).upper() in _PRESENT_CALLS)
        ),
        None,
    )
    if present is None or speaks_of_a_time_relative_to_now(question):
        return ""
    return (
        f"it reads today's date ({present.sql(dialect='mysql')}), and the question asks about no time counted from "
        "today: the dates it speaks of are the rows' own (compare a row's date columns with each other, "
        "later_col > earlier_col or DATEDIFF(later_col, earlier_col)) or dates the question gives"
    )


def _amount_in_another_unit(question: str, scope: StatementScope) -> str:
    amounts = amounts_of_time(question)
    if not amounts:
        return ""
    kinds = (exp.GT, exp.GTE, exp.LT, exp.LTE, exp.EQ, exp.NEQ, exp.Between)
    for position, node in enumerate(scope.tree.find_all(*kinds)):
        if isinstance(node, exp.Between):
            bounds = [node.args.get("low"), node.args.get("high")]
            column = node.this
            numbers = [b.this for b in bounds if isinstance(b, exp.Literal) and not b.is_string]
            if len(numbers) < 2:
                continue
        else:
            compared = _compared_literals(node, text=False)
            if compared is None:
                continue
            column, numbers = compared
        placed = scope.place(column) if isinstance(column, exp.Column) else None
        unit_word = (name_words(placed[1].name) or [""])[-1] if placed is not None else ""
        if placed is None or placed[1].kind != "number" or unit_word not in UNIT_SECONDS:
            continue
        expected = {said: round(seconds / UNIT_SECONDS[unit_word], 6) for said, seconds in amounts}
        wrong = [n for n in numbers if float(n) not in expected.values()]
        if not wrong:
            continue
        shown = {said: exp.Literal.number(int(v) if v == int(v) else v) for said, v in expected.items()}
        said = (
            f"{placed[0].name}.{placed[1].name} holds an amount in {unit_word} (its name says so); the question's "
            + " and ".join(f"{amount} is {n.sql(dialect='mysql')}" for amount, n in shown.items())
            + f" of them, but the statement compares it with {', '.join(wrong)}"
        )
        if len(shown) == 1 and not isinstance(node, exp.Between):  # the statement with the converted amount
            fixed = node.copy()
            fixed.set("expression" if node.this is column else "this", next(iter(shown.values())))
            return _suggesting(said, _rewritten(scope.tree, kinds, position, fixed))
        return said
    return ""


def _per_select(check: Callable[[exp.Select], Found]) -> Callable[[Inspected], Iterable[Found]]:
    return lambda i: [check(select) for select in i.tree.find_all(exp.Select)]


def _self_comparisons(tree: exp.Expr) -> list[str]:
    return [
        f"the condition {comparison.sql(dialect='mysql')} compares a column with itself, so it holds "
        "for every row; compare it with the column of the other table (or the value) meant"
        for comparison in tree.find_all(*_COMPARISONS)
        if isinstance(comparison.left, exp.Column)
        and isinstance(comparison.right, exp.Column)
        and comparison.left == comparison.right
    ]


def _scoped(i: Inspected) -> StatementScope:
    assert i.scope is not None  # Check.run calls a check that needs the schema only with one
    return i.scope


# In the order their messages are listed (the model is shown the first defect found): the statement's
# own properties first, a guessed code for a named value before the value check (it is told with its
# rows), the checks that read the question last.
CHECKS: tuple[Check, ...] = (
    Check(
        "collapsing aggregate",
        "statement",
        False,
        "an aggregate beside a plain column in a SELECT without GROUP BY",
        _per_select(_collapsing_aggregate),
        needs_schema=False,
    ),
    Check(
        "count of single rows",
        "statement",
        False,
        "COUNT over one table grouped by a column each of whose values one row holds",
        lambda i: [_count_of_single_rows(s, _scoped(i).schema) for s in i.tree.find_all(exp.Select)],
    ),
    Check(
        "group key its where fixes",
        "statement",
        True,
        "a GROUP BY key of two or more that the WHERE fixes to one value",
        _per_select(_group_key_its_where_fixes),
        needs_schema=False,
    ),
    Check(
        "column compared with itself",
        "statement",
        False,
        "a comparison whose two sides are the same column reference",
        lambda i: _self_comparisons(i.tree),
        needs_schema=False,
    ),
    Check(
        "column compared with itself moved",
        "statement",
        False,
        "a column compared with itself plus or minus a constant or an interval",
        lambda i: [_shifted_self_comparison(c, i.scope) for c in i.tree.find_all(*_COMPARISONS)],
        needs_schema=False,
    ),
    Check(
        "join ignoring its table",
        "statement",
        False,
        "a JOIN whose qualified condition names none of the joined table's columns",
        lambda i: [_condition_ignoring_its_table(j) for j in i.tree.find_all(exp.Join)],
        needs_schema=False,
    ),
    Check(
        "not in its own rows",
        "statement",
        False,
        "c NOT IN (SELECT c FROM t) over t alone, the subquery without a condition",
        lambda i: _not_in_its_own_rows(i.tree, i.scope),
        needs_schema=False,
    ),
    Check(
        "answer fixed by its conditions",
        "statement",
        True,
        "every selected column tied to a value by the WHERE's equalities",
        lambda i: [_answer_fixed_by_its_conditions(i.tree)],
        needs_schema=False,
    ),
    Check(
        "unrelated keys",
        "statement",
        False,
        "an equality of a foreign key with another table's primary key, or of two unrelated primary keys",
        lambda i: _unrelated_keys(_scoped(i)),
    ),
    Check(
        "bare date on times",
        "statement",
        False,
        "a date without a time as the end of a range on a DATETIME column with times of day",
        lambda i: _bare_dates_on_times(_scoped(i)),
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
        "value of no column",
        "question",
        False,
        "a text compared with a column whose known values lack it, no column holds it and the question "
        "does not name it",
        lambda i: _value_held_by_no_column(_scoped(i), i.question),
    ),
    Check(
        "columns never equal",
        "statement",
        False,
        "an equality of two text columns with all values known and none in common",
        lambda i: _columns_never_equal(_scoped(i)),
    ),
    Check(
        "join that repeats rows",
        "statement",
        True,
        "an inner JOIN of a table none of whose columns the statement uses, along a key that repeats rows",
        lambda i: [_join_that_repeats_rows(_scoped(i))],
    ),
    Check(
        "groups merged by a shared name",
        "statement",
        True,
        "a GROUP BY a name column that rows of different keys share",
        lambda i: [_groups_merged_by_a_shared_name(_scoped(i))],
    ),
    Check(
        "group of nulls",
        "statement",
        False,
        "a GROUP BY that returned a row with NULL in its group key",
        lambda i: [_null_group(i.tree, i.rows)],
        needs_schema=False,
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
        "id for the column asked",
        "question",
        False,
        "an id selected where the question asks for a column of its row",
        lambda i: [_id_for_the_column_asked(i.question, _scoped(i))],
    ),
    Check(
        "rows of groups counted",
        "question",
        False,
        "COUNT(*) of rows where the question counts what they belong to",
        lambda i: [_rows_of_groups_counted(i.question, _scoped(i))],
    ),
    Check(
        "count of another table",
        "question",
        False,
        "a COUNT of another table than the one the question counts",
        lambda i: [_count_of_another_table(i.question, _scoped(i))],
    ),
    Check(
        "count repeated by a join",
        "question",
        True,
        "COUNT(*) over a join that repeats the rows of the table the question counts",
        lambda i: [_count_repeated_by_a_join(i.question, _scoped(i))],
    ),
    Check(
        "one figure where each is asked",
        "question",
        False,
        "an aggregate without GROUP BY where the question asks for each item or period",
        lambda i: [_one_figure_where_each_is_asked(i.question, _scoped(i))],
    ),
    Check(
        "referencing rows counted",
        "question",
        True,
        "rows of a referencing table counted where the question counts the table they reference",
        lambda i: [_referencing_rows_counted(i.question, _scoped(i))],
    ),
    Check(
        "history without current row",
        "question",
        False,
        "the present asked of a table of periods whose current row has no end date",
        lambda i: [_history_without_current_row(i.question, _scoped(i))],
    ),
    Check(
        "id for a named value",
        "question",
        True,
        "an id compared where the question names the row's value",
        lambda i: _id_for_a_named_value(i.question, _scoped(i)),
    ),
    Check(
        "state for an event",
        "question",
        True,
        "a state column compared with its current value where the question speaks of an event every row had",
        lambda i: _state_for_an_event(i.question, _scoped(i)),
    ),
    Check(
        "amount in another unit",
        "question",
        True,
        "an amount of time compared with a column that holds another unit",
        lambda i: [_amount_in_another_unit(i.question, _scoped(i))],
    ),
    Check(
        "days where a shorter unit is asked",
        "question",
        True,
        "a difference of times in days where the question asks minutes, hours or seconds",
        lambda i: [_days_where_a_shorter_unit_is_asked(i.question, _scoped(i))],
    ),
    Check(
        "present date unasked",
        "question",
        False,
        "the present date read where the question counts no time from today",
        lambda i: [_present_date_unasked(i.question, i.tree)],
        needs_schema=False,
    ),
    Check(
        "another day of the week",
        "question",
        True,
        "DAYOFWEEK or WEEKDAY compared with numbers none of which is a day the question names",
        lambda i: [_another_day_of_the_week(i.question, i.tree)],
        needs_schema=False,
    ),
    Check(
        "date the question does not give",
        "question",
        True,
        "a date or time column compared with a year the question does not give",
        lambda i: [_date_the_question_does_not_give(i.question, _scoped(i))],
    ),
)
CHECK_NAMES = frozenset(check.name for check in CHECKS)


def defects(
    sql: str,
    schema: Optional[SchemaDescriber] = None,
    rows: Sequence[dict[str, Any]] = (),
    question: str = "",
    skip: Collection[str] = (),
) -> list[Defect]:
    """What is wrong with ``sql`` although it runs: what each of :data:`CHECKS` not named in ``skip``
    finds, in that order (empty: nothing found, or it does not parse). Without ``schema`` only the
    checks that need none run; without ``question`` no check of kind ``question`` runs; the ``rows``
    the statement returned tell a group of NULLs and counts without their groups."""
    try:
        tree = parse_statement(sql)
    except Exception:  # the guard and the server report a statement that does not parse
        return []
    inspected = Inspected(tree, StatementScope(tree, schema) if schema is not None else None, rows, question)
    return [found for check in CHECKS if check.name not in skip for found in check.run(inspected)]
