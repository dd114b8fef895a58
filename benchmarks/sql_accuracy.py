"""Text-to-SQL execution accuracy: kb's SQL engine against plain LlamaIndex, same model, same run.

Ten labelled sets with gold SQL (benchmarks/data):

* the demo business database (64 questions), Chinook (42) and the generated university (51,
  benchmarks/university_database.py), airline (66, airline_database.py: 45 dev), clinic (44,
  clinic_database.py), staff (56, staff_database.py) and rental (56, rental_database.py) databases,
  each split into a ``dev`` part (may be studied to change kb's rules and prompts) and a ``test``
  part (only scored);
* Northwind (45) and classicmodels (46), written before kb ever ran on them, and the generated supply
  database (34, supply_database.py: composite keys, table-prefixed columns): ``test`` only.

The public sample databases are read from ../shared/eval (benchmarks/sample_databases.py). For each question:

* kb: ``SQLEngine`` (kb's schema description and prompt, value linking, execution-guided selection
  over ``sql.candidates`` statements, the read-only guard, corrections);
* kb's first statement as written: the model's greedy statement alone, before any correction (the
  summary also counts the questions where a statement ran with a defect, kb.engines.sql.checks, and
  how often the first statement and kb's answer were right there);
* plain LlamaIndex: ``NLSQLTableQueryEngine(sql_only=True)`` with its own prompt and table info, its
  SQL run read-only (LlamaIndex itself would run it as it is).

A question counts as correct when the rows equal the gold rows as multisets (values compared after
rounding numbers to 2 decimals; the order of columns is free, the set of columns is not). Also
printed: time per question, how many gold (legitimate) SELECTs the guard refuses (target 0), and in
how many gold statements one of kb's defect checks fires (each a check firing where it must not;
target 0).
Also counted: the questions where a check fires on a statement whose rows are right (kb's first,
plain's, and with ``--audit-samples N`` that many statements sampled per question: a larger pool of
right statements written otherwise than gold, to measure the checks' precision on), and those whose
first statement was right and kb's answer is not. ``--first-only`` scores kb's first statement alone
(no correction, rescue or plain), a quick A/B of a prompt change on the dev parts.
Failures, and those statements, are printed question by question for ``dev`` parts only.

Run: ``.venv/bin/python benchmarks/sql_accuracy.py [--sets demo,chinook,university,airline,clinic,staff,rental,northwind,classicmodels]
[--parts dev,test] [--candidates N] [--limit N] [--first-only] [--audit-samples N] [--json FILE]`` (KB_PROFILE picks
the model). ``--ablate`` switches kb's mechanisms off in turn (benchmarks/sql_ablation.py); ``--timing`` is
its first run alone: kb in full (its prompts warmed first, as ``kb serve`` does) and plain, question by
question, with the warm-up, the first answer and the warm answers timed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Optional

import sql_examples
import yaml
from common import ROOT
from sample_databases import load_sample
from sql_ablation import MemoisedLlamaCPP, SetAblation, ablate, time_table
from sql_ablation import table as ablation_table

from kb.business_database.examples import SQLExampleStore
from kb.business_database.provisioning import load_demo_data, readonly_url
from kb.business_database.sql_engine import engine_settings
from kb.config import load_settings
from kb.engines.sql.checks import defects
from kb.engines.sql.engine import SQLEngine
from kb.engines.sql.guard import CheckedSQL, SQLRefused, clean
from kb.engines.sql.loop import RAN_WITH_DEFECT
from kb.engines.sql.vote import result_key
from kb.engines.sql.writers import QUESTION_MARK, Asked, PrefixCachingLLM
from kb.models.factories import build_embedding, build_llm
from kb.models.local_llm import LocalLlamaCPP
from kb.server.database import private_server
from kb.stores import MariaDBVectorStore
from kb.stores.connection import MariaDBConnection

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class SqlSet:
    key: str
    title: str
    file: str
    sample: Optional[str]  # a sample database of ../shared/eval; None: the demo database


SETS = [
    SqlSet("demo", "demo business database", "sql_demo.yaml", None),
    SqlSet("chinook", "Chinook", "sql_chinook.yaml", "chinook"),
    SqlSet("university", "university (generated)", "sql_university.yaml", "university"),
    SqlSet("airline", "airline (generated)", "sql_airline.yaml", "airline"),
    SqlSet("clinic", "clinic (generated)", "sql_clinic.yaml", "clinic"),
    SqlSet("staff", "staff (generated)", "sql_staff.yaml", "staff"),
    SqlSet("rental", "rental (generated)", "sql_rental.yaml", "rental"),
    SqlSet("northwind", "Northwind (held out)", "sql_northwind.yaml", "northwind"),
    SqlSet("classicmodels", "classicmodels (held out)", "sql_classicmodels.yaml", "classicmodels"),
    SqlSet("supply", "supply, composite keys (generated, held out)", "sql_supply.yaml", "supply"),
]


def part_titles() -> dict[str, str]:
    """Each set's parts as a table's column heads, by ``<set>/<part>``."""
    return {f"{s.key}/{p}": f"{s.title}, {p}" for s in SETS for p in ("dev", "test")}


def normalize(rows: list[dict[str, Any]] | list[tuple]) -> Counter:
    """Rows as the engine compares results (kb.engines.sql.result_key): one notion of "the same rows"."""
    return result_key([r if isinstance(r, dict) else dict(enumerate(r)) for r in rows])


def run_statement(engine: SQLEngine, sql: str) -> list[dict[str, Any]]:
    return engine.run(CheckedSQL(original=sql, sql=sql, tables=())).rows or []


def plain_llamaindex(engine: SQLEngine, llm: Any) -> Any:
    from llama_index.core import MockEmbedding, SQLDatabase
    from llama_index.core.query_engine import NLSQLTableQueryEngine

    database = SQLDatabase(engine.readonly.engine, include_tables=engine.tables)
    # synthesize_response=False: only the SQL is scored (kb is asked for no answer text either); LlamaIndex
    # would otherwise also write an answer from the SQL text, which costs minutes on a CPU and is not scored.
    plain = NLSQLTableQueryEngine(
        sql_database=database,
        tables=engine.tables,
        llm=llm,
        sql_only=True,
        synthesize_response=False,
        embed_model=MockEmbedding(embed_dim=1),
    )
    # Its prompt's beginning is pinned in the prompt cache as kb's are: alone, plain LlamaIndex's one
    # prompt would stay cached; sharing the cache with kb's prompts must not make it pay for its
    # schema again. Not timed, as kb's warming is not.
    if isinstance(llm, PrefixCachingLLM):
        with llm.prefilling_until(QUESTION_MARK):
            plain.query(QUESTION_MARK)
    return plain


@dataclass
class Tally:
    """One (set, part): how many questions each system got right, and their time."""

    n: int = 0
    kb: int = 0
    kb_first: int = 0
    plain: int = 0
    gold_refused: int = 0
    gold_flagged: int = 0  # gold statements kb's defect checks find a defect in: each a check firing wrongly
    right_flagged: int = (
        0  # questions where a check fires on a statement whose rows are right (kb's first, plain's, audit samples)
    )
    right_statements: int = 0  # statements whose rows are right that the checks were tried on
    first_lost: int = 0  # questions whose first statement was right and kb's answer is not
    seconds_kb: float = 0.0
    seconds_plain: float = 0.0
    candidates: int = 0  # candidate statements that ran, over the questions
    defects: Counter = field(default_factory=Counter)  # questions whose statement ran with a defect: n, first, kb
    rescues: Counter = field(default_factory=Counter)  # questions sent to rescue samples: n, answered by one, kb
    by_kind: dict[str, Counter] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        pct = {k: round(100.0 * getattr(self, k) / self.n, 1) for k in ("kb", "kb_first", "plain")}
        return {
            "n": self.n,
            **{f"{k}_correct": getattr(self, k) for k in ("kb", "kb_first", "plain")},
            **{f"{k}_pct": v for k, v in pct.items()},
            "difference": round(pct["kb"] - pct["plain"], 1),
            "gold_refused": self.gold_refused,
            "gold_flagged": self.gold_flagged,
            "right_flagged": self.right_flagged,
            "right_statements": self.right_statements,
            "first_lost": self.first_lost,
            "seconds_per_question_kb": round(self.seconds_kb / self.n, 2),
            "seconds_per_question_plain": round(self.seconds_plain / self.n, 2),
            "candidates_per_question": round(self.candidates / self.n, 2),
        }


def right_samples(engine: SQLEngine, asked: Asked, gold: Counter, samples: int, temperature: float) -> list[str]:
    """Statements sampled for the question (kb's prompt, ``temperature``) whose rows are the gold rows: more
    right statements, written otherwise than gold, to try the defect checks on (a check must not fire on one)."""
    right = []
    for seed in range(1, samples + 1):
        try:
            checked = engine.guard.check(engine.write_sql(asked, seed=seed, temperature=temperature))
            rows = engine.run(checked).rows
        except Exception:  # refused or rejected: not a right statement
            continue
        if rows is not None and normalize(rows) == gold:
            right.append(checked.sql)
    return right


def evaluate(
    sql_set: SqlSet, questions: list[dict], engine: SQLEngine, plain: Any, audit: tuple[int, float] = (0, 1.0)
) -> dict[str, Tally]:
    """Every question of the set asked of kb (and of plain LlamaIndex unless ``plain`` is None); with
    ``audit`` = (samples, temperature), that many statements are also sampled per question and those
    whose rows are right tried on the defect checks."""
    tallies: dict[str, Tally] = {}
    for number, item in enumerate(questions, start=1):
        part = item.get("part", "test")
        tally = tallies.setdefault(part, Tally())
        gold_rows = run_statement(engine, item["sql"])
        gold = normalize(gold_rows)
        flagged = defects(item["sql"], engine.sql_database.describer, rows=gold_rows, question=item["q"])
        tally.gold_flagged += bool(flagged)
        try:
            engine.guard.check(item["sql"])
        except SQLRefused as refusal:
            tally.gold_refused += 1
            print(f"  guard refused the gold SQL of {item['q']!r}: {refusal}")
        t = time.perf_counter()
        outcome = engine.compute(item["q"])  # the SQL and its rows; no answer text is written (none is scored)
        tally.seconds_kb += time.perf_counter() - t
        kb_ok = outcome.failure is None and outcome.rows is not None and normalize(outcome.rows) == gold
        first = outcome.first_statement
        first_ok = first is not None and first.rows is not None and normalize(first.rows) == gold
        plain_ok = False
        plain_sql = ""
        if plain is not None:
            t = time.perf_counter()
            plain_sql = str(plain.query(item["q"]).metadata.get("sql_query", ""))
            try:
                plain_ok = normalize(run_statement(engine, clean(plain_sql))) == gold
            except Exception:  # the server rejected it
                plain_ok = False
            tally.seconds_plain += time.perf_counter() - t
        # A check that fires on a statement whose rows are right fires where it must not (as on gold).
        right_statements = [s for s, ok in ((first.sql if first else "", first_ok), (clean(plain_sql), plain_ok)) if ok]
        if audit[0]:
            right_statements += right_samples(engine, Asked(item["q"], outcome.question_hint), gold, *audit)
        tally.right_statements += len(set(right_statements))
        misfires = [
            (sql, found)
            for sql in dict.fromkeys(right_statements)
            if (found := defects(sql, engine.sql_database.describer, rows=gold_rows, question=item["q"]))
        ]
        tally.right_flagged += bool(misfires)
        tally.first_lost += first_ok and not kb_ok
        tally.n += 1
        tally.kb += kb_ok
        tally.kb_first += first_ok
        tally.plain += plain_ok
        tally.candidates += outcome.votes.ran if outcome.votes else 1
        if outcome.votes and outcome.votes.rescue:
            tally.rescues.update({"n": 1, "answered": int(outcome.votes.agreeing > 0), "kb": int(kb_ok)})
        if any((a.error or "").startswith(RAN_WITH_DEFECT) for a in outcome.attempts):
            tally.defects.update({"n": 1, "first": int(first_ok), "kb": int(kb_ok)})
        kind = tally.by_kind.setdefault(item["kind"], Counter())
        kind.update({"n": 1, "kb": int(kb_ok), "plain": int(plain_ok)})
        verdict = (
            f"kb {'ok ' if kb_ok else 'NO '} first {'ok ' if first_ok else 'NO '} plain {'ok ' if plain_ok else 'NO '}"
        )
        print(f"  [{sql_set.key} {part} {number}/{len(questions)}] {verdict}", flush=True)
        if part == "dev":  # test parts are scored, never read question by question
            print(f"      {item['q']}", flush=True)
            if flagged:
                print("      gold flagged: " + " | ".join(flagged), flush=True)
            for sql, found in misfires:
                print(f"      right statement flagged: {' '.join(sql.split())} -> {' | '.join(found)}", flush=True)
            if plain_ok and not first_ok and first is not None:
                print(f"      first statement: {' '.join(first.sql.split())} -> {first.error or 'ran'}", flush=True)
                print(f"      plain's (right): {' '.join(clean(plain_sql).split())}", flush=True)
            if not kb_ok:
                print("      gold: " + item["sql"], flush=True)
                print("      kb tried: " + " | ".join(f"{a.sql} -> {a.error or 'ran'}" for a in outcome.attempts))
                if outcome.votes:
                    print(f"      candidates: {outcome.votes.sentence()}", flush=True)
                if plain_ok:
                    print("      plain wrote: " + " ".join(clean(plain_sql).split()), flush=True)
    return tallies


def table(results: dict[tuple[str, str], Tally]) -> str:
    lines = [
        "| set | part | n | kb | kb, first statement as written | plain LlamaIndex | kb - plain | gold SELECTs refused "
        "| s / question kb vs plain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    titles = {s.key: s.title for s in SETS}
    for (key, part), tally in results.items():
        r = tally.row()
        lines.append(
            f"| {titles[key]} | {part} | {r['n']} | {r['kb_pct']}% ({r['kb_correct']}) | {r['kb_first_pct']}% | "
            f"{r['plain_pct']}% ({r['plain_correct']}) | {r['difference']:+.1f} | {r['gold_refused']} | "
            f"{r['seconds_per_question_kb']} vs {r['seconds_per_question_plain']} |"
        )
    return "\n".join(lines)


def engine_options(
    settings: Any,
    *,
    candidates: Optional[int] = None,
    source: Optional[str] = None,
    values: bool = True,
    rescue: Optional[int] = None,
    first_only: bool = False,
) -> dict[str, Any]:
    """The SQL engine's settings as kb builds them from config.yaml (rows and time limits raised for
    scoring), with the command line's changes (None: config.yaml's)."""
    options = engine_settings(settings.sql)
    options.update(
        row_limit=10_000,
        timeout_s=10,
        embed_model=lambda: build_embedding(settings),  # loaded only above max_tables_in_prompt, as in kb
        value_linking=values,
    )
    if candidates is not None:
        options["candidates"] = candidates
    if source is not None:
        options["candidate_source"] = source
    if rescue is not None:
        options["rescue_samples"] = rescue
    if first_only:
        options.update(rescue_samples=0, max_attempts=1)
    return options


def build_engine(
    llm: Any,
    readonly: MariaDBConnection,
    database: str,
    tables: list[str],
    options: dict[str, Any],
    cls: type[SQLEngine] = SQLEngine,
    **overrides: Any,
) -> SQLEngine:
    return cls(llm, readonly, database=database, tables=tables, **{**options, **overrides})


class Scorer:
    """Whether kb's outcome or plain's statement gives a question's gold rows."""

    def __init__(self, runner: SQLEngine, questions: list[dict]) -> None:
        self.runner = runner
        self.gold = {item["q"]: normalize(run_statement(runner, item["sql"])) for item in questions}

    def kb_right(self, outcome: Any, item: dict) -> bool:
        return outcome.failure is None and outcome.rows is not None and normalize(outcome.rows) == self.gold[item["q"]]

    def plain_right(self, sql: str, item: dict) -> bool:
        try:
            return normalize(run_statement(self.runner, clean(sql))) == self.gold[item["q"]]
        except Exception:  # the server rejected it
            return False


