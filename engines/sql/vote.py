"""Execution-guided selection: statements written for one question vote by the rows they give.

The greedy statement and the candidates written after it are grouped by their rows (as multisets of
values, numbers rounded: :func:`result_key`); a statement that gives a group's rows beside extra
columns joins that group (:func:`holds_in_fewer_columns`: the answer that selects only what was
asked). The largest group answers; of equals, the greedy statement's, then the one formed first
(:func:`standing`). Candidates are written one at a time, and no more once those still to come could
not change the group chosen (:func:`settled`).
"""

from __future__ import annotations

import decimal
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any, Optional

from kb.engines.sql.runner import Statement


def holds_in_fewer_columns(wide: Sequence[dict[str, Any]], narrow: Sequence[dict[str, Any]]) -> bool:
    """Whether ``wide`` gives ``narrow``'s rows in some of its columns, beside columns of its own: the
    same answer with more selected (``FirstName, LastName, TotalSpent`` for ``FirstName, LastName``).
    Tables of up to 8 columns are compared; a wider one is not looked into."""
    if not wide or len(wide) != len(narrow):
        return False
    wide_columns, narrow_width = list(wide[0]), len(narrow[0]) if narrow else 0
    if not 0 < narrow_width < len(wide_columns) <= 8:
        return False
    wanted = result_key(narrow)
    return any(
        result_key([{c: row[c] for c in chosen} for row in wide]) == wanted
        for chosen in combinations(wide_columns, narrow_width)
    )


def grouped(groups: list[list[Statement]], statement: Statement, narrower_wins: bool = False) -> list[Statement]:
    """``statement`` added to the group of ``groups`` whose rows are the same (a new group when none
    is): the group it joined. With ``narrower_wins``, a statement that gives a group's rows in some
    of its columns beside others (:func:`holds_in_fewer_columns`) joins that group: a vote for the
    answer that selects only what was asked."""
    key = result_key(statement.rows or [])
    same = next((g for g in groups if result_key(g[0].rows or []) == key), None)
    if same is None and narrower_wins:
        same = next((g for g in groups if holds_in_fewer_columns(statement.rows or [], g[0].rows or [])), None)
    if same is None:
        same = []
        groups.append(same)
    same.append(statement)
    return same


def standing(group: list[Statement], formed: int, greedy: Optional[Statement]) -> tuple[int, bool, int]:
    """A group's standing in execution-guided selection, the highest chosen: its size; of equals, the
    greedy statement's group (the one it formed: a group's first statement is never None, so with no
    greedy statement no group is its); then the one formed first (``formed``: its place among them)."""
    return len(group), bool(group) and group[0] is greedy, -formed


def winner(groups: list[list[Statement]], greedy: Optional[Statement]) -> int:
    """The place among ``groups`` of the group the vote chooses (:func:`standing`)."""
    return max(range(len(groups)), key=lambda formed: standing(groups[formed], formed, greedy))


def settled(groups: list[list[Statement]], greedy: Optional[Statement], left: int) -> bool:
    """Whether ``left`` more candidates cannot change the group the vote chooses: no other group,
    nor a new one, would stand higher if they all joined it. A candidate written then could change
    the count of votes, never the answer."""
    if not groups:
        return False
    chosen = winner(groups, greedy)
    held = standing(groups[chosen], chosen, greedy)
    for formed, challenger in enumerate([*groups, []]):
        size, is_greedy, first = standing(challenger, formed, greedy)
        if formed != chosen and (size + left, is_greedy, first) > held:
            return False
    return True


def result_key(rows: Sequence[dict[str, Any]]) -> Counter:
    """What two results must share to be the same answer: their rows as a multiset, each row's values
    in any column order, numbers to 2 decimals, a midnight datetime as its date (column names aside:
    ``COUNT(*)`` and ``n`` name the same figure)."""

    def value(v: Any) -> str:
        if isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool):
            return f"{float(v):.2f}"
        return re.sub(r"^(\d{4}-\d{2}-\d{2})[T ]00:00:00$", r"\1", str(v))

    return Counter(tuple(sorted(value(v) for v in row.values())) for row in rows)


@dataclass
class Votes:
    """How the candidate statements of a question agreed (execution-guided selection)."""

    written: int  # candidate statements the model wrote, the greedy one included
    ran: int  # those that passed the guard and ran
    agreeing: int  # those that gave the chosen rows
    greedy_chosen: bool  # the chosen rows are the greedy statement's
    rescue: bool = False  # samples written because no attempt ran clean (the greedy one is not among them)
    rewrite_answered: bool = False  # the chosen rows are those of kb's rewrite of a statement with a defect

    def sentence(self) -> str:
        """How the statements voted, as kb's answers say it (``kb ask``, ``kb sql``, an outvoted attempt)."""
        if not self.rescue:
            return f"{self.agreeing} of {self.ran} candidate statements gave these rows ({self.written} written)"
        rewrite = "kb's rewrite of a statement with a defect"
        if self.agreeing:
            also = f", as did {rewrite}" if self.rewrite_answered else ""
            return f"no attempt ran clean: {self.agreeing} of {self.ran} statements sampled again gave these rows{also}"
        if self.rewrite_answered:
            return f"no attempt ran clean: these rows are {rewrite}'s; no two of {self.written} statements sampled again agreed"
        return f"no attempt ran clean, nor any of {self.written} statements sampled again"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def elect(
    greedy: Optional[Statement],
    heard: Sequence[Statement],
    candidates: Iterable[Callable[[], Optional[Statement]]],
    total: int,
) -> tuple[Optional[Statement], Votes]:
    """The statement whose rows the most statements gave, and how they voted: ``greedy`` (None when it
    did not run clean), the statements already ``heard`` (a copied pair's, voting as a candidate
    does), then each of ``candidates`` (each writes, runs and checks one statement: None when it is not
    counted) while those of the ``total`` still to come could change the answer (:func:`settled`)."""
    groups: list[list[Statement]] = [[greedy]] if greedy is not None else []
    for statement in heard:
        grouped(groups, statement, narrower_wins=True)
    written = 1 + len(heard)
    for write in candidates:
        if settled(groups, greedy, total - written):
            break
        candidate = write()
        written += 1
        if candidate is not None:
            grouped(groups, candidate, narrower_wins=True)
    if not groups:
        return None, Votes(written, 0, 0, False)
    chosen = groups[winner(groups, greedy)]
    return chosen[0], Votes(written, sum(len(g) for g in groups), len(chosen), chosen[0] is greedy)
