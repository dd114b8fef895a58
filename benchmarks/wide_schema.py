"""Questions over a business database of a hundred tables and more (benchmarks/wide_database.py).

Every set's test questions (benchmarks/data; ``--parts dev`` for the dev parts, whose misses and
wrong answers are printed) are asked of ``wide``, the 104 tables of all the benchmark's databases side
by side, their gold SQL renamed to the copies' names. For kb (``SQLEngine`` over every table, as ``kb``
builds it from config.yaml: beyond ``sql.max_tables_in_prompt`` or the model's context window, the
form ``sql.wide_schema`` says; ``KB_SQL__WIDE_SCHEMA=catalogue`` and a larger
``KB_PROFILES__LOCAL__LLM__CONTEXT_WINDOW`` try the other) and for plain LlamaIndex with
LlamaIndex's own table retriever (``SQLTableRetrieverQueryEngine`` over an ``ObjectIndex`` of
``SQLTableSchema`` objects, embedded with the same model, as LlamaIndex's docs show it for many
tables; ``--plain-top-k`` tables a question, 5 by default) this prints:

* the start-up reading: seconds from nothing to an engine that can take a question (kb: the schema
  read and described, the tables' index embedded; plain: ``SQLDatabase`` reflected, the index built);
* table recall: the share of questions whose gold tables were all among the tables the prompt shows;
* with ``--answer``: the right answers (rows compared as in sql_accuracy.py) and the seconds of the
  first answer and of the warm ones after it, kb and plain question by question in one run, after kb
  read its prompts' shared beginning into the prompt cache (untimed, as ``kb serve`` does at start-up).

Run: ``.venv/bin/python benchmarks/wide_schema.py [--sets demo,chinook,...] [--answer] [--limit N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import wide_database
import yaml
from common import ROOT
from sql_accuracy import DATA, SETS, Scorer, engine_options

from kb.business_database.provisioning import load_demo_data, readonly_url
from kb.config import load_settings
from kb.engines.sql.engine import SQLEngine
from kb.engines.sql.guard import clean
from kb.models.factories import build_embedding, build_llm
from kb.server.database import private_server
from kb.stores.connection import MariaDBConnection


@dataclass
class AreaTally:
    """One set's questions over the wide database."""

    n: int = 0
    kb_recall: int = 0  # questions whose gold tables were all in kb's prompt
    plain_recall: int = 0
    kb: int = 0
    plain: int = 0
    answered: int = 0  # questions asked of the models (--answer)
    kb_tables: list[int] = field(default_factory=list)  # tables in kb's prompt, per question
    plain_tables: list[int] = field(default_factory=list)
    kb_seconds: list[float] = field(default_factory=list)
    plain_seconds: list[float] = field(default_factory=list)


def plain_with_table_retriever(readonly: MariaDBConnection, tables: list[str], llm: Any, embed_model: Any, top_k: int):
    """Plain LlamaIndex for many tables, as its docs build it: an ObjectIndex of the tables' schemas
    and ``SQLTableRetrieverQueryEngine`` (sql_only: its statement is scored, not run by it)."""
    from llama_index.core import Settings, SQLDatabase, VectorStoreIndex
    from llama_index.core.indices.struct_store.sql_query import SQLTableRetrieverQueryEngine
    from llama_index.core.objects import ObjectIndex, SQLTableNodeMapping, SQLTableSchema

    database = SQLDatabase(readonly.engine, include_tables=tables)
    index = ObjectIndex.from_objects(
        [SQLTableSchema(table_name=t) for t in tables],
        SQLTableNodeMapping(database),
        index_cls=VectorStoreIndex,
        embed_model=embed_model,
    )
    retriever = index.as_retriever(similarity_top_k=top_k)
    # its NLSQLRetriever takes no embed_model argument and reads LlamaIndex's global one, as a user sets it
    Settings.embed_model = embed_model
    engine = SQLTableRetrieverQueryEngine(database, retriever, llm=llm, sql_only=True, synthesize_response=False)
    return engine, retriever


def retrieved_tables(retriever: Any, question: str) -> list[str]:
    """The table names an object retriever gives for ``question``."""
    return [schema.table_name for schema in retriever.retrieve(question)]


