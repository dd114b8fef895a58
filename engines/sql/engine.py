"""Questions about the business database: LlamaIndex writes the SQL, kb decides whether it runs.

LlamaIndex's ``NLSQLTableQueryEngine`` (with a table retriever when the tables do not fit a
prompt: :func:`table_retriever`) writes the first statement in ``sql_only`` mode: it does not execute it
(LlamaIndex's ``SQLDatabase.run_sql`` would run anything, ``DROP TABLE`` included). Its schema is
kb's description of the tables (:mod:`kb.engines.sql.schema`) and its prompt kb's, with MariaDB's
date functions spelled out.

The prompt also says where the values the question names live and how the data spells them
(:mod:`kb.engines.sql.values`: "'Hamburg' is a value of customers.city").

Every statement then passes the read-only guard and runs through a SELECT-only account in a READ
ONLY transaction with a time limit and a row cap. When the server rejects it (unknown column, bad
join, syntax) or the guard cannot parse it, the model gets the error and the schema again and
writes a correction, up to ``max_attempts`` statements of its own in all, as LangChain's SQL agent
and Vanna do; where the server's error and the schema alone decide the repair (a join along the
foreign keys for an unknown column), kb writes it (:mod:`kb.engines.sql.repairs`), and such a repair
does not use up one of the model's attempts. A statement that runs clean is answered as the
model wrote it; one that runs with a defect no question could want (a join pairing keys that do
not belong together, a value its column cannot hold, a code guessed for a value the question names,
figures of groups that do not say whose they are, ids where the question asks which rows, a history
read without its current row where the present is asked, whole days where minutes are asked:
:mod:`kb.engines.sql.checks`), or on values the
server warned it could not convert (``YEAR()`` of a flight number, a name summed: MariaDB's warnings 1292 and 1366),
is given back to the model like a failed one. When no correction runs clean, the rescue step below
may answer with a statement kb wrote for the defect where one of the model's rescue samples gives
the same rows (alone only with ``rewrites_answer``; the answer then says "these rows are kb's
rewrite of a statement with a defect", ``rewrite_answered`` in its votes); otherwise the first
statement that ran answers as written. Each attempt passes the guard, and the response lists every attempt
with its error. A statement the guard refuses for what it would do (a write, a lock, a file) is not
retried. An empty result is an answer ("there were no orders in 2019"), not a failure.

**Rescue samples.** When neither the statement nor any correction runs clean (every one failed or
ran with a defect) and the last failure is one a rewrite may mend, the model writes up to
``rescue_samples`` more statements at ``rescue_temperature`` (the 1.5B model writes its greedy
mistake again at low temperature, and again when shown it in a correction prompt): for the
question's own prompt; when none of those runs clean and a statement ran with a defect, as many
more for the correction prompt that shows that statement and its defect (whose message may end with
the statement to write, which the greedy correction ignored: ``StatusID = 'Cancelled'`` written
twice beside ``StatusID = 4``). Each is checked, run and checked for defects like a candidate;
the first rows two of them agree on answer, else the first that ran clean; when none does, the
first statement that ran answers as written, as before. The statements kb's defect messages wrote
(:class:`kb.engines.sql.checks.Defect`'s ``rewrite``), which the model's corrections did not take
up, are run and checked first, and the first that runs clean is a voice among the samples: the
first sample that gives its rows answers with the rewrite (``rewrite_answered`` in the votes: the
model's own statement agreed with it by rows). A rewrite no sample agrees with answers only with
``rewrites_answer`` (``sql.rewrites_answer: true``: then before a lone sample, and before the
statement with the defect). A question whose first statement runs clean costs nothing more.
With ``candidates`` above 1 as well, a question that went to rescue samples is not voted on again.

**Execution-guided selection.** With ``candidates`` above 1 (and, under ``candidates_when="doubt"``,
the default, only for a question whose greedy statement is in doubt: it failed, was refused, ran with
a defect or a conversion warning, or gave no rows), the model also writes sampled statements
(temperature ``sample_temperature``, each its own seed) for the same prompt, so a prompt cache makes
each cost only its own tokens; with ``candidate_source="prompts"`` the first two are instead the
greedy statements of two other prompts (kb's rules over LlamaIndex's table description, LlamaIndex's
prompt over kb's), whose mistakes differ from the greedy one's more than its samples' do, and a
candidate that gives a group's rows beside extra columns votes for that group. Every candidate passes
the guard and runs read-only; candidates are grouped by their rows, and the answer comes from the
largest group (the greedy statement's group wins a tie). Candidates the guard refuses, the server rejects, or that have a defect or a conversion
warning are not counted. Writing stops as soon as no remaining candidate could change the vote. The response says how many agreed.

``SQLEngine`` is a LlamaIndex ``CustomQueryEngine``: its ``Response`` carries the SQL, rows and
attempts in its metadata (:mod:`kb.engines.answer`).
"""

from __future__ import annotations

import decimal
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from itertools import combinations
from typing import Any, Literal, Optional, Protocol, runtime_checkable

from llama_index.core import MockEmbedding, PromptTemplate, SQLDatabase
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.response.schema import RESPONSE_TYPE, Response, StreamingResponse
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms import LLM
from llama_index.core.objects import ObjectIndex, ObjectRetriever, SQLTableNodeMapping, SQLTableSchema
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.query_engine import CustomQueryEngine, NLSQLTableQueryEngine
from llama_index.core.schema import NodeWithScore, QueryBundle
from sqlglot import exp

from kb.engines.answer import Attempt, timed_stream
from kb.engines.answer_rows import ROWS_SHOWN, left_out_note, rows_shown, with_left_out_note
from kb.engines.context import token_counter
from kb.engines.sql.checks import Defect, defects
from kb.engines.sql.guard import CheckedSQL, ReadOnlyGuard, SQLRefused, clean, parse_statement
from kb.engines.sql.repairs import StatementRepairs
from kb.engines.sql.schema import DescribedSQLDatabase, StatementScope
from kb.engines.sql.ties import Tie, tie_probe, with_ties
from kb.engines.sql.values import RowsAsked, ValueIndex, rows_asked
from kb.engines.timing import Stopwatch
from kb.stores.connection import MariaDBConnection
from kb.stores.errors import DatabaseUnavailable, is_database_down

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
NOT_RETRIED = ("max_statement_time", "Query execution was interrupted")  # a slow query stays slow
WRITERS_KEPT = 16  # writers with their own prompt or sampling kept for later questions (SQLEngine._writers)
CandidateSource = Literal["samples", "prompts"]  # SQLEngine.candidate_source
CandidatesWhen = Literal["always", "doubt"]  # SQLEngine.candidates_when
ExamplesWhen = Literal["always", "doubt"]  # SQLEngine.examples_when
ChecksRun = Literal["all", "statement", "none"]  # SQLEngine.checks
Verdict = Literal["clean", "mendable", "final"]  # how a question's attempts ended (SQLEngine._attempts)
RAN_WITH_DEFECT = "it ran, but "  # how an attempt that ran with a defect (kb.engines.sql.checks) is marked
# The server's warnings that a value could not be read as the type an expression needs ("Incorrect
# datetime value: 'KB121' for column flights.flightNumber", "Truncated incorrect DOUBLE value: 'Ines'"):
# the statement ran on values the server replaced by NULL or 0, so it answers another question.
CONVERSION_WARNINGS = (1292, 1366)


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

    try:
        return parse_statement(clean(sql)).sql(dialect="mysql")
    except Exception:  # not parseable: compare the text
        return " ".join(clean(sql).split())