def scratch_example_store(settings: Any) -> SQLExampleStore:
    """An example store of this run's own in kb's database (emptied at each point of the curve,
    dropped at the end), embedded with the configured embedding model."""
    from kb.knowledge_base import KnowledgeBase

    kb = KnowledgeBase(settings)
    generation = kb.live_generation()
    vectors = MariaDBVectorStore(
        kb.connection, table_name=f"kb_benchmark_sql_examples_{os.getpid()}", embed_dim=generation.dim, full_text=False
    )
    return SQLExampleStore(vectors, kb.embed_model)


def print_progress(label: str, line: str) -> None:
    print(f"  [{label}] {line}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default=",".join(s.key for s in SETS))
    parser.add_argument("--parts", default="dev,test")
    parser.add_argument("--candidates", type=int, default=None, help="candidate statements (default: sql.candidates)")
    parser.add_argument("--limit", type=int, default=0, help="first N questions of each set (a quick look)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--no-plain", action="store_true", help="kb only (a quicker look while developing on dev)")
    parser.add_argument(
        "--candidate-source", choices=("samples", "prompts"), default=None, help="default: sql.candidate_source"
    )
    parser.add_argument("--temperature", type=float, default=None, help="the candidates' sampling temperature")
    parser.add_argument("--no-values", action="store_true", help="without value linking")
    parser.add_argument("--rescue", type=int, default=None, help="rescue samples (default: sql.rescue_samples)")
    parser.add_argument(
        "--audit-samples",
        type=int,
        default=0,
        help="statements sampled per question whose right ones the defect checks are tried on (precision)",
    )
    parser.add_argument("--audit-temperature", type=float, default=1.0, help="their sampling temperature")
    parser.add_argument(
        "--first-only",
        action="store_true",
        help="kb's first statement only: no correction, rescue or plain (a quick A/B of the prompt on dev)",
    )
    parser.add_argument(
        "--ablate",
        action="store_true",
        help="kb in full, plain once, then kb with each check, family of checks and mechanism off (sql_ablation.py)",
    )
    parser.add_argument("--ablate-values", action="store_true", help="with --ablate: value linking off too")
    parser.add_argument(
        "--ablate-checks-only", action="store_true", help="with --ablate: only the checks and their families off"
    )
    parser.add_argument(
        "--examples",
        metavar="COUNTS",
        help="approved pairs (sql_examples.py): the learning curve at these numbers of pairs, e.g. 0,5,10,20,all",
    )
    parser.add_argument(
        "--timing",
        action="store_true",
        help="the --ablate run without its configurations: kb in full and plain, warm-up, first and warm answers",
    )
    parser.add_argument(
        "--ablation-table",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="print one ablation table from the --json files of --ablate runs (one set each, or several)",
    )
    args = parser.parse_args()
    if args.ablate_values and not args.ablate:
        parser.error("--ablate-values switches value linking off in --ablate's runs: use it with --ablate")
    if args.ablation_table:
        joined = {
            label: SetAblation.from_row(row)
            for path in args.ablation_table
            for label, row in json.loads(path.read_text()).items()
        }
        print(ablation_table(joined, part_titles()))
        if any(a.calls_each_kb for a in joined.values()):
            print("\nwhere kb's time went (full runs):\n" + time_table(joined))
        return
    wanted_sets, wanted_parts = set(args.sets.split(",")), set(args.parts.split(","))
    settings = load_settings(ROOT / "config.yaml")
    candidates = args.candidates or settings.sql.candidates
    server = private_server(settings)
    server.start()
    load_demo_data(settings)
    llm = build_llm(settings)
    source = args.candidate_source or settings.sql.candidate_source
    memoised: Optional[MemoisedLlamaCPP] = None
    ablating = args.ablate or args.timing  # --timing is the ablation's first run alone
    if ablating:
        if not isinstance(llm, LocalLlamaCPP):
            raise SystemExit(
                "--ablate and --timing record the offline model's replies: run them on the offline profile (KB_PROFILE=local)"
            )
        memoised = MemoisedLlamaCPP.of(llm)
    ablations: dict[str, SetAblation] = {}
    curves: dict[str, dict[str, list[sql_examples.CurvePoint]]] = {}
    example_store = scratch_example_store(settings) if args.examples else None
    ablation_titles = part_titles()
    print(f"model: {settings.active_profile.llm.model} ({settings.profile}); candidates: {candidates} ({source})")
    results: dict[tuple[str, str], Tally] = {}
    for sql_set in SETS:
        if sql_set.key not in wanted_sets:
            continue
        database = load_sample(server, sql_set.sample) if sql_set.sample else settings.sql.database
        readonly = MariaDBConnection(readonly_url(settings).set(database=database))
        tables = [row[0] for row in readonly.fetchall("SHOW TABLES")]
        questions = [
            q for q in yaml.safe_load((DATA / sql_set.file).read_text()) if q.get("part", "test") in wanted_parts
        ]
        if args.limit:
            questions = questions[: args.limit]

        options = engine_options(
            settings,
            candidates=candidates,
            source=source,
            values=not args.no_values,
            rescue=args.rescue,
            first_only=args.first_only,
        )
        make_engine = partial(build_engine, memoised or llm, readonly, database, tables, options)
        if ablating:
            assert memoised is not None
            scorer = Scorer(make_engine(value_linking=False), questions)
            for part in sorted({q.get("part", "test") for q in questions}):
                label = f"{sql_set.key}/{part}"
                ablations[label] = ablate(
                    [q for q in questions if q.get("part", "test") == part],
                    make_engine,
                    None if args.no_plain else plain_llamaindex(scorer.runner, llm),
                    memoised.memo,
                    scorer.kb_right,
                    scorer.plain_right,
                    args.ablate_values,
                    partial(print_progress, label),
                    switched=not args.timing,
                    checks_only=args.ablate_checks_only,
                )
                print("\n" + ablation_table(ablations, ablation_titles), flush=True)
                if args.json:
                    args.json.write_text(json.dumps({k: a.row() for k, a in ablations.items()}, indent=2))
            scorer.runner.close()
            continue
        if example_store is not None:
            scorer = Scorer(make_engine(value_linking=False), questions)
            curves[sql_set.key] = sql_examples.curve(
                database,
                questions,
                args.examples.split(","),
                example_store,
                make_engine,
                llm,
                scorer.kb_right,
                scorer.plain_right,
                settings.sql.examples_k,
                settings.sql.examples_min_similarity,
                partial(print_progress, sql_set.key),
                with_plain=not args.no_plain,
                show_misses=wanted_parts == {"dev"},
            )
            scorer.runner.close()
            print("\n" + sql_examples.table(curves, {s.key: s.title for s in SETS}), flush=True)
            if args.json:
                args.json.write_text(
                    json.dumps({k: {lb: [p.row() for p in ps] for lb, ps in v.items()} for k, v in curves.items()})
                )
            continue
        engine = make_engine()
        if args.temperature is not None:
            engine.sample_temperature = args.temperature
        plain = None if args.no_plain or args.first_only else plain_llamaindex(engine, llm)
        for part, tally in evaluate(
            sql_set, questions, engine, plain, (args.audit_samples, args.audit_temperature)
        ).items():
            results[(sql_set.key, part)] = tally
        print("\n" + table(results), flush=True)  # as soon as a set is done
    if example_store is not None:
        example_store.store.drop()
    if curves:
        print(
            f"\napproved pairs ({time.strftime('%Y-%m-%d')}):\n"
            + sql_examples.table(curves, {s.key: s.title for s in SETS})
        )
        print("\nby the similarity of the closest pair shown:\n" + sql_examples.by_similarity(curves))
        return
    if ablating:
        assert memoised is not None
        print(f"\nablation ({time.strftime('%Y-%m-%d')}):\n" + ablation_table(ablations, ablation_titles))
        print("\nwhere kb's time went (full runs):\n" + time_table(ablations))
        print(f"model replies: {memoised.memo.written} written, {memoised.memo.served} served from the memo")
        return
    print(f"\nfinal ({time.strftime('%Y-%m-%d')}, candidates {candidates}):\n" + table(results))
    for (key, part), tally in results.items():
        kinds = ", ".join(f"{k} {c['kb']}/{c['plain']}/{c['n']}" for k, c in sorted(tally.by_kind.items()))
        print(f"  {key} {part} by kind (kb/plain/n): {kinds}")
        d, r = tally.defects, tally.rescues
        print(
            f"  {key} {part} a statement ran with a defect on {d['n']}: first statement right {d['first']}, kb {d['kb']}"
        )
        print(f"  {key} {part} rescue samples written on {r['n']}: one answered {r['answered']}, kb {r['kb']}")
        print(f"  {key} {part} gold statements in which a defect check fires (wrongly): {tally.gold_flagged}")
        print(
            f"  {key} {part} questions where a check fires on a statement whose rows are right: {tally.right_flagged} "
            f"(of {tally.right_statements} right statements tried); first statement right, kb's answer not: "
            f"{tally.first_lost}"
        )
    if args.json:
        figures = {f"{key}/{part}": tally.row() for (key, part), tally in results.items()}
        args.json.write_text(json.dumps({"candidates": candidates, "sets": figures}, indent=2))


if __name__ == "__main__":
    main()
