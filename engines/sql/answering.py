"""The answer to a database question, written from its rows.

The LLM writes one or two sentences from the question, the statement and the rows
(:data:`ANSWER_PROMPT`), with what the schema's comments say of the result's columns
(:func:`column_notes`: a currency, a unit, which the model would otherwise guess). A result of no
rows is an answer ("no orders in 2019"); a result longer than the prompt shows is shown by its first
rows with its row count (:mod:`kb.engines.answer_rows`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Optional

from llama_index.core import PromptTemplate
from llama_index.core.base.response.schema import RESPONSE_TYPE, Response, StreamingResponse
from llama_index.core.llms import LLM
from sqlglot import exp

from kb.engines.answer import timed_stream
from kb.engines.answer_rows import ROWS_SHOWN, left_out_note, rows_shown, with_left_out_note
from kb.engines.sql.guard import parse_statement
from kb.engines.sql.loop import SQLOutcome
from kb.engines.sql.schema import SchemaDescriber, StatementScope
from kb.engines.timing import Stopwatch

ANSWER_PROMPT = PromptTemplate(
    "Question: {question}\nSQL: {sql}\n{column_notes}Result ({count} rows{more}):\n{rows}\n\n"
    "Answer the question from the result in one or two sentences. Use the values exactly as they are in the "
    "result and add no figure that is not in it. Name a currency or a unit only where the question, the result "
    "or the schema's notes give it. When the result has several rows, the answer names every row with its "
    "values.{hint}\nAnswer: "
)
EMPTY_HINT = " The query found no rows: say that there are none (for example, no such orders)."
# A result longer than the prompt shows (kb.engines.answer_rows): the model is told so, or it answers
# from the first rows as if they were all.
LONG_RESULT_HINT = (
    ' Only the first {shown} rows are shown: begin with "The result has {count} rows", then name the rows shown '
    "with their values."
)


def _answer_hint(rows: Sequence[dict[str, Any]], truncated: bool) -> str:
    """What the answer prompt adds for a result of no rows, or of more than it shows."""
    if not rows:
        return EMPTY_HINT
    if len(rows) <= ROWS_SHOWN:
        return ""
    return LONG_RESULT_HINT.format(
        shown=rows_shown(len(rows)), count=f"more than {len(rows)}" if truncated else len(rows)
    )


def format_rows(rows: Sequence[dict[str, Any]], limit: Optional[int] = None) -> str:
    """The rows as a table of ``|``-separated lines under their column names: the first ``limit``
    (default: as many as an answer prompt shows, :func:`kb.engines.answer_rows.rows_shown`)."""
    limit = rows_shown(len(rows)) if limit is None else limit
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    lines = [" | ".join(columns)]
    lines += [" | ".join(str(row[c]) for c in columns) for row in rows[:limit]]
    return "\n".join(lines)


def column_notes(sql: str, schema: SchemaDescriber) -> str:
    """What the schema's comments say of the columns a statement's result is computed from (those of
    its select list it can place in a table: ``returns.refund_amount: EUR refunded``), as a line for
    the answer prompt; "" when none has a comment or the statement does not parse. Without it the
    model writes the currency it guesses ("$" for euros)."""
    try:
        tree = parse_statement(sql)
    except Exception:  # kb answers from rows whatever their statement: no notes then
        return ""
    if not isinstance(tree, exp.Select):
        return ""
    scope = StatementScope(tree, schema)
    said: dict[str, str] = {}
    for projection in tree.expressions:
        for column in projection.find_all(exp.Column):
            placed = scope.place(column)
            if placed is not None and placed[1].comment:
                said[f"{placed[0].name}.{placed[1].name}"] = placed[1].comment
    return ("The schema says: " + "; ".join(f"{c}: {note}" for c, note in said.items()) + "\n") if said else ""


def answer_arguments(outcome: SQLOutcome, row_limit: int, schema: SchemaDescriber) -> dict[str, Any]:
    """:data:`ANSWER_PROMPT`'s arguments for an outcome's rows (``truncated`` at ``row_limit``)."""
    rows, sql = outcome.rows or [], outcome.sql or ""
    return dict(
        question=outcome.question,
        sql=sql,
        column_notes=column_notes(sql, schema),
        count=len(rows),
        more=(f", cut at {row_limit}" if outcome.truncated else "")
        + (f", the first {rows_shown(len(rows))} shown" if len(rows) > ROWS_SHOWN else ""),
        rows=format_rows(rows),
        hint=_answer_hint(rows, outcome.truncated),
    )


def respond(
    llm: LLM, outcome: SQLOutcome, arguments: Callable[[], dict[str, Any]], streaming: bool, clock: Stopwatch
) -> RESPONSE_TYPE:
    """The response to an outcome: kb's own text (a failure, tied rows), or an answer ``llm`` writes
    from the rows with :data:`ANSWER_PROMPT` and ``arguments()``, with the note of the rows it left out
    (:mod:`kb.engines.answer_rows`). ``clock``: the one the outcome was computed on (the answer's total
    time)."""
    metadata = outcome.metadata()
    if streaming:
        fixed = outcome.text_without_llm()
        pieces: Iterator[str] = (
            iter([fixed])
            if fixed
            else with_left_out_note(
                llm.stream(ANSWER_PROMPT, **arguments()), outcome.rows or [], metadata, truncated=outcome.truncated
            )
        )
        return StreamingResponse(response_gen=timed_stream(pieces, metadata, clock), metadata=metadata)
    with clock.step("generation"):
        text = outcome.text_without_llm() or ""
        if not text:
            text = str(llm.predict(ANSWER_PROMPT, **arguments())).strip()
            text += left_out_note(text, outcome.rows or [], metadata, truncated=outcome.truncated)
    metadata["timings"].update(clock.milliseconds())
    return Response(response=text, metadata=metadata)