class ApprovedExample(Protocol):
    """An approved question/SQL pair for this database (:class:`kb.business_database.examples.SQLExample`)."""

    @property
    def question(self) -> str: ...

    @property
    def sql(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


# The approved pairs closest to a question, least similar first (SQLEngine.examples).
ExamplesFor = Callable[[str], Sequence[ApprovedExample]]

# Tokens of approved examples one prompt may hold: the most similar are kept while they fit. The
# schema's budget (schema_token_budget) leaves this much room when the engine has examples.
EXAMPLES_TOKENS = 600


def format_examples(
    examples: Sequence[ApprovedExample], guard: ReadOnlyGuard, count_tokens: Callable[[str], int]
) -> tuple[str, list[tuple[ApprovedExample, str]]]:
    """The examples as the prompt shows them (the last one nearest the question), and those shown
    with their statement as the prompt shows it (the guard's rendering):
    the most similar (the last) first while they fit in ``EXAMPLES_TOKENS``; one the guard refuses
    now (``sql.tables`` narrowed after it was approved: ``kb sql examples check`` lists it) is left out."""
    kept: list[tuple[ApprovedExample, str, str]] = []
    used = 0
    for example in reversed(examples):
        try:
            checked = guard.check(example.sql)
        except SQLRefused:
            continue
        line = f"Question: {example.question}\nSQL: {checked.sql}\n"
        size = count_tokens(line)
        if used + size > EXAMPLES_TOKENS:
            continue
        kept.insert(0, (example, checked.sql, line))
        used += size
    if not kept:
        return "", []
    text = "Examples of good SQL for these tables:\n" + "\n".join(line for _, _, line in kept) + "\n"
    return text, [(example, sql) for example, sql, _ in kept]


@dataclass(frozen=True)
class Asked:
    """A question as the prompts show it: the hint line right above it (value linking, shared
    names) and the approved examples before it (:func:`format_examples`; "": none)."""

    question: str
    hint: str = ""
    examples_text: str = ""

    @property
    def text(self) -> str:
        """The question with its hint line, what a prompt's ``{query_str}`` holds."""
        return f"{self.hint}\n{self.question}" if self.hint else self.question


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


def distinct_column_names(names: Sequence[str]) -> list[str]:
    """A result's column names, each once: a name that repeats one before it gets ``_2``, ``_3`` ...
    (``d.LastName, s.LastName`` of a self-join are ``LastName`` and ``LastName_2``), so that a row as a
    dict keeps every column; the server names a column by its expression or alias only."""
    taken: set[str] = set()
    distinct = []
    for name in names:
        unique, n = name, 1
        while unique.lower() in taken:
            n += 1
            unique = f"{name}_{n}"
        taken.add(unique.lower())
        distinct.append(unique)
    return distinct


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


def _grouped(groups: list[list[Statement]], statement: Statement, narrower_wins: bool = False) -> list[Statement]:
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


def _vote_standing(group: list[Statement], formed: int, greedy: Optional[Statement]) -> tuple[int, bool, int]:
    """A group's standing in execution-guided selection, the highest chosen: its size; of equals, the
    greedy statement's group (the one it formed: a group's first statement is never None, so with no
    greedy statement no group is its); then the one formed first (``formed``: its place among them)."""
    return len(group), bool(group) and group[0] is greedy, -formed


def _vote_winner(groups: list[list[Statement]], greedy: Optional[Statement]) -> int:
    """The place among ``groups`` of the group the vote chooses (:func:`_vote_standing`)."""
    return max(range(len(groups)), key=lambda formed: _vote_standing(groups[formed], formed, greedy))


def _vote_settled(groups: list[list[Statement]], greedy: Optional[Statement], left: int) -> bool:
    """Whether ``left`` more candidates cannot change the group the vote chooses: no other group,
    nor a new one, would stand higher if they all joined it. A candidate written then could change
    the count of votes, never the answer."""
    if not groups:
        return False
    winner = _vote_winner(groups, greedy)
    standing = _vote_standing(groups[winner], winner, greedy)
    for formed, challenger in enumerate([*groups, []]):
        size, is_greedy, first = _vote_standing(challenger, formed, greedy)
        if formed != winner and (size + left, is_greedy, first) > standing:
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
class Statement:
    """One statement that was run, and what it gave."""

    sql: str
    rows: Optional[list[dict[str, Any]]] = None  # None: it did not run (refused, rejected)
    truncated: bool = False
    error: Optional[str] = None
    warning: Optional[str] = None  # the server's first warning that it could not convert a value
    repaired_by_kb: bool = False  # kb added a join the server's error asked for (StatementRepairs)


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
    first_statement: Optional[Statement] = None  # the model's greedy statement as written, and its rows
    votes: Optional[Votes] = None  # with several candidates: how they agreed
    question_hint: str = ""  # the line the prompt shows right above the question: value linking, shared names
    examples: list[dict[str, Any]] = field(default_factory=list)  # the approved pairs the prompts showed
    example_statements: list[tuple[str, str]] = field(default_factory=list)  # their (question, SQL as shown)
    rewrites: list[str] = field(default_factory=list)  # statements kb's defect messages wrote (Defect.rewrite)
    timings: dict[str, float] = field(default_factory=dict)

    def text_without_llm(self) -> Optional[str]:
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
            "candidates": self.votes.as_dict() if self.votes else None,
            "sql_examples": list(self.examples),
            "timings": dict(self.timings),
        }


