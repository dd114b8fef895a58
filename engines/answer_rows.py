"""Which rows of a database result an answer names, and the note kb adds for the rows it leaves out.

The model writing the sentence from a result is told to name every row (``SQLEngine``'s answer
prompt), and the 1.5B model often does not: asked "What is Karl Johansson's email address?" where three
customers have that name, it answers with one address. kb does not rewrite what the model wrote. When
the result has at least two rows, all of them shown to the model (at most :data:`ROWS_SHOWN`), and
some row has none of its values in the answer, kb adds one line after the answer that lists those
rows: "Also in the result (3 rows in all): ...". A row is named when one of its values appears in
the answer as the result shows it, or as a number is commonly written (rounded to 2 decimals,
without trailing zeros, with a thousands separator), or as a date is (with its month's name), case
aside. Nothing is added to an answer that names every row, to a result of one row or of none, or to
one of more rows than the model saw (it was shown a cut result and may summarise it).
``benchmarks/sql_answers.py`` measures, with these same rules, how often the model's sentence names
every row.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

ROWS_SHOWN = 20  # rows of a result the answer prompt shows the model (kb.engines.sql.format_rows)
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


def left_out_note(answer: str, rows: Sequence[dict[str, Any]], metadata: dict[str, Any]) -> str:
    """The line kb adds after ``answer`` for the rows it leaves out ("" when it names every row); how
    many it lists goes into the response's ``metadata`` as ``rows_left_out``."""
    missing = rows_left_out(answer, rows)
    if not missing:
        return ""
    metadata["rows_left_out"] = len(missing)
    listed = "; ".join(", ".join(str(v) for v in row.values() if v is not None) for row in missing)
    return f"\n\nAlso in the result ({len(rows)} rows in all): {listed}."


def with_left_out_note(
    pieces: Iterator[str], rows: Sequence[dict[str, Any]], metadata: dict[str, Any]
) -> Iterator[str]:
    """A streamed answer's pieces, then its :func:`left_out_note` once the answer is complete."""
    written = []
    for piece in pieces:
        written.append(piece)
        yield piece
    note = left_out_note("".join(written), rows, metadata)
    if note:
        yield note
