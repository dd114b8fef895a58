"""The prompts that ask the LLM for SQL, and the writers that send them.

Every prompt shows the schema first (kb's description of the tables, :mod:`kb.engines.sql.schema`),
then the rules, the approved examples closest to the question (:func:`format_examples`) and the
question last: everything before the examples is the same for every question on one database, so a
prompt cache (llama.cpp's, or a provider's) reuses it, and :meth:`StatementWriters.warm` evaluates it
into the local model's cache before the first question.

A writer is LlamaIndex's ``NLSQLTableQueryEngine`` in ``sql_only`` mode (it never executes: LlamaIndex's
``SQLDatabase.run_sql`` would run anything) with kb's prompt. When the tables' descriptions do not fit
the model's context window, or there are more than ``max_tables_in_prompt``, :func:`prompt_tables`
says what a prompt shows instead: the tables each question names or is closest to, with those joining
them, after the rules (the rules are then the part a prompt cache reuses, and what is warmed), or
every table's one-line catalogue entry (a fixed prompt, warmed as above).

:class:`StatementWriters` holds the greedy writer, the sampling writers (each its own seed and
temperature), the writers of two other prompts (LlamaIndex's own table description under kb's rules,
LlamaIndex's text-to-SQL prompt over kb's description: the candidates of
``candidate_source="prompts"``) and the correction prompt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, Optional, Protocol, runtime_checkable

from llama_index.core import MockEmbedding, PromptTemplate, SQLDatabase
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import LLM
from llama_index.core.objects import ObjectIndex, ObjectRetriever, SQLTableNodeMapping, SQLTableSchema
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.query_engine import NLSQLTableQueryEngine
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from pydantic import Field

from kb.engines.answer import Attempt
from kb.engines.context import token_counter
from kb.engines.sql.guard import ReadOnlyGuard, SQLRefused, normalized
from kb.engines.sql.options import WideSchema
from kb.engines.sql.schema import MAX_CATALOGUED, DescribedSQLDatabase, Edge, shortest_chains

_SQL_RULES = (
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
    "DAYOFWEEK(col) is 1 on Sunday and 7 on Saturday; today is CURDATE().\n\n"
)
# The schema comes first and the question last, so that everything before the question is the same
# for every question and a prompt cache (llama.cpp's, or a provider's) reuses it.
_SQL_INSTRUCTIONS = "You write {dialect} SQL for these tables:\n\n{schema}\n\n" + _SQL_RULES + "{examples}"
# Where each question's tables differ (retrieved), the rules come first: they are then the part of
# every prompt that a prompt cache reuses.
_RULES_FIRST_INSTRUCTIONS = (
    "You write {dialect} SQL for the tables below.\n\n"
    + _SQL_RULES.replace("columns above", "columns below").replace("listed above", "listed below")
    + "Tables:\n\n{schema}\n\n{examples}"
)
_QUESTION = "Question: {query_str}\nSQL: "
_CORRECTION = (
    "Question: {query_str}\n"
    "This statement was written for the question but failed:\n{sql}\nError: {error}\n{hint}"
    "Write a corrected statement.\nSQL: "
)
TEXT_TO_SQL_PROMPT = PromptTemplate(_SQL_INSTRUCTIONS + _QUESTION)
CORRECTION_PROMPT = PromptTemplate(_SQL_INSTRUCTIONS + _CORRECTION)
RULES_FIRST_TEXT_TO_SQL_PROMPT = PromptTemplate(_RULES_FIRST_INSTRUCTIONS + _QUESTION)
RULES_FIRST_CORRECTION_PROMPT = PromptTemplate(_RULES_FIRST_INSTRUCTIONS + _CORRECTION)
WRITERS_KEPT = 16  # writers with their own prompt or sampling kept for later questions (StatementWriters)


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

    @staticmethod
    def question_in(text: str) -> str:
        """The question of a :attr:`text`, which a table retriever is given: its last line (the hint is
        one line; of a question written on several lines, its last)."""
        return text.rsplit("\n", 1)[-1]


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


# A retrieved table's column lists at most this many values, as a catalogue entry's; more are shown as
# two examples. Each question's tables are evaluated anew, and long lists of addresses, phones and
# names made up a third of their tokens (docs/benchmarks.md, the wide schema).
RETRIEVED_LISTED = MAX_CATALOGUED

MAX_BRIDGES = 2  # tables a join chain between two retrieved tables may pass through to be added (TablesThatFit)


class TablesThatFit(BaseNodePostprocessor):
    """The retrieved tables a prompt shows: those the question names (``named``) first, then the most
    similar, up to ``most`` of them while their descriptions fit ``token_budget`` (the first always);
    then, for each two of them, the tables a shortest chain of foreign keys between them passes
    through (``steps``: each table's foreign keys both ways; ``MAX_BRIDGES`` tables at most), while
    they fit: a join through them can then be written, where it could not with one of them missing;
    all put in the schema's order (``tables``). In the schema's order, two questions whose tables
    begin alike share the prompt up to the first table in which they differ, and llama.cpp's prompt
    cache evaluates only the rest."""

    tables: list[str]
    table_tokens: dict[str, int]
    token_budget: int
    most: int
    steps: dict[str, list[Edge]] = {}
    # the tables a question names (by a value they hold or by their name), ranked before the others
    named: Optional[Callable[[str], Sequence[str]]] = Field(default=None, exclude=True)

    @classmethod
    def class_name(cls) -> str:
        return "TablesThatFit"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: Optional[QueryBundle] = None
    ) -> list[NodeWithScore]:
        kept: list[NodeWithScore] = []
        used = 0
        for node in self._named_first(nodes, query_bundle):
            size = self.table_tokens.get(node.node.metadata.get("name", ""), 0)
            if len(kept) >= self.most or (kept and used + size > self.token_budget):
                continue  # a smaller, less similar table may still fit
            kept.append(node)
            used += size
        names = [node.node.metadata.get("name", "") for node in kept]
        chosen = list(names)
        for i, first in enumerate(chosen):
            for second in chosen[i + 1 :]:
                bridges = [t for t in self._between(first, second) if t not in names]
                size = sum(self.table_tokens.get(t, 0) for t in bridges)
                if bridges and used + size <= self.token_budget:
                    kept += [_table_node(t) for t in bridges]
                    names += bridges
                    used += size
        position = {name: i for i, name in enumerate(self.tables)}
        return sorted(kept, key=lambda node: position.get(node.node.metadata.get("name", ""), len(position)))

    def _named_first(self, nodes: list[NodeWithScore], query_bundle: Optional[QueryBundle]) -> list[NodeWithScore]:
        """``nodes`` (most similar first) with the tables the question names (``named``) before the
        others, each in its order of similarity; a named table not retrieved comes last of them."""
        if self.named is None or query_bundle is None:
            return nodes
        named = set(self.named(Asked.question_in(query_bundle.query_str)))
        retrieved = {node.node.metadata.get("name", "") for node in nodes}
        first = [node for node in nodes if node.node.metadata.get("name", "") in named]
        first += [_table_node(t) for t in self.tables if t in named and t not in retrieved]
        return first + [node for node in nodes if node.node.metadata.get("name", "") not in named]

    def _between(self, first: str, second: str) -> list[str]:
        """The tables a shortest foreign-key chain from ``first`` to ``second`` passes through, when one
        passes through ``MAX_BRIDGES`` tables at most (the first found); [] otherwise."""
        chains = shortest_chains(self.steps, first, second, most=1, max_steps=MAX_BRIDGES + 1)
        return [edge[2] for edge in chains[0][:-1]] if chains else []


def _table_node(table: str) -> NodeWithScore:
    """A node that stands for ``table`` among an object retriever's (which maps it back by its name)."""
    return NodeWithScore(node=TextNode(text=table, metadata={"name": table}), score=0.0)


SchemaForm = Literal["all", "catalogue", "retrieved"]


@dataclass(frozen=True)
class PromptTables:
    """How kb's prompts show a database's tables (:func:`prompt_tables`)."""

    # all: every table's CREATE TABLE; catalogue: every table's one-line entry; retrieved: the
    # CREATE TABLE of each question's closest tables that fit
    form: SchemaForm
    sql_database: DescribedSQLDatabase  # the view kb's prompts describe the tables with
    retriever: Optional[ObjectRetriever[SQLTableSchema]]  # kb's prompts' tables per question (retrieved)
    # the tables per question of the prompt over LlamaIndex's own description (catalogue and retrieved)
    others_retriever: Optional[ObjectRetriever[SQLTableSchema]]
    catalogue_tokens: int  # the catalogue's size (0 when every CREATE TABLE fits)


def prompt_tables(
    sql_database: DescribedSQLDatabase,
    tables: list[str],
    max_tables_in_prompt: int,
    tables_retrieved: int,
    wide_schema: WideSchema,
    embed_model: Optional[Callable[[], BaseEmbedding]],
    count_tokens: Callable[[str], int],
    token_budget: int,
    named: Optional[Callable[[str], Sequence[str]]] = None,
) -> PromptTables:
    """How prompts show ``tables``: all their ``CREATE TABLE`` descriptions when there are at most
    ``max_tables_in_prompt`` and they fit ``token_budget`` tokens as ``count_tokens`` counts them (or
    there is no ``embed_model`` to retrieve with). Beyond: with ``wide_schema="catalogue"``, every
    table's catalogue entry (:meth:`DescribedSQLDatabase.as_catalogue`) when those fit, so that every
    prompt is still the same and its state reused; else the tables closest to each question that fit
    (:class:`TablesThatFit`: ``tables_retrieved`` at most, those ``named`` by the question first, and
    the tables that link them), retrieved over an embedding index of their descriptions and shown with
    ``RETRIEVED_LISTED`` values of a column at most (:meth:`DescribedSQLDatabase.as_compact`). The index is
    built beyond the limit whichever form kb's prompt takes: the other prompts
    (:meth:`StatementWriters.other_prompt_writers`) describe retrieved tables in LlamaIndex's words."""
    table_tokens = {t: count_tokens(sql_database.get_single_table_info(t)) for t in tables}
    if embed_model is None or (len(tables) <= max_tables_in_prompt and sum(table_tokens.values()) <= token_budget):
        return PromptTables("all", sql_database, None, None, 0)
    from llama_index.core import VectorStoreIndex

    # the index embeds the whole descriptions (the tables are found by all their values); the prompts
    # show them shortened
    retrieved = sql_database.as_compact(RETRIEVED_LISTED)
    table_tokens = {t: count_tokens(retrieved.get_single_table_info(t)) for t in tables}
    object_index = ObjectIndex.from_objects(
        [SQLTableSchema(table_name=t) for t in tables],
        SQLTableNodeMapping(sql_database),
        index_cls=VectorStoreIndex,
        embed_model=embed_model(),
    )
    retriever = object_index.as_retriever(
        similarity_top_k=min(max_tables_in_prompt, len(tables)),
        node_postprocessors=[
            TablesThatFit(
                tables=tables,
                table_tokens=table_tokens,
                token_budget=token_budget,
                most=tables_retrieved,
                steps=sql_database.describer.foreign_key_steps(),
                named=named,
            )
        ],
    )
    catalogue = sql_database.as_catalogue()
    catalogue_tokens = count_tokens("\n\n".join(catalogue.get_single_table_info(t) for t in tables))
    if wide_schema == "catalogue" and catalogue_tokens <= token_budget:
        return PromptTables("catalogue", catalogue, None, retriever, catalogue_tokens)
    return PromptTables("retrieved", retrieved, retriever, retriever, catalogue_tokens)


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
    prompt: PromptTemplate,
) -> NLSQLTableQueryEngine:
    """LlamaIndex's NLSQL engine in ``sql_only`` mode with ``prompt``: all tables in the prompt, or
    those ``tables_retriever`` retrieves for each question."""
    return NLSQLTableQueryEngine(
        sql_database=sql_database,
        tables=tables,
        table_retriever=tables_retriever,
        # LlamaIndex's default embedding model is OpenAI's; its SQL writer uses none outside pgvector.
        embed_model=MockEmbedding(embed_dim=1),
        llm=stopping_at(llm, SQL_WRITER_STOP),
        sql_only=True,
        synthesize_response=False,
        text_to_sql_prompt=prompt,
    )