def _beyond_doubt(outcome: SQLOutcome, chosen: Optional[Statement], verdict: Verdict) -> bool:
    """Whether the greedy statement answers without candidates under ``candidates_when="doubt"``: it
    ran clean as written (no correction, no defect, no conversion warning) and gave rows."""
    return verdict == "clean" and len(outcome.attempts) == 1 and chosen is not None and bool(chosen.rows)


@runtime_checkable
class PrefixCachingLLM(Protocol):
    """An LLM that can evaluate the beginning of a prompt into its prompt cache without answering
    (:meth:`kb.models.local_llm.LocalLlamaCPP.prefilling_until`)."""

    def prefilling_until(self, marker: str) -> AbstractContextManager[None]: ...


# Stands for the question while the prompts' shared beginning is evaluated (SQLEngine.warm_prompt_cache).
QUESTION_MARK = "<<the question>>"

# Tokens kept free in every SQL prompt beyond its rules, examples and schema: the question with its
# hint line, and in a correction prompt the failed statement with its error.
PROMPT_ROOM_TOKENS = 512


def schema_token_budget(llm: LLM, with_examples: bool) -> int:
    """How many tokens of table descriptions a prompt to ``llm`` may hold: its context window less
    the rules, ``EXAMPLES_TOKENS`` when there are approved examples, its answer (``num_output``) and
    ``PROMPT_ROOM_TOKENS``, as ``llm`` counts tokens (:func:`kb.engines.context.token_counter`)."""
    metadata = llm.metadata
    rules = TEXT_TO_SQL_PROMPT.format(dialect="mysql", schema="", examples="", query_str="")
    room = PROMPT_ROOM_TOKENS + (EXAMPLES_TOKENS if with_examples else 0)
    return metadata.context_window - token_counter(llm)(rules) - metadata.num_output - room


class TablesThatFit(BaseNodePostprocessor):
    """The retrieved tables a prompt shows: the most similar first while their descriptions fit
    ``token_budget`` (the most similar always), then put in the schema's order (``tables``). In the
    schema's order, two questions whose tables begin alike share the prompt up to the first table in
    which they differ, and llama.cpp's prompt cache evaluates only the rest."""

    tables: list[str]
    table_tokens: dict[str, int]
    token_budget: int

    @classmethod
    def class_name(cls) -> str:
        return "TablesThatFit"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: Optional[QueryBundle] = None
    ) -> list[NodeWithScore]:
        kept: list[NodeWithScore] = []
        used = 0
        for node in nodes:
            size = self.table_tokens.get(node.node.metadata.get("name", ""), 0)
            if kept and used + size > self.token_budget:
                continue  # a smaller, less similar table may still fit
            kept.append(node)
            used += size
        position = {name: i for i, name in enumerate(self.tables)}
        return sorted(kept, key=lambda node: position.get(node.node.metadata.get("name", ""), len(position)))


def table_retriever(
    sql_database: SQLDatabase,
    tables: list[str],
    max_tables_in_prompt: int,
    embed_model: Optional[Callable[[], BaseEmbedding]],
    count_tokens: Callable[[str], int],
    token_budget: int,
) -> Optional[ObjectRetriever[SQLTableSchema]]:
    """When there are more than ``max_tables_in_prompt`` tables, or their descriptions in
    ``sql_database`` take more than ``token_budget`` tokens as ``count_tokens`` counts them (and
    there is an ``embed_model``): a
    retriever of the tables closest to a question that fit (:class:`TablesThatFit`), over an
    embedding index of their descriptions; None: every prompt shows all tables. Any writer may use
    it: it gives table names, which each writer describes in its own way."""
    if embed_model is None:
        return None
    table_tokens = {t: count_tokens(sql_database.get_single_table_info(t)) for t in tables}
    if len(tables) <= max_tables_in_prompt and sum(table_tokens.values()) <= token_budget:
        return None
    from llama_index.core import VectorStoreIndex

    object_index = ObjectIndex.from_objects(
        [SQLTableSchema(table_name=t) for t in tables],
        SQLTableNodeMapping(sql_database),
        index_cls=VectorStoreIndex,
        embed_model=embed_model(),
    )
    return object_index.as_retriever(
        similarity_top_k=min(max_tables_in_prompt, len(tables)),
        node_postprocessors=[TablesThatFit(tables=tables, table_tokens=table_tokens, token_budget=token_budget)],
    )


# LlamaIndex's own text-to-SQL prompt asks for "SQLQuery: ... SQLResult: ... Answer: ..." lines, and a
# model goes on to invent the result and the answer (about 120 tokens a time, against 30 for the
# statement); the writer keeps only what comes before "SQLResult:", so generation stops there.
SQL_WRITER_STOP = "SQLResult:"


def stopping_at(llm: LLM, text: str) -> LLM:
    """A copy of ``llm`` whose generations end before ``text``, where it has a ``stop`` field (kb's
    local model); else ``llm`` itself: a provider's ``stop`` option is not set for it, since some API
    models refuse the parameter, and they write the rest in a fraction of a local model's time."""
    if "stop" not in type(llm).model_fields:
        return llm
    stops: list[str] = getattr(llm, "stop") or []  # noqa: B009 (a field of llm's class, not of LLM)
    return llm.model_copy(update={"stop": [*stops, text]})


def _sql_writer(
    llm: LLM,
    sql_database: SQLDatabase,
    tables: list[str],
    tables_retriever: Optional[ObjectRetriever[SQLTableSchema]],
    examples_text: str = "",
    prompt: Optional[PromptTemplate] = None,
) -> NLSQLTableQueryEngine:
    """LlamaIndex's NLSQL engine in ``sql_only`` mode, with kb's prompt (or ``prompt``): all tables in
    the prompt, or those ``tables_retriever`` retrieves for each question."""
    return NLSQLTableQueryEngine(
        sql_database=sql_database,
        tables=tables,
        table_retriever=tables_retriever,
        # LlamaIndex's default embedding model is OpenAI's; its SQL writer uses none outside pgvector.
        embed_model=MockEmbedding(embed_dim=1),
        llm=stopping_at(llm, SQL_WRITER_STOP),
        sql_only=True,
        synthesize_response=False,
        text_to_sql_prompt=prompt or TEXT_TO_SQL_PROMPT.partial_format(examples=examples_text),
    )