def timed(build: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    built = build()
    return built, time.perf_counter() - t


def report(tallies: dict[str, AreaTally], titles: dict[str, str], answered: bool, startup: tuple[float, float]) -> str:
    lines = [
        f"start-up reading, s: kb {startup[0]:.1f}, plain {startup[1]:.1f}",
        "",
        "| set | n | gold tables all in the prompt, kb | plain | tables in the prompt, kb (median) | plain |"
        + (" right, kb | plain | s / question kb vs plain (first; warm median) |" if answered else ""),
        "|---|---|---|---|---|---|" + ("---|---|---|" if answered else ""),
    ]
    total = AreaTally()
    for key, t in tallies.items():
        row = (
            f"| {titles.get(key, key)} | {t.n} | {t.kb_recall} | {t.plain_recall} | "
            f"{statistics.median(t.kb_tables) if t.kb_tables else '-'} | "
            f"{statistics.median(t.plain_tables) if t.plain_tables else '-'} |"
        )
        if answered:
            first = f"{t.kb_seconds[0]:.1f} vs {t.plain_seconds[0]:.1f}" if t.kb_seconds else "-"
            warm = (
                f"{statistics.median(t.kb_seconds[1:]):.1f} vs {statistics.median(t.plain_seconds[1:]):.1f}"
                if len(t.kb_seconds) > 1
                else "-"
            )
            row += f" {t.kb}/{t.answered} | {t.plain}/{t.answered} | {first}; {warm} |"
        lines.append(row)
        for name in ("n", "kb_recall", "plain_recall", "kb", "plain", "answered"):
            setattr(total, name, getattr(total, name) + getattr(t, name))
    lines.append(
        f"| all | {total.n} | {total.kb_recall} ({100 * total.kb_recall / max(total.n, 1):.1f}%) | "
        f"{total.plain_recall} ({100 * total.plain_recall / max(total.n, 1):.1f}%) | | |"
        + (f" {total.kb}/{total.answered} | {total.plain}/{total.answered} | |" if answered else "")
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(s.key for s in SETS))
    parser.add_argument("--answer", action="store_true", help="also ask the questions (the model writes SQL)")
    parser.add_argument("--limit", type=int, default=0, help="first N test questions of each set")
    parser.add_argument("--plain-top-k", type=int, default=5, help="tables plain LlamaIndex's retriever gives")
    parser.add_argument("--parts", default="test", help="test (only scored), or dev (studied: misses printed)")
    args = parser.parse_args(argv)
    settings = load_settings(ROOT / "config.yaml")
    server = private_server(settings)
    server.start()
    load_demo_data(settings)
    names = wide_database.build(server, settings.sql.database)
    readonly = MariaDBConnection(readonly_url(settings).set(database=wide_database.NAME))
    tables = [row[0] for row in readonly.fetchall("SHOW TABLES")]
    llm = build_llm(settings)  # loaded without --answer too: kb's prompt budget is the model's context window
    embed_model = build_embedding(settings)
    options = engine_options(settings)
    options["embed_model"] = lambda: embed_model
    kb_engine, kb_startup = timed(
        lambda: SQLEngine(llm, readonly, database=wide_database.NAME, tables=tables, **options)
    )
    (plain, plain_retriever), plain_startup = timed(
        lambda: plain_with_table_retriever(readonly, tables, llm, embed_model, args.plain_top_k)
    )
    print(f"wide, kb: {kb_engine.reading.summary()}", flush=True)
    if args.answer:  # as kb serve does at start-up (untimed, as in sql_accuracy.py): the rules before the tables
        _, warm_up = timed(kb_engine.warm_prompt_cache)
        print(f"wide, kb: prompts' shared beginning read into the prompt cache in {warm_up:.1f} s", flush=True)
    tallies: dict[str, AreaTally] = {}
    for sql_set in SETS:
        if sql_set.key not in args.sets.split(","):
            continue
        questions = [
            q
            for q in yaml.safe_load((DATA / sql_set.file).read_text())
            if q.get("part", "test") in args.parts.split(",")
        ]
        if args.limit:
            questions = questions[: args.limit]
        for q in questions:
            q["sql"] = wide_database.renamed(q["sql"], names[sql_set.key])
        tally = tallies.setdefault(sql_set.key, AreaTally())
        scorer = Scorer(kb_engine, questions) if args.answer else None
        for item in questions:
            gold = {t.lower() for t in wide_database.gold_tables(item["sql"])}
            kb_tables = kb_engine.tables_shown(item["q"])
            plain_tables = retrieved_tables(plain_retriever, item["q"])
            tally.n += 1
            tally.kb_recall += gold <= {t.lower() for t in kb_tables}
            if args.parts == "dev" and not gold <= {t.lower() for t in kb_tables}:
                missing = sorted(gold - {t.lower() for t in kb_tables})
                print(f"  MISS [{sql_set.key}] {item['q']}\n    missing: {missing}\n    shown: {kb_tables}")
            tally.plain_recall += gold <= {t.lower() for t in plain_tables}
            tally.kb_tables.append(len(kb_tables))
            tally.plain_tables.append(len(plain_tables))
            if scorer is None:
                continue
            question = item["q"]
            (outcome, seconds) = timed(partial(kb_engine.compute, question))
            tally.kb_seconds.append(seconds)
            kb_right = scorer.kb_right(outcome, item)
            tally.kb += kb_right
            if args.parts == "dev" and not kb_right:
                tried = " | ".join(f"{a.sql} [{a.error or 'ran'}]" for a in outcome.attempts)
                print(
                    f"  WRONG [{sql_set.key}] {item['q']} ({seconds:.1f} s)\n    gold: {item['sql']}\n    kb: {tried}"
                )
            (response, seconds) = timed(partial(plain.query, question))
            tally.plain_seconds.append(seconds)
            tally.plain += scorer.plain_right(clean(str(response.metadata.get("sql_query", ""))), item)
            tally.answered += 1
            print(f"  [{sql_set.key}] {tally.answered}/{len(questions)}: kb {tally.kb} plain {tally.plain}", flush=True)
        print(report(tallies, {s.key: s.title for s in SETS}, args.answer, (kb_startup, plain_startup)), flush=True)
    kb_engine.close()


if __name__ == "__main__":
    main()
