"""Questions about the business database: LlamaIndex writes the SQL, kb decides whether it runs.

LlamaIndex's ``NLSQLTableQueryEngine`` (or ``SQLTableRetrieverQueryEngine`` when there are more
tables than fit a prompt) writes the first statement in ``sql_only`` mode: it does not execute it
(LlamaIndex's ``SQLDatabase.run_sql`` would run anything, ``DROP TABLE`` included). Its schema is
kb's description of the tables (:mod:`kb.engines.sql_schema`) and its prompt kb's, with MariaDB's
date functions spelled out.

Every statement then passes the read-only guard and runs through a SELECT-only account in a READ
ONLY transaction with a time limit and a row cap. When the server rejects it (unknown column, bad
join, syntax) or the guard cannot parse it, the model gets the error and the schema again and
writes a correction, up to ``max_attempts`` statements in all, as LangChain's SQL agent and Vanna
do; where the schema alone decides the repair, kb writes it (:mod:`kb.engines.sql_repairs`), also
for a statement that would run but answer another question. Each attempt passes the guard, and
the response lists every attempt with its error. A statement
the guard refuses for what it would do (a write, a lock, a file) is not retried. An empty result
is an answer ("there were no orders in 2019"), not a failure.

``SQLEngine`` is a LlamaIndex ``CustomQueryEngine``: its ``Response`` carries the SQL, rows and
attempts in its metadata (:mod:`kb.engines.answer`).
"""

from __future__ import annotations

import decimal
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, Optional

from llama_index.core import MockEmbedding, PromptTemplate
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.response.schema import RESPONSE_TYPE, Response, StreamingResponse
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms import LLM
from llama_index.core.query_engine import CustomQueryEngine, NLSQLTableQueryEngine

from kb.engines.answer import Attempt, timed_stream
from kb.engines.sql_guard import CheckedSQL, ReadOnlyGuard, SQLRefused, clean
from kb.engines.sql_repairs import StatementRepairs
from kb.engines.sql_schema import DescribedSQLDatabase
from kb.engines.sql_ties import Tie, tie_probe, with_ties
from kb.stores.connection import MariaDBConnection
from kb.stores.errors import DatabaseUnavailable

logging.getLogger("sqlglot").setLevel(logging.ERROR)
logging.getLogger("llama_index.core.indices.struct_store").setLevel(logging.WARNING)  # logs the schema per query

# The schema comes first and the question last, so that everything before the question is the same
# for every question and a prompt cache (llama.cpp's, or a provider's) reuses it.
_SQL_INSTRUCTIONS = (
    "You write {dialect} SQL for these tables:\n\n{schema}\n\n"
    "Rules:\n"
    "- Reply with one SELECT statement and nothing else.\n"
    "- Use only the tables and columns above. A column that is not in a table is reached with a JOIN "
    "through the REFERENCES shown.\n"
    "- Select only what the question asks for, no extra columns: COUNT(*) when it asks how many records "
    "there are; the stored value when it asks for one (how many seats a room has: its seats column); "
    'names or values, not a count, for "which" or "what". "Which X" asks for the name column of X\'s own '
    "table (JOIN it when the query groups by X's id), not an id and not another table's name.\n"
    "- Compare text with the exact values listed above. A status column holds a record's current state: "
    "filter on it only when the question asks for records in that state.\n"
    "- Negations: not closed is <> 'closed' (every other value).\n"
    "- Dates: YEAR(col) = 2025; col BETWEEN '2025-03-01' AND '2025-03-31'; more than 30 days after an "
    "event: later_col > DATE_ADD(event_col, INTERVAL 30 DAY); within 7 days of it: later_col <= "
    "DATE_ADD(event_col, INTERVAL 7 DAY); DATEDIFF(later, earlier) is a number of days; MONTH(col); "
    "DAYOFWEEK(col) is 1 on Sunday and 7 on Saturday; today is CURDATE().\n\n{examples}"
)
TEXT_TO_SQL_PROMPT = PromptTemplate(_SQL_INSTRUCTIONS + "Question: {query_str}\nSQL: ")
CORRECTION_PROMPT = PromptTemplate(
    _SQL_INSTRUCTIONS + "Question: {query_str}\n"
    "This statement was written for the question but failed:\n{sql}\nError: {error}\n{hint}"
    "Write a corrected statement.\nSQL: "
)
ANSWER_PROMPT = PromptTemplate(
    "Question: {question}\nSQL: {sql}\nResult ({count} rows{more}):\n{rows}\n\n"
    "Answer the question from the result in one or two sentences. Use the values exactly as they are in the "
    "result and add no figure that is not in it.{empty}\nAnswer: "
)
EMPTY_HINT = " The query found no rows: say that there are none (for example, no such orders)."
NOT_RETRIED = ("max_statement_time", "Query execution was interrupted")  # a slow query stays slow
LOST = ("Lost connection", "Server has gone away", "Can't connect", "Connection refused")  # the server, not the SQL


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _normalized(sql: str) -> str:
    """One spelling per statement (sqlglot's), to tell whether a rewrite is a failed statement again."""
    import sqlglot

    try:
        return sqlglot.parse_one(clean(sql), read="mysql").sql(dialect="mysql")
    except Exception:  # not parseable: compare the text
        return " ".join(clean(sql).split())


