"""Rows that tie with the last one a ``LIMIT`` kept: a "which X has the most" answer names them all.

"Which city has the most customers?" becomes ``... ORDER BY COUNT(*) DESC LIMIT 1``; when three
cities have 41 customers each, the server returns whichever it meets first, and the answer names
one city as if it were the only one. SQL has no portable ``WITH TIES`` (MariaDB has none), so kb
asks again with the ORDER BY values as extra columns and a little more room, and keeps the rows
whose values equal the last kept row's. Tied rows that would read the same ("how many customers
live in the biggest city": 41, 41, 41) add nothing and are left out. When more rows tie than the
probe reads past the limit and some of them read differently from the kept ones
(:func:`ties_throughout`), they are a list, not a tie: the rows stand as the statement gave them,
and the statement was in doubt before it could answer (the ``cut ties`` check of
:mod:`kb.engines.sql.checks`).

The answer to tied rows is kb's own sentence (:meth:`Tie.sentence`), not the LLM's: shown three
tied cities and told they tie, the offline 1.5B model still names the first one alone (tried with
the tie in the result's header, the ORDER BY values shown, the values merged into one row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from kb.engines.sql.guard import parse_statement

TIED_ROWS_PAST_LIMIT = 20  # tied rows looked for past the limit; more than that is a list, not a tie
_KEY = "kb_tie_key_"


def tie_probe(sql: str) -> Optional[tuple[str, int, list[str]]]:
    """The statement with its ORDER BY values selected as extra columns and ``TIED_ROWS_PAST_LIMIT`` more rows,
    its limit and the ORDER BY expressions' text; None when it has no ORDER BY with a LIMIT (or an OFFSET, or is not one SELECT)."""
    from sqlglot import exp

    try:
        tree = parse_statement(sql)
    except Exception:
        return None
    limit, order = tree.args.get("limit"), tree.args.get("order")
    if not isinstance(tree, exp.Select) or limit is None or order is None or tree.args.get("offset"):
        return None
    count = limit.expression
    if not (isinstance(count, exp.Literal) and count.is_int) or int(count.this) < 1:
        return None
    aliases = {p.alias.lower(): p.this for p in tree.expressions if isinstance(p, exp.Alias)}
    labels = []
    for i, ordered in enumerate(order.expressions):
        key = ordered.this
        if isinstance(key, exp.Literal) and key.is_int:  # ORDER BY 2: the second column
            position = int(key.this) - 1
            if not 0 <= position < len(tree.expressions):
                return None
            key = tree.expressions[position]
        elif isinstance(key, exp.Column) and not key.table and key.name.lower() in aliases:
            key = aliases[key.name.lower()]  # an alias cannot be selected again; its expression can
        key = key.this if isinstance(key, exp.Alias) else key
        labels.append(key.sql(dialect="mysql"))
        tree.select(exp.alias_(key.copy(), f"{_KEY}{i}"), copy=False)
    limit.set("expression", exp.Literal.number(int(count.this) + TIED_ROWS_PAST_LIMIT))
    return tree.sql(dialect="mysql"), int(count.this), labels


@dataclass
class Tie:
    """Rows a LIMIT would have cut because they tie with its last row."""

    rows: list[dict[str, Any]]  # the rows up to the limit, then the tied ones past it
    tied: list[dict[str, Any]]  # the last kept row and those tying with it
    labels: list[str]  # the ORDER BY expressions
    values: tuple  # their value, the same for every tied row

    def sentence(self) -> str:
        """The answer: every row, and which of them tie on what."""

        def listed(rows: list[dict[str, Any]]) -> str:
            names = [" ".join(str(v) for v in row.values()) for row in rows]
            return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]

        on = ", ".join(f"{label} = {value}" for label, value in zip(self.labels, self.values))
        tied = f"{listed(self.tied)} are tied ({on} each)."
        return tied if len(self.tied) == len(self.rows) else f"{listed(self.rows)}; {tied}"


def ties_throughout(probe_rows: list[dict[str, Any]], limit: int) -> bool:
    """Whether every row the probe read past ``limit`` (``TIED_ROWS_PAST_LIMIT`` of them, as many as it
    asks for) ties with the last row kept and some of them read differently from every kept row: more
    rows than that share the ORDER BY values, so the order does not tell which of them the ``LIMIT``
    keeps (``GROUP BY id ORDER BY COUNT(*) DESC LIMIT 1`` where every count is 1). Such a statement is
    in doubt (the ``cut ties`` check, :mod:`kb.engines.sql.checks`). Tied rows that all read as a kept
    one does (``SELECT COUNT(*) ... GROUP BY student_id ORDER BY COUNT(*) DESC LIMIT 1``: the largest
    count, whichever student has it) give the same answer whichever the ``LIMIT`` keeps."""
    if limit < 1 or len(probe_rows) < limit + TIED_ROWS_PAST_LIMIT:
        return False
    last = _key(probe_rows[limit - 1])
    return all(_key(row) == last for row in probe_rows[limit:]) and bool(_new_ties(probe_rows, limit)[1])


def _key(row: dict[str, Any]) -> tuple:
    """A probe row's ORDER BY values."""
    return tuple(v for k, v in row.items() if k.startswith(_KEY))


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A probe row as the statement itself returns it: without the ORDER BY values the probe added."""
    return {k: v for k, v in row.items() if not k.startswith(_KEY)}


def _new_ties(probe_rows: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the rows up to ``limit``, the rows past it that tie with the last of them on the ORDER BY values
    and read differently from every one of them), both as the statement returns them (:func:`_shown`)."""
    last = _key(probe_rows[limit - 1])
    kept = [_shown(row) for row in probe_rows[:limit]]
    return kept, [_shown(row) for row in probe_rows[limit:] if _key(row) == last and _shown(row) not in kept]


def with_ties(
    rows: list[dict[str, Any]], probe_rows: list[dict[str, Any]], limit: int, labels: list[str]
) -> Optional[Tie]:
    """The tie when rows past ``limit`` tie with the last kept one (equal ORDER BY values) and read
    differently from every kept row; None otherwise. Its rows are the probe's (ORDER BY columns
    dropped), not ``rows``: tied rows come in no fixed order, and together with the tied ones past
    the limit they are the same set whichever of them a run met first."""
    if len(rows) < limit or len(probe_rows) <= limit or ties_throughout(probe_rows, limit):
        return None  # no tie, or so many that they are a list: the statement was in doubt (cut ties)
    kept, extra = _new_ties(probe_rows, limit)
    if not extra:
        return None
    last = _key(probe_rows[limit - 1])
    tied = [_shown(r) for r in probe_rows[:limit] if _key(r) == last] + extra
    return Tie(rows=kept + extra, tied=tied, labels=labels, values=last)
