"""Defects of a statement that the server runs without complaint, decided from the statement alone.

MariaDB (without ``ONLY_FULL_GROUP_BY``) runs statements whose result no question could have asked
for; a small model writes them often. Each defect here is a property of the SQL text, never of the
question's words or of one schema:

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

Neither is rewritten: :class:`kb.engines.sql.SQLEngine` gives the statement back to the model with
the defect as its error, and answers from the statement as written when no correction runs clean.
"""

from __future__ import annotations

from sqlglot import exp

from kb.engines.sql_guard import parse_statement

_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ)


def defects(sql: str) -> list[str]:
    """What is wrong with ``sql`` although it runs (empty: nothing found, or it does not parse)."""
    try:
        tree = parse_statement(sql)
    except Exception:  # the guard and the server report a statement that does not parse
        return []
    found = []
    for select in tree.find_all(exp.Select):
        collapsed = _collapsing_aggregate(select)
        if collapsed:
            found.append(collapsed)
    for comparison in tree.find_all(*_COMPARISONS):
        left, right = comparison.left, comparison.right
        if isinstance(left, exp.Column) and isinstance(right, exp.Column) and left == right:
            found.append(
                f"the condition {comparison.sql(dialect='mysql')} compares a column with itself, so it holds "
                "for every row; compare it with the column of the other table (or the value) meant"
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