def format_examples(examples: Sequence[tuple[str, str]], guard: ReadOnlyGuard) -> str:
    """The examples as the prompt shows them. One over a table outside the allow-list is left out
    (``sql.tables`` may narrow what a shared examples file covers); any other refusal is a
    configuration error."""
    lines = []
    for question, sql in examples:
        try:
            checked = guard.check(sql)
        except SQLRefused as refusal:
            if refusal.table is not None:
                continue
            raise SQLRefused(f"the SQL example for {question!r} is refused: {refusal}") from None
        lines.append(f"Question: {question}\nSQL: {checked.sql}\n")
    return ("Examples of good SQL for these tables:\n" + "\n".join(lines) + "\n") if lines else ""


def format_rows(rows: Sequence[dict[str, Any]], limit: int = 20) -> str:
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    lines = [" | ".join(columns)]
    lines += [" | ".join(str(row[c]) for c in columns) for row in rows[:limit]]
    return "\n".join(lines)


@dataclass
class SQLOutcome:
    """What the database side found for a question, before any answer is written from it."""

    question: str
    sql: Optional[str] = None
    rows: Optional[list[dict[str, Any]]] = None  # None: nothing ran (refused); []: ran, no rows
    truncated: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    refused: bool = False
    refusal_reason: Optional[str] = None
    failure: Optional[str] = None  # why there are no rows to answer from (refusal or server error)
    tie: Optional[Tie] = None  # rows the statement's LIMIT cut although they tie with its last row
    timings: dict[str, float] = field(default_factory=dict)

    def own_text(self) -> Optional[str]:
        """The answer kb writes itself, without the LLM: why there are no rows, or the tied rows."""
        return self.failure or (self.tie.sentence() if self.tie else None)

    def metadata(self) -> dict[str, Any]:
        return {
            "route": "database",
            "sql_query": self.sql,
            "rows": self.rows,
            "truncated": self.truncated,
            "attempts": [asdict(a) for a in self.attempts],
            "refused": self.refused,
            "refusal_reason": self.refusal_reason,
            "ties": len(self.tie.tied) if self.tie else 0,
            "timings": dict(self.timings),
        }


