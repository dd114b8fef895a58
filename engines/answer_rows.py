"""Which rows of a database result an answer names, and the note kb adds for the rows it leaves out.

The model writing the sentence from a result is told to name every row (``SQLEngine``'s answer
prompt), and the 1.5B model often does not: asked "What is Karl Johansson's email address?" where three
customers have that name, it answers with one address. kb does not rewrite what the model wrote. When
the result has at least two rows, all of them shown to the model (at most :data:`ROWS_SHOWN`), and
some row has none of its values in the answer, kb adds one line after the answer that lists those
rows: "Also in the result (3 rows in all): ...". A row is named when one of its values appears in
the answer as the result shows it, or as a number is commonly written (rounded to 2 decimals,
without trailing zeros, with a thousands separator), or as a date is (with its month's name), case
aside. Nothing is added to an answer that names every row, or to a result of one row or of none.

A result of more than :data:`ROWS_SHOWN` rows cannot be named row by row: the model is shown its
first :data:`LONG_RESULT_HEAD` and told how many there are, and an answer written from them may read
like the whole answer ("Ida Andersson has opened 2 support tickets." for 322 customers' counts). When
such an answer does not give the result's number of rows, kb adds the line "The answer is written
from the first 5 of the result's 322 rows." (``rows_not_shown`` in the metadata: how many the model
did not see).
``benchmarks/sql_answers.py`` measures, with these same rules, how often the model's sentence names
every row, and how often one over a longer result gives its number of rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

ROWS_SHOWN = 20  # rows of a result the answer prompt shows the model whole (kb.engines.sql.format_rows)
# Rows of a longer result the answer prompt shows: the 1.5B model asked to name twenty rows of a long
# result mixes their columns and repeats itself; five it copies as they are.
LONG_RESULT_HEAD = 5


def rows_shown(count: int) -> int:
    """How many of a result's ``count`` rows the answer prompt shows the model."""
    return count if count <= ROWS_SHOWN else LONG_RESULT_HEAD


_ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d(?: \d\d:\d\d:\d\d)?$")


def spellings(value: Any) -> set[str]:
    """How an answer may write ``value`` (lower case): as the result shows it; a number also rounded
    to 2 decimals, without trailing zeros, with a thousands separator; a date also with its month's name."""
    text = str(value).strip().lower()
    found = {text} if text else set()
    if isinstance(value, str) and _ISO_DATE.match(value):  # the engine's rows carry dates as ISO text
        value = date.fromisoformat(value[:10])
    if isinstance(value, date):  # 2024-11-01 also as November 1, 2024 and 1 November 2024
        found |= {f"{value:%B} {value.day}, {value.year}".lower(), f"{value.day} {value:%B} {value.year}".lower()}
        found.add(value.strftime("%Y-%m-%d"))  # a datetime's date alone
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        number = float(value)
        for written in (
            f"{number:.2f}",
            f"{number:g}",
            f"{number:,.2f}",
            f"{number:,.0f}" if number.is_integer() else "",
        ):
            if written:
                found.add(written)
                found.add(written.rstrip("0").rstrip(".") if "." in written else written)
    return found


def names_row(answer: str, row: dict[str, Any]) -> bool:
    """Whether ``answer`` carries one of ``row``'s values (:func:`spellings`)."""
    said = answer.lower()
    return any(s in said for value in row.values() if value is not None for s in spellings(value))


def rows_left_out(answer: str, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of a result of 2 to :data:`ROWS_SHOWN` rows that ``answer`` does not name (rows with no
    value at all aside); none for any other result."""
    if not 2 <= len(rows) <= ROWS_SHOWN:
        return []
    return [row for row in rows if any(v is not None for v in row.values()) and not names_row(answer, row)]


def gives_row_count(answer: str, count: int) -> bool:
    """Whether ``answer`` writes the number ``count`` (digits, with or without a thousands separator)."""
    return any(re.search(rf"(?<![\d.,]){re.escape(s)}(?![\d]|[.,]\d)", answer) for s in {str(count), f"{count:,}"})


def left_out_note(
    answer: str, rows: Sequence[dict[str, Any]], metadata: dict[str, Any], *, truncated: bool = False
) -> str:
    """The line kb adds after ``answer`` for the rows it leaves out ("" when it names every row); how
    many it lists goes into the response's ``metadata`` as ``rows_left_out``. For a result of more
    than :data:`ROWS_SHOWN` rows (``truncated``: the engine stopped reading at ``len(rows)``), the line
    says the answer was written from the first ones, unless the answer gives the number of rows; how
    many the model did not see goes into ``metadata`` as ``rows_not_shown``."""
    if len(rows) > ROWS_SHOWN:
        if gives_row_count(answer, len(rows)):
            return ""
        shown = rows_shown(len(rows))
        metadata["rows_not_shown"] = len(rows) - shown
        of = f"more than {len(rows)}" if truncated else str(len(rows))
        return f"\n\nThe answer is written from the first {shown} of the result's {of} rows."
    missing = rows_left_out(answer, rows)
    if not missing:
        return ""
    metadata["rows_left_out"] = len(missing)
    listed = "; ".join(", ".join(str(v) for v in row.values() if v is not None) for row in missing)
    return f"\n\nAlso in the result ({len(rows)} rows in all): {listed}."


def with_left_out_note(
    pieces: Iterator[str], rows: Sequence[dict[str, Any]], metadata: dict[str, Any], *, truncated: bool = False
) -> Iterator[str]:
    """A streamed answer's pieces, then its :func:`left_out_note` once the answer is complete."""
    written = []
    for piece in pieces:
        written.append(piece)
        yield piece
    note = left_out_note("".join(written), rows, metadata, truncated=truncated)
    if note:
        yield note