class StatementWriters:
    """The writers of one engine's statements: the greedy one (``greedy``), sampling ones, the other
    prompts' and the correction prompt, over ``tables`` as ``shown`` says (:func:`prompt_tables`: all
    of them, their catalogue, or each question's retrieved). Writers for prompts with examples differ from question to
    question: the oldest are let go beyond ``WRITERS_KEPT``."""

    def __init__(
        self,
        llm: LLM,
        shown: PromptTables,
        tables: Sequence[str],
    ) -> None:
        self.llm, self.sql_database, self.tables = llm, shown.sql_database, list(tables)
        self.form: SchemaForm = shown.form
        self.tables_retriever, self.others_retriever = shown.retriever, shown.others_retriever
        self.greedy = _sql_writer(llm, self.sql_database, self.tables, self.tables_retriever, self.prompt(""))
        # by (seed, temperature, examples) and by examples: (writer or writers, the examples their prompt shows)
        self._writers: dict[tuple[Optional[int], float, str], tuple[Any, str]] = {}
        self._prompt_writers: dict[str, tuple[list[Any], str]] = {}
        self._writers_lock = threading.Lock()

    def prompt(self, examples_text: str, retrieved: Optional[bool] = None) -> PromptTemplate:
        """kb's text-to-SQL prompt showing ``examples_text``: the schema first where every question's
        tables are the same, the rules first where they are ``retrieved`` per question (by default,
        where kb's own writers retrieve them), so that a prompt cache still reuses the rules."""
        rules_first = self.tables_retriever is not None if retrieved is None else retrieved
        template = RULES_FIRST_TEXT_TO_SQL_PROMPT if rules_first else TEXT_TO_SQL_PROMPT
        return template.partial_format(examples=examples_text)

    def warm(self, other_prompts: bool) -> int:
        """Evaluate the beginning every question's prompts share (the dialect, the schema and the rules:
        everything before the examples and the question) into the LLM's prompt cache, pinned there, so
        that the first question pays only for its own tokens; how many prompts were warmed: kb's (its
        corrections and samples begin alike) and, with ``other_prompts``, the other prompts'
        (:meth:`other_prompt_writers`: written for a question in doubt, which would otherwise pay for
        their beginnings). Where the tables are retrieved per question, each question's prompt differs
        from its tables on: the rules before them are what is warmed (one prompt, which kb's corrections,
        samples and the other prompt over kb's rules begin with too). Nothing is done for an LLM without
        a prompt cache of its own (:class:`PrefixCachingLLM`: an API model's provider caches on its side)."""
        if self.tables_retriever is not None:
            return self._warm_rules()
        warmed = self._warm([self.greedy])
        if warmed and other_prompts:
            self.other_prompt_writers()  # warms those of them whose tables are fixed
            warmed += sum(retriever is None for retriever in (self.others_retriever, self.tables_retriever))
        return warmed

    def _warm(self, writers: Sequence[Any]) -> int:
        """:meth:`warm` for ``writers`` (each showing the same tables to every question): how many were
        warmed (0 when nothing can be)."""
        if not isinstance(self.llm, PrefixCachingLLM) or not writers:
            return 0
        with self.llm.prefilling_until(QUESTION_MARK):
            for writer in writers:
                writer.query(QUESTION_MARK)
        return len(writers)

    def _warm_rules(self) -> int:
        """:meth:`warm` where the tables are retrieved: kb's rules-first prompt up to its tables,
        asked as its writers ask it (the LLM's ``predict``, so with the same chat wrapping); 1 when
        warmed, 0 for an LLM without a prompt cache of its own."""
        if not isinstance(self.llm, PrefixCachingLLM):
            return 0
        with self.llm.prefilling_until(QUESTION_MARK):
            stopping_at(self.llm, SQL_WRITER_STOP).predict(
                self.prompt(""), dialect=self.sql_database.dialect, schema=QUESTION_MARK, query_str=QUESTION_MARK
            )
        return 1

    def tables_for(self, text: str) -> list[str]:
        """The tables kb's own prompt shows for ``text`` (:attr:`Asked.text`): every table (or their
        catalogue), or with a table retriever the tables it gives."""
        if self.tables_retriever is None:
            return list(self.tables)
        return [t.table_name for t in self.tables_retriever.retrieve(text)]

    def schema_for(self, text: str) -> str:
        """The schema kb's prompts for ``text`` (:attr:`Asked.text`) show (:meth:`tables_for`)."""
        return "\n\n".join(self.sql_database.get_single_table_info(t) for t in self.tables_for(text))

    def sampled_llm(self, seed: int, temperature: float) -> LLM:
        """A copy of the LLM that samples at ``temperature`` with its own seed (where it has those fields)."""
        fields = type(self.llm).model_fields
        update = {k: v for k, v in (("temperature", temperature), ("seed", seed)) if k in fields}
        return self.llm.model_copy(update=update)

    def writer_for(self, examples_text: str, seed: Optional[int] = None, temperature: float = 0.0) -> Any:
        """kb's writer for prompts that show ``examples_text``: greedy, or on :meth:`sampled_llm`
        with ``seed`` at ``temperature``."""
        if seed is None and not examples_text:
            return self.greedy
        llm = self.llm if seed is None else self.sampled_llm(seed, temperature)
        return self._kept(
            self._writers,
            (seed, temperature, examples_text),
            examples_text,
            lambda: _sql_writer(llm, self.sql_database, self.tables, self.tables_retriever, self.prompt(examples_text)),
        )

    def _kept(self, cache: dict[Any, Any], key: Any, examples_text: str, build: Callable[[], Any]) -> Any:
        """``cache[key]``, built first when missing. Of the entries for prompts with examples (which
        differ from question to question), the oldest are let go beyond ``WRITERS_KEPT``; the others
        (a few seeds and temperatures) stay. Concurrent questions share the writers: one lock."""
        with self._writers_lock:
            if key not in cache:
                if examples_text:
                    with_examples = [k for k in cache if k != key and cache[k][1]]
                    for old in with_examples[: max(0, len(with_examples) - WRITERS_KEPT + 1)]:
                        del cache[old]
                cache[key] = (build(), examples_text)
            return cache[key][0]

    def other_prompt_writers(self, examples_text: str = "") -> list[Any]:
        """Greedy writers on other prompts than kb's, for ``candidate_source="prompts"``: kb's rules
        over LlamaIndex's own description of the tables, then LlamaIndex's default text-to-SQL prompt
        over kb's description. Each shares one half with kb's prompt and nothing with the other, so
        the two outvote the greedy statement only when prompts that differ in both halves agree. A
        small model's greedy mistakes differ from prompt to prompt, where its samples at a low
        temperature repeat the greedy statement's. The first shows ``examples_text`` as kb's does;
        LlamaIndex's prompt has no place for examples. Beyond the tables one prompt holds, LlamaIndex's
        description is of each question's retrieved tables, whatever form kb's own takes."""
        from llama_index.core.prompts.default_prompts import DEFAULT_TEXT_TO_SQL_PROMPT

        def build() -> list[Any]:
            own = SQLDatabase(self.sql_database.engine, include_tables=self.tables)
            writers = [
                _sql_writer(
                    self.llm,
                    own,
                    self.tables,
                    self.others_retriever,
                    self.prompt(examples_text, retrieved=self.others_retriever is not None),
                ),
                _sql_writer(
                    self.llm, self.sql_database, self.tables, self.tables_retriever, DEFAULT_TEXT_TO_SQL_PROMPT
                ),
            ]
            if not examples_text:  # their beginnings pinned in the prompt cache, as kb's, where they are fixed
                self._warm([w for w, r in zip(writers, (self.others_retriever, self.tables_retriever)) if r is None])
            return writers

        writers: list[Any] = self._kept(self._prompt_writers, examples_text, examples_text, build)
        return writers

    def write(self, asked: Asked, seed: Optional[int], temperature: float, writer: Any = None) -> str:
        """The statement the LLM proposes for ``asked`` (the question with its hint line and examples;
        not run, not yet checked): greedy (``seed`` None), or sampled with ``seed`` at ``temperature``,
        or ``writer``'s."""
        if writer is None:
            writer = self.writer_for(asked.examples_text, seed, temperature)
        response = writer.query(asked.text)
        return str(response.metadata.get("sql_query") or response.response or "")

    def correction_prompt(self, asked: Asked, failed: Attempt, advice: str) -> str:
        """The prompt that asks for a rewrite of ``failed``: the schema, the question, the statement, its
        error and ``advice`` (:meth:`kb.engines.sql.repairs.StatementRepairs.hint_for`: for an unknown
        column or table, where to find it; "": none)."""
        template = RULES_FIRST_CORRECTION_PROMPT if self.tables_retriever is not None else CORRECTION_PROMPT
        return template.format(
            dialect=self.sql_database.dialect,
            schema=self.schema_for(asked.text),
            query_str=asked.text,
            sql=failed.sql,
            error=failed.error,
            hint=f"Hint: {advice}\n" if advice else "",
            examples=asked.examples_text,
        )

    def correction(self, asked: Asked, failed: Attempt, advice: str, tried: Sequence[str]) -> str:
        """The LLM's rewrite of a failed statement, given the error, the schema again and ``advice``
        (for an unknown column or table, where the column is and how to join to it). A small model often
        writes the failed statement again: then it is asked once more, sampling (temperature 0.8),
        for another."""
        tried_forms = {normalized(sql) for sql in tried}
        prompt = self.correction_prompt(asked, failed, advice)
        rewrite = str(self.llm.complete(prompt).text)
        if normalized(rewrite) in tried_forms:
            try:
                rewrite = str(self.llm.complete(prompt, temperature=0.8).text)
            except TypeError:  # an LLM whose complete() takes no temperature: keep the first rewrite
                pass
        return rewrite