def _sql_writer(
    llm: LLM,
    sql_database: DescribedSQLDatabase,
    tables: list[str],
    max_tables_in_prompt: int,
    embed_model: Optional[Callable[[], BaseEmbedding]],
    examples_text: str = "",
) -> Any:
    """LlamaIndex's NLSQL engine in ``sql_only`` mode, with kb's prompt: all tables in the prompt, or,
    above ``max_tables_in_prompt``, those an embedding index retrieves for each question."""
    options: dict[str, Any] = dict(
        llm=llm,
        sql_only=True,
        synthesize_response=False,
        text_to_sql_prompt=TEXT_TO_SQL_PROMPT.partial_format(examples=examples_text),
    )
    if len(tables) <= max_tables_in_prompt or embed_model is None:
        # LlamaIndex's default embedding model is OpenAI's; none is used on this path.
        return NLSQLTableQueryEngine(
            sql_database=sql_database, tables=tables, embed_model=MockEmbedding(embed_dim=1), **options
        )
    from llama_index.core import VectorStoreIndex
    from llama_index.core.indices.struct_store.sql_query import SQLTableRetrieverQueryEngine
    from llama_index.core.objects import ObjectIndex, SQLTableNodeMapping, SQLTableSchema

    embedder = embed_model()
    object_index = ObjectIndex.from_objects(
        [SQLTableSchema(table_name=t) for t in tables],
        SQLTableNodeMapping(sql_database),
        index_cls=VectorStoreIndex,
        embed_model=embedder,
    )
    retriever = object_index.as_retriever(similarity_top_k=max_tables_in_prompt)
    return SQLTableRetrieverQueryEngine(sql_database, retriever, embed_model=embedder, **options)