class SQLEngine(CustomQueryEngine):
    """Question -> guarded SQL (corrected on error) -> rows -> answer, as a LlamaIndex query engine."""

    llm: LLM
    readonly: MariaDBConnection
    database: str
    tables: list[str]
    row_limit: int = Field(default=200, ge=1)
    timeout_s: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(
        default=3,
        ge=1,
        description="statements the model writes per question, corrections included (kb's repairs besides)",
    )
    candidates: int = Field(
        default=3, ge=1, description="statements written per question and voted on by their rows (1: greedy only)"
    )
    candidates_when: CandidatesWhen = Field(
        default="doubt",
        description="when the candidates after the greedy statement are written: always, or only on doubt "
        "(the greedy statement failed, was refused, ran with a defect or gave no rows)",
    )
    sample_temperature: float = Field(default=0.3, gt=0, description="temperature of the candidates after the first")
    candidate_source: CandidateSource = Field(
        default="prompts",
        description="the candidates after the greedy one: samples of kb's prompt, or first the greedy "
        "statements of two other prompts (kb's rules over LlamaIndex's table description, then "
        "LlamaIndex's text-to-SQL prompt over kb's: _other_prompt_writers)",
    )
    rescue_samples: int = Field(
        default=4, ge=0, description="sampled statements written when no attempt ran clean (0: none)"
    )
    rescue_temperature: float = Field(default=1.0, gt=0, description="temperature of those rescue samples")
    rewrites_answer: bool = Field(
        default=False,
        description="whether a statement kb wrote for a defect may answer when no statement of the model's "
        "gives its rows (False: it answers only where one of the model's rescue samples agrees with it)",
    )
    checks: ChecksRun = Field(
        default="all",
        description="which checks a statement that ran goes through (problems): all; statement (those that "
        "need only the statement, the schema and the rows: no check reads the question); none (the "
        "statement answers as the model wrote it, once the guard let it run; kb's repairs of statements "
        "the server rejected still apply)",
    )
    skip_checks: frozenset[str] = Field(
        default=frozenset(), description="checks switched off by name (kb.engines.sql.checks.CHECKS)"
    )
    streaming: bool = False

    guard: ReadOnlyGuard = Field(exclude=True, description="checks every statement before it runs")
    sql_database: DescribedSQLDatabase = Field(exclude=True, description="the tables, as the prompt shows them")
    repairs: StatementRepairs = Field(exclude=True, description="what kb mends in a statement itself")
    writer: Any = Field(exclude=True, description="writes the first statement: LlamaIndex's NLSQL engine, sql_only")
    examples: Optional[ExamplesFor] = Field(
        default=None,
        exclude=True,
        description="the approved question/SQL pairs closest to a question, shown before it (None: none)",
    )
    values: Optional[ValueIndex] = Field(default=None, exclude=True, description="value linking (None: off)")
    examples_when: ExamplesWhen = Field(
        default="always",
        description="which prompts show the approved examples: every one (always), or all but the greedy "
        "statement's (doubt: its corrections, the candidates and the rescue samples)",
    )

    _tables_retriever: Optional[ObjectRetriever[SQLTableSchema]] = PrivateAttr(default=None)  # shared by writers
    # Writers other than the greedy one without examples, as (writer, its examples), by (seed,
    # temperature, examples); the other prompts' writers by examples. Those with examples differ from
    # question to question: the oldest are let go (SQLEngine._kept).
    _writers: dict[tuple[Optional[int], float, str], tuple[Any, str]] = PrivateAttr(default_factory=dict)
    _prompt_writers: dict[str, tuple[list[Any], str]] = PrivateAttr(default_factory=dict)
    _writers_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(
        self,
        llm: LLM,
        readonly: MariaDBConnection,
        *,
        database: str,
        tables: Sequence[str],
        max_tables_in_prompt: int = 40,
        embed_model: Optional[Callable[[], BaseEmbedding]] = None,
        value_linking: bool = True,
        **kwargs: Any,
    ) -> None:
        """``embed_model`` (a function returning one, so that it is loaded only when needed) picks the
        tables of each question when there are more than ``max_tables_in_prompt`` or their
        descriptions do not fit the LLM's context window (:func:`schema_token_budget`). ``examples``
        (a keyword argument, a field) gives the approved (question, SQL) pairs closest to a question,
        shown to the model after the rules and before the question (Vanna's and Dataherald's idea:
        what the schema cannot say, such as which column a verb means), so that the schema's prompt
        state is shared by every question. ``value_linking`` tells the model where the values the
        question names are stored (:mod:`kb.engines.sql.values`)."""
        tables = list(tables)
        sql_database = DescribedSQLDatabase(readonly, database, tables)
        guard = ReadOnlyGuard(tables, database)
        retriever = table_retriever(
            sql_database,
            tables,
            max_tables_in_prompt,
            embed_model,
            token_counter(llm),
            schema_token_budget(llm, kwargs.get("examples") is not None),
        )
        super().__init__(
            llm=llm,
            readonly=readonly,
            database=database,
            tables=tables,
            guard=guard,
            sql_database=sql_database,
            repairs=StatementRepairs(sql_database.describer),
            writer=_sql_writer(llm, sql_database, tables, retriever),
            values=ValueIndex(readonly, database, tables) if value_linking else None,
            **kwargs,
        )
        self._tables_retriever = retriever

    def warm_prompt_cache(self) -> int:
        """Evaluate the beginning every question's prompts share (the dialect, the schema and the rules:
        everything before the examples and the question) into the LLM's prompt cache, pinned there, so
        that the first question pays only for its own tokens; how many prompts were warmed: kb's (its
        corrections and samples begin alike) and, with candidates from ``candidate_source="prompts"``,
        the other prompts' (written for a question in doubt, which would otherwise pay for their
        beginnings). Nothing is done for an LLM without a prompt cache of its own
        (:class:`PrefixCachingLLM`: an API model's provider caches on its side), nor with a table
        retriever (each question's tables, hence its prompt, differ)."""
        warmed = self._warm([self.writer])
        if warmed and self.candidates > 1 and self.candidate_source == "prompts":
            warmed += len(self._other_prompt_writers())
        return warmed

    def _warm(self, writers: Sequence[Any]) -> int:
        """:meth:`warm_prompt_cache` for ``writers``: how many were warmed (0 when nothing can be)."""
        if not isinstance(self.llm, PrefixCachingLLM) or self._tables_retriever is not None:
            return 0
        with self.llm.prefilling_until(QUESTION_MARK):
            for writer in writers:
                writer.query(QUESTION_MARK)
        return len(writers)

    def schema_for(self, question: str) -> str:
        """The schema the prompts for ``question`` show, as kb's own writer shows it: every table, or
        with a table retriever (the tables do not fit one prompt) the tables it gives for the question."""
        shown = (
            self.tables
            if self._tables_retriever is None
            else [t.table_name for t in self._tables_retriever.retrieve(question)]
        )
        return "\n\n".join(self.sql_database.get_single_table_info(t) for t in shown)

    # -- writing and running SQL -----------------------------------------------------------------------
    def _sampled_llm(self, seed: int, temperature: float) -> LLM:
        """A copy of the LLM that samples at ``temperature`` with its own seed (where it has those fields)."""
        fields = type(self.llm).model_fields
        update = {k: v for k, v in (("temperature", temperature), ("seed", seed)) if k in fields}
        return self.llm.model_copy(update=update)

    def _writer(self, examples_text: str, seed: Optional[int] = None, temperature: float = 0.0) -> Any:
        """kb's writer for prompts that show ``examples_text``: greedy, or on :meth:`_sampled_llm`
        with ``seed`` at ``temperature``."""
        if seed is None and not examples_text:
            return self.writer
        llm = self.llm if seed is None else self._sampled_llm(seed, temperature)
        return self._kept(
            self._writers,
            (seed, temperature, examples_text),
            examples_text,
            lambda: _sql_writer(llm, self.sql_database, self.tables, self._tables_retriever, examples_text),
        )

    def _kept(self, cache: dict[Any, Any], key: Any, examples_text: str, build: Callable[[], Any]) -> Any:
        """``cache[key]``, built first when missing. Of the entries for prompts with examples (which
        differ from question to question), the oldest are let go beyond ``WRITERS_KEPT``; the others
        (a few seeds and temperatures) stay. Concurrent questions share the engine: one lock."""
        with self._writers_lock:
            if key not in cache:
                if examples_text:
                    with_examples = [k for k in cache if k != key and cache[k][1]]
                    for old in with_examples[: max(0, len(with_examples) - WRITERS_KEPT + 1)]:
                        del cache[old]
                cache[key] = (build(), examples_text)
            return cache[key][0]

    def _other_prompt_writers(self, examples_text: str = "") -> list[Any]:
        """Greedy writers on other prompts than kb's, for ``candidate_source="prompts"``: kb's rules
        over LlamaIndex's own description of the tables, then LlamaIndex's default text-to-SQL prompt
        over kb's description. Each shares one half with kb's prompt and nothing with the other, so
        the two outvote the greedy statement only when prompts that differ in both halves agree. A
        small model's greedy mistakes differ from prompt to prompt, where its samples at a low
        temperature repeat the greedy statement's. The first shows ``examples_text`` as kb's does;
        LlamaIndex's prompt has no place for examples."""
        from llama_index.core.prompts.default_prompts import DEFAULT_TEXT_TO_SQL_PROMPT

        def build() -> list[Any]:
            own = SQLDatabase(self.readonly.engine, include_tables=self.tables)
            writers = [
                _sql_writer(self.llm, own, self.tables, self._tables_retriever, examples_text),
                _sql_writer(
                    self.llm, self.sql_database, self.tables, self._tables_retriever, prompt=DEFAULT_TEXT_TO_SQL_PROMPT
                ),
            ]
            if not examples_text:
                self._warm(writers)  # their beginnings pinned in the prompt cache, as kb's
            return writers

        writers: list[Any] = self._kept(self._prompt_writers, examples_text, examples_text, build)
        return writers

    def write_sql(
        self,
        asked: Asked | str,
        seed: Optional[int] = None,
        temperature: Optional[float] = None,
        writer: Any = None,
    ) -> str:
        """The statement the LLM proposes for ``asked`` (a question, or one with its hint line and
        examples; not run, not yet checked): greedy, or sampled with ``seed`` at ``temperature``
        (``sample_temperature`` by default), or ``writer``'s."""
        asked = Asked(asked) if isinstance(asked, str) else asked
        sampling = self.sample_temperature if temperature is None else temperature
        if writer is None:
            writer = self._writer(asked.examples_text, seed, sampling)
        response = writer.query(asked.text)
        return str(response.metadata.get("sql_query") or response.response or "")

    def _model_correction(self, asked: Asked, failed: Attempt, tables: Sequence[str], tried: Sequence[str]) -> str:
        """The LLM's rewrite of a failed statement, given the error, the schema again and, for an
        unknown column or table, where the column is and how to join to it. A small model often
        writes the failed statement again: then it is asked once more, sampling (temperature 0.8),
        for another."""
        tried_forms = {_normalized(sql) for sql in tried}
        prompt = self._correction_prompt(asked, failed, tables)
        rewrite = str(self.llm.complete(prompt).text)
        if _normalized(rewrite) in tried_forms:
            try:
                rewrite = str(self.llm.complete(prompt, temperature=0.8).text)
            except TypeError:  # an LLM whose complete() takes no temperature: keep the first rewrite
                pass
        return rewrite

    def _kb_repair(self, failed: Attempt, tried: Sequence[str]) -> Optional[str]:
        """kb's own rewrite of a statement the server refused (:meth:`StatementRepairs.add_missing_join`),
        when there is one that has not been tried; no LLM call."""
        joined = self.repairs.add_missing_join(failed.sql, failed.error or "")
        if joined and _normalized(joined) not in {_normalized(sql) for sql in tried}:
            return joined
        return None

    def _correction_prompt(self, asked: Asked, failed: Attempt, tables: Sequence[str]) -> str:
        """The prompt that asks for a rewrite of ``failed``: the schema, the question, the statement, its
        error and, for an unknown column or table (:meth:`StatementRepairs.hint_for`), where to find it."""
        advice = self.repairs.hint_for(failed.error or "", tables, failed.sql)
        return CORRECTION_PROMPT.format(
            dialect=self.sql_database.dialect,
            schema=self.schema_for(asked.text),
            query_str=asked.text,
            sql=failed.sql,
            error=failed.error,
            hint=f"Hint: {advice}\n" if advice else "",
            examples=asked.examples_text,
        )

    def run(self, checked: CheckedSQL) -> Statement:
        """A checked statement run read-only: its rows (at most ``row_limit``; ``truncated`` when there
        were more) and the server's first conversion warning (``CONVERSION_WARNINGS``); the server's
        error is raised."""
        warning = None
        with self.readonly.cursor() as cur:
            cur.execute("START TRANSACTION READ ONLY")
            try:
                cur.execute(f"SET STATEMENT max_statement_time = {float(self.timeout_s)} FOR {checked.sql}")
                columns = distinct_column_names([d[0] for d in cur.description or []])
                fetched = cur.fetchmany(self.row_limit + 1)
                if getattr(cur, "warnings", 0):
                    cur.execute("SHOW WARNINGS LIMIT 5")
                    warning = next((str(m) for _, code, m in cur.fetchall() if code in CONVERSION_WARNINGS), None)
            finally:
                cur.execute("ROLLBACK")
        rows = [{c: _plain(v) for c, v in zip(columns, row)} for row in fetched[: self.row_limit]]
        return Statement(checked.sql, rows, len(fetched) > self.row_limit, warning=warning)

    def verify_example(self, sql: str) -> str:
        """``sql`` as the guard normalises it, once it has run read-only on the business database (an
        approved example must be a statement kb would run); raises :class:`SQLRefused` with the
        guard's reason, or ``ValueError`` with the server's error."""
        checked = self.guard.check(sql)
        ran = self._run_checked(checked)
        if ran.rows is None:
            raise ValueError(f"the database cannot run it: {ran.error}")
        return checked.sql

    def problems(self, ran: Statement, question: str) -> list[Defect]:
        """Why a statement that ran answers another question than it seems to: its defects
        (:mod:`kb.engines.sql.checks`: of the statement, of its rows, of the server's conversion warning,
        ids where ``question`` asks which rows); empty: none found. ``checks`` says which run: with
        ``statement`` the question is not given to them (no check reads its words), with ``none``
        nothing is checked; ``skip_checks`` are never run."""
        if self.checks == "none":
            return []
        return defects(
            ran.sql,
            self.sql_database.describer,
            rows=ran.rows or [],
            question=question if self.checks == "all" else "",
            skip=self.skip_checks,
            warning=ran.warning or "",
        )

    def _run_checked(self, checked: CheckedSQL) -> Statement:
        """Run a checked statement: its rows, or the server's error (a server that is down is raised)."""
        try:
            return self.run(checked)
        except DatabaseUnavailable:
            raise  # the server is down: nothing a rewrite of the statement could change
        except Exception as exc:  # the server refused it: unknown column, time limit, no privilege...
            error = str(getattr(exc, "orig", exc)).splitlines()[0][:300]
            if is_database_down(exc):
                raise DatabaseUnavailable(
                    f"the business database at {self.readonly.where} stopped answering: {error}"
                ) from None
            return Statement(checked.sql, error=error)

    def _tie(self, checked: CheckedSQL, rows: list[dict[str, Any]]) -> Optional[Tie]:
        """Rows a ``LIMIT`` cut although they tie with its last row (:mod:`kb.engines.sql.ties`)."""
        probe = tie_probe(checked.sql)
        if probe is None or len(rows) < probe[1]:
            return None
        try:
            probe_rows = self.run(self.guard.check(probe[0])).rows or []
        except Exception:  # kb's own second look failed: the statement's rows stand as they are
            logging.getLogger(__name__).debug("tie probe failed: %s", probe[0], exc_info=True)
            return None
        return with_ties(rows, probe_rows, probe[1], probe[2])

    def _attempts(self, asked: Asked, outcome: SQLOutcome, clock: Stopwatch) -> tuple[Optional[Statement], Verdict]:
        """The greedy statement and its corrections, until one runs without a defect (at most
        ``max_attempts`` written by the model, kb's own repairs besides, and no further once a
        correction repeats a statement already tried), and how
        they ended. The statement is the one that ran clean ("clean"), else the first that ran with a
        defect (:mod:`kb.engines.sql.checks`: corrected like a failed one), else None; "final" when
        the last failure is one no rewrite mends (a refusal of what the statement would do, a time
        limit), else "mendable". Writing is the clock's step "generation", running "query"."""
        used_tables: tuple[str, ...] = ()
        ran_with_defect: Optional[Statement] = None
        written_by_model = 0
        # kb's repairs cost no LLM call and are never repeated, so they do not use up the model's attempts;
        # the bound on all statements only guards against a repair that keeps producing new statements.
        for number in range(2 * self.max_attempts):
            if written_by_model == self.max_attempts:
                break
            tried = [a.sql for a in outcome.attempts]
            repaired = self._kb_repair(outcome.attempts[-1], tried) if number else None
            with clock.step("generation"):
                if repaired is not None:
                    proposed = repaired
                else:
                    written_by_model += 1
                    proposed = (
                        self.write_sql(asked if self.examples_when == "always" else replace(asked, examples_text=""))
                        if number == 0
                        else self._model_correction(asked, outcome.attempts[-1], used_tables, tried)
                    )
            if number and _normalized(proposed) in {_normalized(sql) for sql in tried}:
                break  # the model wrote a statement already tried (even sampling): running it again changes nothing
            attempt = Attempt(sql=clean(proposed) or proposed, written_by="kb" if repaired is not None else "model")
            outcome.attempts.append(attempt)
            try:
                checked = self.guard.check(proposed)
            except SQLRefused as refusal:
                attempt.error = f"refused by the guard: {refusal}"
                outcome.refused, outcome.refusal_reason = True, str(refusal)
                if number == 0:
                    outcome.first_statement = Statement(attempt.sql, error=attempt.error)
                if not refusal.retryable:
                    return None, "final"
                continue
            attempt.sql, used_tables = checked.sql, checked.tables
            outcome.refused, outcome.refusal_reason = False, None
            with clock.step("query"):
                ran = self._run_checked(checked)
            if number == 0:
                outcome.first_statement = ran
            if ran.rows is not None:
                found = self.problems(ran, asked.question)
                if not found:
                    return ran, "clean"
                attempt.error = RAN_WITH_DEFECT + found[0]
                rewrite = found[0].rewrite
                if rewrite and rewrite not in outcome.rewrites:
                    outcome.rewrites.append(rewrite)
                ran_with_defect = ran_with_defect or ran
                continue
            attempt.error = ran.error
            if any(marker in (ran.error or "") for marker in NOT_RETRIED):
                return ran_with_defect, "final"
        return ran_with_defect, "mendable"

    def _rescue(
        self, asked: Asked, mending: Optional[Attempt] = None, rewrites: Sequence[str] = ()
    ) -> tuple[Optional[Statement], Votes]:
        """For a question none of whose attempts ran clean: up to ``rescue_samples`` statements sampled
        at ``rescue_temperature`` (a small model repeats its greedy mistake at low temperature) for
        the question's own prompt, each checked, run and checked for defects like a candidate. When
        none of them runs clean and there is a statement to mend (``mending``, the attempt that ran
        with a defect and would otherwise answer; when no attempt ran, the first of these samples
        that ran with a defect), up to ``rescue_samples`` more for the correction prompt that shows
        it with its defect (whose message may carry the statement to write). The first rows two of
        them agree on answer; when none agree, the first that ran clean; None when none did.

        ``rewrites`` (the statements kb's defect messages wrote, which the model's corrections did not
        take up) are run and checked first, and the first that runs clean is a voice among the samples:
        the first sample that gives its rows answers with it. When no sample agrees with it, it answers
        only with ``rewrites_answer`` (before a lone sample: one sample at this temperature is a guess,
        the rewrite mends the defect found); otherwise it is left out, as if kb had written nothing."""
        groups: list[list[Statement]] = []
        suggested: list[Statement] = []
        for rewrite in rewrites:
            try:
                ran = self._run_checked(self.guard.check(rewrite))
            except SQLRefused:
                continue
            if ran.rows is not None and not self.problems(ran, asked.question):
                suggested.append(ran)
                _grouped(groups, ran)

        def is_rewrite(statement: Statement) -> bool:
            return any(statement is rewritten for rewritten in suggested)

        written = sampled = 0
        agreed: Optional[list[Statement]] = None
        for shown_mending in (False, True):
            if shown_mending and (sampled or mending is None):
                break  # a sample for the question's own prompt ran clean, or none ran to be mended
            shown = self._correction_prompt(asked, mending, ()) if shown_mending and mending else None
            for seed in range(1, self.rescue_samples + 1):
                sample = self._sample_run(asked, seed, self.rescue_temperature, shown)
                written += 1
                found = self.problems(sample, asked.question) if sample is not None else []
                if sample is None or found:
                    if sample is not None and mending is None:  # no attempt ran: this one is shown mended
                        mending = Attempt(sql=sample.sql, error=RAN_WITH_DEFECT + found[0])
                    continue
                sampled += 1
                group = _grouped(groups, sample)
                if is_rewrite(group[0]) or sum(1 for member in group if not is_rewrite(member)) == 2:
                    agreed = group
                    break
            if agreed is not None:
                break
        answered = [g for g in groups if not all(is_rewrite(member) for member in g)]
        rewritten = next(([s] for s in suggested), None) if self.rewrites_answer else None
        chosen = agreed or rewritten or max(answered, key=len, default=None)  # max keeps the first of equals
        votes = Votes(
            written,
            sampled,
            sum(1 for member in chosen or () if not is_rewrite(member)),
            False,
            rescue=True,
            rewrite_answered=chosen is not None and is_rewrite(chosen[0]),
        )
        return (chosen[0] if chosen else None), votes

    def _sample_run(
        self,
        asked: Asked,
        seed: int,
        temperature: Optional[float] = None,
        correction: Optional[str] = None,
    ) -> Optional[Statement]:
        """One sampled statement (for the question's own prompt, or the ``correction`` prompt when
        given), checked and run by :meth:`_candidate_run`."""
        if correction is None:
            proposed = self.write_sql(asked, seed=seed, temperature=temperature)
        else:
            sampler = self._sampled_llm(seed, self.sample_temperature if temperature is None else temperature)
            proposed = str(sampler.complete(correction).text)
        return self._candidate_run(proposed)

    def _candidate_run(self, proposed: str) -> Optional[Statement]:
        """A candidate statement checked and run (kb's join added once if the server names an unknown
        column), not yet checked for defects; None when the guard refuses it or it does not run."""
        try:
            checked = self.guard.check(proposed)
        except SQLRefused:
            return None
        ran = self._run_checked(checked)
        if ran.rows is None:
            joined = self.repairs.add_missing_join(checked.sql, ran.error or "")
            if joined is None:
                return None
            try:
                ran = self._run_checked(self.guard.check(joined))
            except SQLRefused:
                return None
            ran.repaired_by_kb = True
        return ran if ran.rows is not None else None

    def _vote(
        self, asked: Asked, greedy: Optional[Statement], heard: Sequence[Statement] = ()
    ) -> tuple[Optional[Statement], Votes]:
        """Execution-guided selection (see the module docstring): the statement whose rows the most
        candidates gave, and how they voted. ``heard``: statements already written that vote as
        candidates do, after ``greedy`` (a copied pair's statement: :meth:`_copies_a_pair`)."""
        groups: list[list[Statement]] = [[greedy]] if greedy is not None else []
        for statement in heard:
            _grouped(groups, statement, narrower_wins=True)
        written = 1 + len(heard)
        other_prompts = self._other_prompt_writers(asked.examples_text) if self.candidate_source == "prompts" else []
        for seed in range(1, self.candidates):
            if _vote_settled(groups, greedy, self.candidates - written):
                break
            candidate = (
                self._candidate_run(self.write_sql(asked, writer=other_prompts[seed - 1]))
                if seed <= len(other_prompts)
                else self._sample_run(asked, seed)
            )
            written += 1
            if candidate is not None and not self.problems(candidate, asked.question):
                _grouped(groups, candidate, narrower_wins=True)
        ran = sum(len(g) for g in groups)
        if not groups:
            return None, Votes(written, 0, 0, False)
        chosen = groups[_vote_winner(groups, greedy)]
        votes = Votes(written, ran, len(chosen), chosen[0] is greedy)
        return chosen[0], votes

    def _examples_for(self, question: str, outcome: SQLOutcome) -> str:
        """The approved examples for ``question`` as the prompts show them, listed in ``outcome``."""
        if self.examples is None:
            return ""
        text, shown = format_examples(self.examples(question), self.guard, token_counter(self.llm))
        outcome.examples = [example.to_dict() for example, _ in shown]
        outcome.example_statements = [(example.question, sql) for example, sql in shown]
        return text

    def _copies_a_pair(self, question: str, chosen: Statement, outcome: SQLOutcome) -> bool:
        """Whether ``chosen`` is, as the guard renders it, the statement of an approved pair the prompt
        showed for another question: the model copied the pair instead of writing for its question.
        The engine then puts it to candidates written without the pairs (:meth:`compute`)."""
        asked = " ".join(question.split()).casefold()
        return any(
            sql == chosen.sql and " ".join(pair.split()).casefold() != asked for pair, sql in outcome.example_statements
        )

    def compute(self, question: str, clock: Optional[Stopwatch] = None) -> SQLOutcome:
        """Write, check and run (and correct) the SQL for ``question``; no answer is written yet.
        ``clock`` (a new one by default) times writing as "generation" and running as "query"."""
        clock = Stopwatch() if clock is None else clock
        outcome = SQLOutcome(question=question)
        outcome.question_hint = " ".join(
            hint
            for hint in (
                self.values.hint(question) if self.values is not None else "",
                self.sql_database.describer.shared_name_hint(question),
            )
            if hint
        )
        asked = Asked(question, outcome.question_hint, self._examples_for(question, outcome))
        chosen, verdict = self._attempts(asked, outcome, clock)
        if verdict == "mendable" and self.rescue_samples:
            with clock.step("generation"):  # the rescue samples: written and run
                mending = next(
                    (a for a in outcome.attempts if chosen is not None and a.sql == chosen.sql and a.error), None
                )
                rescued, outcome.votes = self._rescue(asked, mending, outcome.rewrites)
            if rescued is not None:
                chosen, verdict = rescued, "clean"
                outcome.refused, outcome.refusal_reason = False, None
                by_kb = outcome.votes.rewrite_answered or rescued.repaired_by_kb
                outcome.attempts.append(Attempt(sql=rescued.sql, written_by="kb" if by_kb else "model"))
        if chosen is not None and verdict != "clean":
            outcome.attempts.append(Attempt(sql=chosen.sql))  # no correction ran clean: the first that ran, as written
        voting = self.candidates > 1 and outcome.votes is None  # rescue samples were their own vote
        copied = chosen is not None and outcome.votes is None and self._copies_a_pair(asked.question, chosen, outcome)
        if self.candidates_when == "doubt":
            voting = voting and (copied or not _beyond_doubt(outcome, chosen, verdict))
        if voting and not (outcome.refused and chosen is None and not outcome.attempts[-1].error):
            with clock.step("generation"):  # the extra candidates: written and run
                if copied:  # one voice among statements written without the pairs, the greedy one first
                    unshown = replace(asked, examples_text="")
                    first = self._candidate_run(self.write_sql(unshown))
                    if first is not None and self.problems(first, asked.question):
                        first = None
                    voted, outcome.votes = self._vote(unshown, first, heard=[chosen] if chosen else [])
                    if (
                        voted is not None
                        and chosen is not None
                        and result_key(voted.rows or []) == result_key(chosen.rows or [])
                    ):
                        voted = chosen  # the copy's rows won: it stands as written
                else:
                    voted, outcome.votes = self._vote(asked, chosen)
            if voted is not None and voted is not chosen:
                if chosen is not None:  # it ran, but the other candidates' rows won the vote
                    outcome.attempts[-1].error = f"outvoted: {outcome.votes.sentence()}"
                # the rows most candidates gave
                outcome.attempts.append(Attempt(sql=voted.sql, written_by="kb" if voted.repaired_by_kb else "model"))
                outcome.refused, outcome.refusal_reason = False, None
                chosen = voted
        if chosen is not None:
            with clock.step("query"):
                outcome.rows, outcome.truncated = chosen.rows, chosen.truncated
                outcome.tie = self._tie(CheckedSQL(original=chosen.sql, sql=chosen.sql, tables=()), outcome.rows or [])
                outcome.rows = outcome.tie.rows if outcome.tie else outcome.rows
        if self.examples_when == "doubt" and outcome.votes is None and len(outcome.attempts) == 1:
            outcome.examples = []  # the greedy statement answered alone: no prompt showed them
        outcome.sql = chosen.sql if chosen is not None else outcome.attempts[-1].sql
        if chosen is None:
            outcome.rows = None if outcome.refused else []
            tries = f" after {len(outcome.attempts)} attempts" if len(outcome.attempts) > 1 else ""
            outcome.failure = (
                f"I did not run the SQL that was written for this question{tries}: {outcome.refusal_reason}."
                if outcome.refused
                else f"The query failed on the server{tries}: {outcome.attempts[-1].error}"
            )
        outcome.timings = clock.milliseconds()
        return outcome

    def rows_asked(self, question: str) -> RowsAsked:
        """What the question asks of the rows it names that these tables hold (a field,
        ``products.price of 'Barista Pro'``; another table's records, ``orders of 'Cold Brew Tower'``):
        :func:`kb.engines.sql.values.rows_asked` over this engine's tables and value index. The router
        takes a question asking a field, or counting such records, to the database."""
        describer = self.sql_database.describer
        return rows_asked(question, [describer.table(t) for t in self.tables], self.values)

    # -- answering ---------------------------------------------------------------------------------------
    def column_notes(self, sql: str) -> str:
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
        scope = StatementScope(tree, self.sql_database.describer)
        said: dict[str, str] = {}
        for projection in tree.expressions:
            for column in projection.find_all(exp.Column):
                placed = scope.place(column)
                if placed is not None and placed[1].comment:
                    said[f"{placed[0].name}.{placed[1].name}"] = placed[1].comment
        return ("The schema says: " + "; ".join(f"{c}: {note}" for c, note in said.items()) + "\n") if said else ""

    def _answer_arguments(self, outcome: SQLOutcome) -> dict[str, Any]:
        rows = outcome.rows or []
        return dict(
            question=outcome.question,
            sql=outcome.sql,
            column_notes=self.column_notes(outcome.sql or ""),
            count=len(rows),
            more=(f", cut at {self.row_limit}" if outcome.truncated else "")
            + (f", the first {rows_shown(len(rows))} shown" if len(rows) > ROWS_SHOWN else ""),
            rows=format_rows(rows),
            hint=_answer_hint(rows, outcome.truncated),
        )

    def respond(
        self, outcome: SQLOutcome, *, streaming: Optional[bool] = None, clock: Optional[Stopwatch] = None
    ) -> RESPONSE_TYPE:
        """The response to an outcome: kb's own text (a failure, tied rows), or an answer the LLM
        writes from the rows. ``clock``: the one :meth:`compute` ran on (the answer's total time)."""
        clock = Stopwatch() if clock is None else clock
        streaming = self.streaming if streaming is None else streaming
        metadata = outcome.metadata()
        if streaming:
            fixed = outcome.text_without_llm()
            pieces: Iterator[str] = (
                iter([fixed])
                if fixed
                else with_left_out_note(
                    self.llm.stream(ANSWER_PROMPT, **self._answer_arguments(outcome)),
                    outcome.rows or [],
                    metadata,
                    truncated=outcome.truncated,
                )
            )
            return StreamingResponse(response_gen=timed_stream(pieces, metadata, clock), metadata=metadata)
        with clock.step("generation"):
            text = outcome.text_without_llm() or ""
            if not text:
                text = str(self.llm.predict(ANSWER_PROMPT, **self._answer_arguments(outcome))).strip()
                text += left_out_note(text, outcome.rows or [], metadata, truncated=outcome.truncated)
        metadata["timings"].update(clock.milliseconds())
        return Response(response=text, metadata=metadata)

    def close(self) -> None:
        """Release the read-only account's connections (the engine cannot run SQL afterwards)."""
        self.readonly.dispose()

    def custom_query(self, query_str: str) -> RESPONSE_TYPE:
        clock = Stopwatch()
        return self.respond(self.compute(query_str, clock), clock=clock)
