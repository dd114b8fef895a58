"""Questions about the business database: LlamaIndex writes the SQL, kb decides whether it runs.

LlamaIndex's ``NLSQLTableQueryEngine`` (or ``SQLTableRetrieverQueryEngine`` when there are more
tables than fit a prompt) is used in ``sql_only`` mode: it turns the question and the schema into a
statement but does not execute it (LlamaIndex's ``SQLDatabase.run_sql`` would run anything,
``DROP TABLE`` included). The statement then passes the read-only guard and runs through a SELECT-only
account in a READ ONLY transaction with a time limit and a row cap; the LLM answers from the rows.
"""

from __future__ import annotations

import decimal
import logging
import time
from datetime import date, datetime
from typing import Any, Sequence

from llama_index.core import PromptTemplate, SQLDatabase
from llama_index.core.query_engine import NLSQLTableQueryEngine

from engines.answer import Answer
from engines.sql_guard import CheckedSQL, ReadOnlyGuard, SQLRefused, clean
from stores.connection import MariaDBConnection

logging.getLogger("sqlglot").setLevel(logging.ERROR)

ANSWER_PROMPT = PromptTemplate(
    "Question: {question}\nSQL: {sql}\nResult ({count} rows{more}):\n{rows}\n\n"
    "Answer the question from the result in one or two sentences.\nAnswer: "
)


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def format_rows(rows: Sequence[dict[str, Any]], limit: int = 20) -> str:
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    lines = [" | ".join(columns)]
    lines += [" | ".join(str(row[c]) for c in columns) for row in rows[:limit]]
    return "\n".join(lines)


class SQLEngine:
    """Question -> guarded SQL -> rows -> answer."""

    def __init__(self, llm: Any, readonly: MariaDBConnection, *, database: str, tables: Sequence[str],
                 row_limit: int = 200, timeout_s: float = 5.0, max_tables_in_prompt: int = 8,
                 embed_model: Any = None) -> None:
        self.llm = llm
        self.readonly = readonly
        self.tables = list(tables)
        self.row_limit = row_limit
        self.timeout_s = timeout_s
        self.guard = ReadOnlyGuard(self.tables, database)
        self.sql_database = SQLDatabase(readonly.engine, include_tables=self.tables, sample_rows_in_table_info=0)
        if len(self.tables) <= max_tables_in_prompt:
            self.writer = NLSQLTableQueryEngine(sql_database=self.sql_database, tables=self.tables, llm=llm,
                                                sql_only=True, synthesize_response=False, embed_model=embed_model)
        else:
            from llama_index.core import VectorStoreIndex
            from llama_index.core.indices.struct_store.sql_query import SQLTableRetrieverQueryEngine
            from llama_index.core.objects import ObjectIndex, SQLTableNodeMapping, SQLTableSchema

            schemas = [SQLTableSchema(table_name=t) for t in self.tables]
            object_index = ObjectIndex.from_objects(schemas, SQLTableNodeMapping(self.sql_database),
                                                    VectorStoreIndex, embed_model=embed_model)
            self.writer = SQLTableRetrieverQueryEngine(
                self.sql_database, object_index.as_retriever(similarity_top_k=max_tables_in_prompt), llm=llm,
                sql_only=True, synthesize_response=False, embed_model=embed_model)

    def write_sql(self, question: str) -> str:
        """The statement the LLM proposes (not run, not yet checked)."""
        response = self.writer.query(question)
        return str(response.metadata.get("sql_query") or response.response or "")

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

    def answer(self, question: str, *, synthesize: bool = True) -> Answer:
        """Write, check and run the SQL; with ``synthesize`` the LLM also answers from the rows
        (the both-route writes its own single answer from rows and chunks, so it passes False)."""
        started = time.perf_counter()
        proposed = self.write_sql(question)
        written = time.perf_counter()
        answer = Answer(question=question, text="", route="database")

        def stamp(executed: float) -> Answer:
            done = time.perf_counter()
            answer.timings = {"retrieval_ms": round((executed - written) * 1000, 2),
                              "generation_ms": round(((written - started) + (done - executed)) * 1000, 2),
                              "total_ms": round((done - started) * 1000, 2)}
            return answer

        try:
            checked = self.guard.check(proposed)
        except SQLRefused as refusal:
            answer.sql = clean(proposed) or proposed
            answer.refused, answer.refusal_reason = True, str(refusal)
            answer.text = f"I did not run the SQL that was written for this question: {refusal}."
            return stamp(written)
        answer.sql = checked.sql
        try:
            rows, truncated = self.run(checked)
        except Exception as exc:  # the server refused it: unknown column, time limit, no privilege...
            answer.rows = []
            answer.text = f"The query failed on the server: {str(getattr(exc, 'orig', exc)).splitlines()[0][:300]}"
            return stamp(time.perf_counter())
        executed = time.perf_counter()
        answer.rows = rows
        if synthesize:
            more = f", cut at {self.row_limit}" if truncated else ""
            answer.text = str(self.llm.predict(ANSWER_PROMPT, question=question, sql=checked.sql, count=len(rows),
                                               more=more, rows=format_rows(rows))).strip()
        return stamp(executed)