class SQLEngine(CustomQueryEngine):
    """Question -> guarded SQL (corrected on error) -> rows -> answer, as a LlamaIndex query engine."""

    llm: LLM
    readonly: MariaDBConnection
    database: str
    tables: list[str]
    row_limit: int = Field(default=200, ge=1)
    timeout_s: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(
        default=3, ge=1, description="statements run per question, corrections included (kb's pre-run repairs free)"
    )
    streaming: bool = False

    guard: ReadOnlyGuard = Field(exclude=True, description="checks every statement before it runs")
    sql_database: DescribedSQLDatabase = Field(exclude=True, description="the tables, as the prompt shows them")
    repairs: StatementRepairs = Field(exclude=True, description="what kb mends in a statement itself")
    writer: Any = Field(exclude=True, description="writes the first statement: LlamaIndex's NLSQL engine, sql_only")
    examples_text: str = Field(default="", description="the question/SQL examples as the prompts show them")

    def __init__(
        self,
        llm: LLM,
        readonly: MariaDBConnection,
        *,
        database: str,
        tables: Sequence[str],
        max_tables_in_prompt: int = 16,
        embed_model: Optional[Callable[[], BaseEmbedding]] = None,
        examples: Sequence[tuple[str, str]] = (),
        **kwargs: Any,
    ) -> None:
        """``embed_model`` (a function returning one, so that it is loaded only when needed) picks the
        tables of each question when there are more than ``max_tables_in_prompt``. ``examples`` are
        good (question, SQL) pairs for this database, shown to the model after the rules (Vanna's
        and LangChain's few-shot idea: what the schema cannot say, such as which column a verb
        means); each must pass the guard."""
        tables = list(tables)
        sql_database = DescribedSQLDatabase(readonly, database, tables)
        guard = ReadOnlyGuard(tables, database)
        shown = format_examples(examples, guard)
        super().__init__(
            llm=llm,
            readonly=readonly,
            database=database,
            tables=tables,
            guard=guard,
            sql_database=sql_database,
            repairs=StatementRepairs(sql_database.describer),
            writer=_sql_writer(llm, sql_database, tables, max_tables_in_prompt, embed_model, shown),
            examples_text=shown,
            **kwargs,
        )

    @property
    def schema_text(self) -> str:
        """The schema as the first attempt's prompt shows it (all tables; the same text, so cached)."""
        return "\n\n".join(self.sql_database.get_single_table_info(t) for t in self.tables)

    # -- writing and running SQL -----------------------------------------------------------------------
    def write_sql(self, question: str) -> str:
        """The statement the LLM proposes (not run, not yet checked)."""
        response = self.writer.query(question)
        return str(response.metadata.get("sql_query") or response.response or "")

    def correct_sql(self, question: str, failed: Attempt, tables: Sequence[str] = (), tried: Sequence[str] = ()) -> str:
        """A rewrite of a failed statement: for a column of a table the statement did not join, kb's
        join along the foreign keys (:mod:`kb.engines.sql_repairs`); otherwise the LLM's,
        given the error, the schema again and, for an unknown column or table, where the column is
        and how to join to it. A small model often writes the failed statement again: then it is
        asked once more, sampling (temperature 0.8), for another."""
        tried_forms = {_normalized(sql) for sql in tried}
        joined = self.repairs.add_missing_join(failed.sql, failed.error or "")
        if joined and _normalized(joined) not in tried_forms:
            return joined
        hint = self.repairs.hint_for(failed.error or "", tables, failed.sql)
        prompt = CORRECTION_PROMPT.format(
            dialect=self.sql_database.dialect,
            schema=self.schema_text,
            query_str=question,
            sql=failed.sql,
            error=failed.error,
            hint=f"Hint: {hint}\n" if hint else "",
            examples=self.examples_text,
        )
        rewrite = str(self.llm.complete(prompt).text)
        if _normalized(rewrite) in tried_forms:
            try:
                rewrite = str(self.llm.complete(prompt, temperature=0.8).text)
            except TypeError:  # an LLM whose complete() takes no temperature: keep the first rewrite
                pass
        return rewrite

    def run(self, checked: CheckedSQL) -> tuple[list[dict[str, Any]], bool]:
        """Rows of a checked statement (at most ``row_limit``; True when there were more)."""
        with self.readonly.cursor() as cur:
            cur.execute("START TRANSACTION READ ONLY")
            try:
                cur.execute(f"SET STATEMENT max_statement_time = {float(self.timeout_s)} FOR {checked.sql}")
                columns = [d[0] for d in cur.description or []]
                fetched = cur.fetchmany(self.row_limit + 1)
            finally:
                cur.execute("ROLLBACK")
        rows = [{c: _plain(v) for c, v in zip(columns, row)} for row in fetched[: self.row_limit]]
        return rows, len(fetched) > self.row_limit

    def _tie(self, checked: CheckedSQL, rows: list[dict[str, Any]]) -> Optional[Tie]:
        """Rows a ``LIMIT`` cut although they tie with its last row (:mod:`kb.engines.sql_ties`)."""
        probe = tie_probe(checked.sql)
        if probe is None or len(rows) < probe[1]:
            return None
        try:
            probe_rows, _ = self.run(self.guard.check(probe[0]))
        except Exception:  # kb's own second look failed: the statement's rows stand as they are
            logging.getLogger(__name__).debug("tie probe failed: %s", probe[0], exc_info=True)
            return None
        return with_ties(rows, probe_rows, probe[1], probe[2])

    def _repaired(self, question: str, checked: CheckedSQL) -> Optional[tuple[str, CheckedSQL]]:
        """What is wrong with a statement that would run, and kb's repair of it, checked by the guard
        (:meth:`StatementRepairs.before_running`); None when nothing is, or the guard refuses the
        repair (a join to a table outside the allow-list): the statement then runs as written."""
        repaired = self.repairs.before_running(question, checked.sql)
        if repaired is None:
            return None
        try:
            return repaired[0], self.guard.check(repaired[1])
        except SQLRefused:
            return None

    def compute(self, question: str) -> SQLOutcome:
        """Write, check and run (and correct) the SQL for ``question``; no answer is written yet."""
        started = time.perf_counter()
        outcome = SQLOutcome(question=question)
        writing = running = 0.0
        used_tables: tuple[str, ...] = ()
        for number in range(self.max_attempts):
            t = time.perf_counter()
            proposed = (
                self.write_sql(question)
                if number == 0
                else self.correct_sql(question, outcome.attempts[-1], used_tables, [a.sql for a in outcome.attempts])
            )
            writing += time.perf_counter() - t
            attempt = Attempt(sql=clean(proposed) or proposed)
            outcome.attempts.append(attempt)
            try:
                checked = self.guard.check(proposed)
            except SQLRefused as refusal:
                attempt.error = f"refused by the guard: {refusal}"
                outcome.refused, outcome.refusal_reason = True, str(refusal)
                if not refusal.retryable:
                    break
                continue
            attempt.sql, used_tables = checked.sql, checked.tables
            outcome.refused, outcome.refusal_reason = False, None
            repaired = self._repaired(question, checked)
            if repaired:  # it would run and answer another question: kb's repair runs instead
                attempt.error = f"not run: {repaired[0]}"
                checked = repaired[1]
                attempt = Attempt(sql=checked.sql)
                outcome.attempts.append(attempt)
                used_tables = checked.tables
            t = time.perf_counter()
            try:
                outcome.rows, outcome.truncated = self.run(checked)
                outcome.tie = self._tie(checked, outcome.rows)
                outcome.rows = outcome.tie.rows if outcome.tie else outcome.rows
            except DatabaseUnavailable:
                raise  # the server is down: nothing a rewrite of the statement could change
            except Exception as exc:  # the server refused it: unknown column, time limit, no privilege...
                attempt.error = str(getattr(exc, "orig", exc)).splitlines()[0][:300]
                if any(marker in attempt.error for marker in LOST):
                    raise DatabaseUnavailable(
                        f"the business database at {self.readonly.where} stopped answering: {attempt.error}"
                    ) from None
                if any(marker in attempt.error for marker in NOT_RETRIED):
                    break
                continue
            finally:
                running += time.perf_counter() - t
            break
        outcome.sql = outcome.attempts[-1].sql
        if outcome.rows is None or outcome.attempts[-1].error:
            outcome.rows = None if outcome.refused else []
            tries = f" after {len(outcome.attempts)} attempts" if len(outcome.attempts) > 1 else ""
            outcome.failure = (
                f"I did not run the SQL that was written for this question{tries}: {outcome.refusal_reason}."
                if outcome.refused
                else f"The query failed on the server{tries}: {outcome.attempts[-1].error}"
            )
        outcome.timings = {
            "retrieval_ms": round(running * 1000, 2),
            "generation_ms": round(writing * 1000, 2),
            "total_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        return outcome

    # -- answering ---------------------------------------------------------------------------------------
    def _answer_arguments(self, outcome: SQLOutcome) -> dict[str, Any]:
        rows = outcome.rows or []
        return dict(
            question=outcome.question,
            sql=outcome.sql,
            count=len(rows),
            more=f", cut at {self.row_limit}" if outcome.truncated else "",
            rows=format_rows(rows),
            empty="" if rows else EMPTY_HINT,
        )

    def respond(
        self, outcome: SQLOutcome, *, streaming: Optional[bool] = None, started: Optional[float] = None
    ) -> RESPONSE_TYPE:
        """The response to an outcome: kb's own text (a failure, tied rows), or an answer the LLM
        writes from the rows."""
        started = time.perf_counter() if started is None else started
        streaming = self.streaming if streaming is None else streaming
        metadata = outcome.metadata()
        if streaming:
            own = outcome.own_text()
            pieces: Iterator[str] = (
                iter([own]) if own else self.llm.stream(ANSWER_PROMPT, **self._answer_arguments(outcome))
            )
            return StreamingResponse(response_gen=timed_stream(pieces, metadata, started), metadata=metadata)
        generation_started = time.perf_counter()
        text = outcome.own_text() or str(self.llm.predict(ANSWER_PROMPT, **self._answer_arguments(outcome))).strip()
        now = time.perf_counter()
        timings = metadata["timings"]
        timings["generation_ms"] = round(timings.get("generation_ms", 0.0) + (now - generation_started) * 1000, 2)
        timings["total_ms"] = round((now - started) * 1000, 2)
        return Response(response=text, metadata=metadata)

    def custom_query(self, query_str: str) -> RESPONSE_TYPE:
        started = time.perf_counter()
        return self.respond(self.compute(query_str), started=started)
