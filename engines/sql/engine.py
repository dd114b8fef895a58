"""Questions about the business database: LlamaIndex writes the SQL, kb decides whether it runs.

``SQLEngine`` is a LlamaIndex ``CustomQueryEngine``; its ``Response`` carries the SQL, the rows and
every attempt in its metadata (:mod:`kb.engines.answer`). A question goes through these stages
(:meth:`SQLEngine.compute`), each in a module of its own:

1. **The prompt** (:mod:`kb.engines.sql.writers`): kb's description of the tables
   (:mod:`kb.engines.sql.schema`), the rules, the approved question/SQL pairs closest to the question
   and the question last, with the line value linking writes above it (:mod:`kb.engines.sql.values`:
   "'Hamburg' is a value of customers.city"). LlamaIndex's ``NLSQLTableQueryEngine`` writes the
   statement in ``sql_only`` mode: it never executes it (LlamaIndex's ``SQLDatabase.run_sql`` would run
   anything, ``DROP TABLE`` included).
2. **The attempts** (:mod:`kb.engines.sql.loop`): every statement passes the read-only guard
   (:mod:`kb.engines.sql.guard`) and runs read-only (:mod:`kb.engines.sql.runner`); one the server
   rejects is repaired by kb where the error and the schema decide it (:mod:`kb.engines.sql.repairs`)
   or corrected by the model; one that runs with a defect (:mod:`kb.engines.sql.checks`) is
   corrected like a failed one.
3. **The rescue**, when no attempt ran clean: sampled statements, with kb's rewrites for the defects
   found as one voice among them.
4. **The vote** (:mod:`kb.engines.sql.vote`), with ``candidates`` above 1 and (under
   ``candidates_when="doubt"``) only for a question in doubt: statements of other prompts and samples
   vote by their rows. A statement that copies an approved pair shown for another question is put to
   a vote among statements written without the pairs. A question that went to the rescue is not voted
   on again.
5. **Ties** (:mod:`kb.engines.sql.ties`): rows a ``LIMIT`` cut although they tie with its last row.
6. **The answer** (:mod:`kb.engines.sql.answering`), written from the rows; kb's own sentence for a
   failure or tied rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Optional

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.response.schema import RESPONSE_TYPE
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms import LLM
from llama_index.core.query_engine import CustomQueryEngine

from kb.engines.answer import Attempt
from kb.engines.context import token_counter
from kb.engines.sql.answering import answer_arguments, column_notes, respond
from kb.engines.sql.checks import Defect
from kb.engines.sql.guard import CheckedSQL, ReadOnlyGuard
from kb.engines.sql.loop import SQLOutcome, StatementLoop
from kb.engines.sql.options import SQLOptions
from kb.engines.sql.repairs import StatementRepairs
from kb.engines.sql.runner import ReadOnlyRunner, Statement
from kb.engines.sql.schema import DescribedSQLDatabase
from kb.engines.sql.values import RowsAsked, ValueIndex, rows_asked, tables_named
from kb.engines.sql.writers import (
    Asked,
    ExamplesFor,
    SchemaForm,
    StatementWriters,
    format_examples,
    prompt_tables,
    schema_token_budget,
)
from kb.engines.timing import Stopwatch
from kb.stores.connection import MariaDBConnection

logging.getLogger("sqlglot").setLevel(logging.ERROR)
logging.getLogger("llama_index.core.indices.struct_store").setLevel(logging.WARNING)  # logs the schema per query

Stage = Literal["attempts", "rescue", "vote"]  # the stage whose statement answers (SQLEngine.compute)


@dataclass(frozen=True)
class SchemaReading:
    """What an engine read of its database when it was built (:attr:`SQLEngine.reading`): what an
    operator can expect of its prompts and start-up."""

    tables: int  # the tables the engine may read
    form: SchemaForm  # how a prompt shows them (kb.engines.sql.writers.prompt_tables)
    most_shown: int  # the most tables one prompt shows (retrieved: the closest, besides those joining them)
    token_budget: int  # the tokens the tables' descriptions may take in one prompt
    catalogue_tokens: int  # the tokens of every table's catalogue entry (0: all CREATE TABLEs fit)
    seconds: float  # the start-up reading: the tables described (and their index embedded, beyond one prompt)

    def summary(self) -> str:
        """One line: ``104 tables; a prompt shows the closest that fit ...; read in 4.26 s``."""
        if self.form == "all":
            shown = f"every prompt shows all {self.tables}"
        elif self.form == "catalogue":
            shown = (
                f"every prompt shows all {self.tables} as one line each ({self.catalogue_tokens:,} tokens of "
                f"{self.token_budget:,})"
            )
        else:
            shown = (
                "a prompt shows the tables its question names or is closest to that fit "
                f"(at most {self.most_shown}, {self.token_budget:,} tokens) and those joining them"
            )
            if self.catalogue_tokens > self.token_budget:
                shown += (
                    f"; one line per table would take {self.catalogue_tokens:,} tokens (sql.wide_schema: "
                    f"catalogue needs a context window {self.catalogue_tokens - self.token_budget:,} tokens larger)"
                )
            else:
                shown += f"; one line per table would take {self.catalogue_tokens:,} (sql.wide_schema: catalogue)"
        return f"{self.tables} tables; {shown}; read in {self.seconds:.2f} s"


class SQLEngine(CustomQueryEngine, SQLOptions):
    """Question -> guarded SQL (corrected on error) -> rows -> answer, as a LlamaIndex query engine.

    :meth:`compute` is the question's path, stage by stage (the module's docstring); its settings are
    the fields of :class:`SQLOptions` (``sql.*`` in config.yaml, read by
    :func:`kb.business_database.sql_engine.engine_settings`), its parts the fields below."""

    llm: LLM
    readonly: MariaDBConnection
    database: str
    tables: list[str]
    streaming: bool = False

    guard: ReadOnlyGuard = Field(exclude=True, description="checks every statement before it runs")
    sql_database: DescribedSQLDatabase = Field(exclude=True, description="the tables, as the prompt shows them")
    repairs: StatementRepairs = Field(exclude=True, description="what kb mends in a statement itself")
    reading: SchemaReading = Field(
        exclude=True,
        description="the start-up reading: the tables, how many a prompt shows, and its seconds (with an "
        "embedding model; without one the tables are described by the first prompt instead)",
    )
    writers: StatementWriters = Field(
        exclude=True, description="the prompts and their writers: LlamaIndex's NLSQL engine, sql_only"
    )
    examples: Optional[ExamplesFor] = Field(
        default=None,
        exclude=True,
        description="the approved question/SQL pairs closest to a question, shown before it (None: none)",
    )
    values: Optional[ValueIndex] = Field(default=None, exclude=True, description="value linking (None: off)")

    def __init__(
        self,
        llm: LLM,
        readonly: MariaDBConnection,
        *,
        database: str,
        tables: Sequence[str],
        embed_model: Optional[Callable[[], BaseEmbedding]] = None,
        **kwargs: Any,
    ) -> None:
        """When there are more than ``max_tables_in_prompt`` tables or their descriptions do not fit
        the LLM's context window (:func:`schema_token_budget`), and there is an ``embed_model`` (a
        function returning one, so that it is loaded only when needed), the prompts show the catalogue
        of every table or each question's closest tables (``wide_schema``, :func:`prompt_tables`). ``examples``
        (a keyword argument, a field) gives the approved (question, SQL) pairs closest to a question,
        shown to the model after the rules and before the question (Vanna's and Dataherald's idea:
        what the schema cannot say, such as which column a verb means), so that the schema's prompt
        state is shared by every question. ``value_linking`` tells the model where the values the
        question names are stored (:mod:`kb.engines.sql.values`)."""
        tables = list(tables)
        options = SQLOptions.model_validate({k: v for k, v in kwargs.items() if k in SQLOptions.model_fields})
        started = time.perf_counter()
        sql_database = DescribedSQLDatabase(readonly, database, tables)
        budget = schema_token_budget(llm, kwargs.get("examples") is not None)
        values = ValueIndex(readonly, database, tables) if options.value_linking else None
        described = [sql_database.describer.table(t) for t in tables]
        shown = prompt_tables(
            sql_database,
            tables,
            options.max_tables_in_prompt,
            options.tables_retrieved,
            options.wide_schema,
            embed_model,
            token_counter(llm),
            budget,
            named=partial(tables_named, tables=described, index=values),
        )
        reading = SchemaReading(
            tables=len(tables),
            form=shown.form,
            most_shown=min(options.tables_retrieved, len(tables)) if shown.form == "retrieved" else len(tables),
            token_budget=budget,
            catalogue_tokens=shown.catalogue_tokens,
            seconds=time.perf_counter() - started,
        )
        super().__init__(
            llm=llm,
            readonly=readonly,
            database=database,
            tables=tables,
            guard=ReadOnlyGuard(tables, database),
            sql_database=sql_database,
            repairs=StatementRepairs(sql_database.describer, options.skip_repairs),
            writers=StatementWriters(llm, shown, tables),
            values=values,
            reading=reading,
            **kwargs,
        )

    def _loop(self) -> StatementLoop:
        """The attempts, rescue and vote over this engine's parts and its settings as they are now."""
        return StatementLoop(
            writers=self.writers,
            runner=self._runner(),
            guard=self.guard,
            repairs=self.repairs,
            schema=self.sql_database.describer,
            options=self,
        )

    def _runner(self) -> ReadOnlyRunner:
        return ReadOnlyRunner(self.readonly, self.row_limit, self.timeout_s)

    def warm_prompt_cache(self) -> int:
        """Evaluate the beginning every question's prompts share into the LLM's prompt cache, pinned
        there (:meth:`StatementWriters.warm`: kb's prompt and, with candidates from other prompts,
        theirs; with tables retrieved per question, the rules before them); how many prompts were
        warmed (0: an LLM without a prompt cache of its own)."""
        return self.writers.warm(other_prompts=self.candidates > 1 and self.candidate_source == "prompts")

    def write_sql(self, asked: Asked | str, seed: Optional[int] = None, temperature: Optional[float] = None) -> str:
        """The statement the LLM proposes for ``asked`` (a question, or one with its hint line and
        examples; not run, not yet checked): greedy, or sampled with ``seed`` at ``temperature``
        (``sample_temperature`` by default)."""
        return self._loop().write(Asked(asked) if isinstance(asked, str) else asked, seed, temperature)

    def run(self, checked: CheckedSQL) -> Statement:
        """A checked statement run read-only (:meth:`ReadOnlyRunner.run`); the server's error is raised."""
        return self._runner().run(checked)

    def problems(self, ran: Statement, question: str) -> list[Defect]:
        """The defects of a statement that ran (:meth:`StatementLoop.problems`)."""
        return self._loop().problems(ran, question)

    def verify_example(self, sql: str) -> str:
        """``sql`` as the guard normalises it, once it has run read-only on the business database (an
        approved example must be a statement kb would run); raises :class:`SQLRefused` with the
        guard's reason, or ``ValueError`` with the server's error."""
        checked = self.guard.check(sql)
        ran = self._runner().run_checked(checked)
        if ran.rows is None:
            raise ValueError(f"the database cannot run it: {ran.error}")
        return checked.sql

    def _examples_for(self, question: str, outcome: SQLOutcome) -> str:
        """The approved examples for ``question`` as the prompts show them, listed in ``outcome``."""
        if self.examples is None:
            return ""
        text, shown = format_examples(self.examples(question), self.guard, token_counter(self.llm))
        outcome.examples = [example.to_dict() for example, _ in shown]
        outcome.example_statements = [(example.question, sql) for example, sql in shown]
        return text

    def compute(self, question: str, clock: Optional[Stopwatch] = None) -> SQLOutcome:
        """Write, check and run (and correct) the SQL for ``question``, stage by stage (the module's
        docstring); no answer is written yet. ``clock`` (a new one by default) times writing as
        "generation" and running as "query"."""
        clock = Stopwatch() if clock is None else clock
        outcome = SQLOutcome(question=question, question_hint=self._question_hint(question))
        asked = Asked(question, outcome.question_hint, self._examples_for(question, outcome))
        loop = self._loop()
        chosen, verdict = loop.attempts(asked, outcome, clock)
        stage: Stage = "attempts"
        if verdict == "mendable" and self.rescue_samples:
            stage = "rescue"  # its samples are the vote: none is taken after them
            chosen, verdict = loop.rescue_stage(asked, outcome, chosen, clock)
        if chosen is not None and verdict != "clean":
            outcome.attempts.append(Attempt(sql=chosen.sql))  # no correction ran clean: the first that ran, as written
        if stage == "attempts" and loop.in_doubt(outcome, chosen, verdict):
            chosen = loop.vote_stage(asked, outcome, chosen, clock)
        if chosen is not None:
            with clock.step("query"):
                tie = loop.tie(CheckedSQL(original=chosen.sql, sql=chosen.sql, tables=()), chosen.rows or [])
        outcome.answer_with(chosen, tie if chosen is not None else None)
        if self.examples_when == "doubt" and outcome.votes is None and len(outcome.attempts) == 1:
            outcome.examples = []  # the greedy statement answered alone: no prompt showed them
        outcome.timings = clock.milliseconds()
        return outcome

    def tables_shown(self, question: str) -> list[str]:
        """The tables kb's prompt for ``question`` shows (:meth:`StatementWriters.tables_for`, given
        the question with its hint line as the prompt has it)."""
        return self.writers.tables_for(Asked(question, self._question_hint(question)).text)

    def _question_hint(self, question: str) -> str:
        """The line above the question: where its values are stored, and names several rows share."""
        hints = (
            self.values.hint(question) if self.values is not None else "",
            self.sql_database.describer.shared_name_hint(question),
        )
        return " ".join(hint for hint in hints if hint)

    def rows_asked(self, question: str) -> RowsAsked:
        """What the question asks of the rows it names that these tables hold (a field,
        ``products.price of 'Barista Pro'``; another table's records, ``orders of 'Cold Brew Tower'``):
        :func:`kb.engines.sql.values.rows_asked` over this engine's tables and value index. The router
        takes a question asking a field, or counting such records, to the database."""
        describer = self.sql_database.describer
        return rows_asked(question, [describer.table(t) for t in self.tables], self.values)

    def column_notes(self, sql: str) -> str:
        """What the schema's comments say of a statement's result columns (:func:`answering.column_notes`)."""
        return column_notes(sql, self.sql_database.describer)

    def respond(
        self, outcome: SQLOutcome, *, streaming: Optional[bool] = None, clock: Optional[Stopwatch] = None
    ) -> RESPONSE_TYPE:
        """The response to an outcome (:func:`kb.engines.sql.answering.respond`). ``clock``: the one
        :meth:`compute` ran on (the answer's total time)."""
        arguments = partial(answer_arguments, outcome, self.row_limit, self.sql_database.describer)
        streaming = self.streaming if streaming is None else streaming
        return respond(self.llm, outcome, arguments, streaming, Stopwatch() if clock is None else clock)

    def close(self) -> None:
        """Release the read-only account's connections (the engine cannot run SQL afterwards)."""
        self.readonly.dispose()

    def custom_query(self, query_str: str) -> RESPONSE_TYPE:
        clock = Stopwatch()
        return self.respond(self.compute(query_str, clock), clock=clock)
