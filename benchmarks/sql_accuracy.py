"""Text-to-SQL execution accuracy: kb's SQL engine against plain LlamaIndex, same model, same run.

Two labelled sets with gold SQL (benchmarks/data): 64 questions over the demo business database and
42 over Chinook (a database nobody on kb wrote, ../shared/eval/chinook). For each question:

* kb: ``SQLEngine`` (kb's schema description and prompt, the read-only guard, up to 2 corrections);
* plain LlamaIndex: ``NLSQLTableQueryEngine(sql_only=True)`` with its own prompt and table info, its
  SQL run read-only (LlamaIndex itself would run it as it is).

A question counts as correct when the rows equal the gold rows as multisets (values compared after
rounding numbers to 2 decimals; the order of columns is free, the set of columns is not). Also
printed: kb's accuracy on its first attempt alone, time per question, and how many gold (legitimate)
SELECTs the guard refuses (target 0).

Run: ``.venv/bin/python benchmarks/sql_accuracy.py [--only demo|chinook] [--limit N]``
(KB_PROFILE picks the model, the offline default unless set).
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from common import ROOT, SHARED

from kb.business import load_demo_data, readonly_url
from kb.config import load_settings
from kb.database import private_server
from kb.engines.sql import SQLEngine
from kb.engines.sql_guard import CheckedSQL, SQLRefused, clean
from kb.models import build_llm
from kb.stores.connection import MariaDBConnection, quote_identifier

DATA = Path(__file__).parent / "data"
CHINOOK_SQL = SHARED / "eval" / "chinook" / "Chinook_MySql.sql"
CHINOOK = "Chinook"


def load_chinook(server: Any) -> None:
    """Create the Chinook database on kb's private server once, readable by kb's read-only account."""
    admin = MariaDBConnection(server.admin_url(), pool_size=1)
    try:
        present = admin.fetchall("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (CHINOOK,))
        if present[0][0] < 11:
            script = re.sub(r"/\*.*?\*/", "", CHINOOK_SQL.read_text(encoding="utf-8"), flags=re.S)
            with admin.cursor() as cur:
                for statement in (s.strip() for s in re.split(r";\s*\n", script)):
                    if statement:
                        cur.execute(statement)
        user, _ = server.readonly_credentials()
        for host in ("localhost", "127.0.0.1"):
            admin.execute(f"GRANT SELECT ON {quote_identifier(CHINOOK)}.* TO '{user}'@'{host}'")
    finally:
        admin.dispose()


def normalize(rows: list[dict[str, Any]] | list[tuple]) -> Counter:
    def value(v: Any) -> str:
        if isinstance(v, (int, float, Decimal)) and not isinstance(v, bool):
            return f"{float(v):.2f}"
        return re.sub(r"^(\d{4}-\d{2}-\d{2})[T ]00:00:00$", r"\1", str(v))  # midnight datetime = the date

    return Counter(tuple(sorted(value(v) for v in (r.values() if isinstance(r, dict) else r))) for r in rows)


def run_statement(engine: SQLEngine, sql: str) -> list[dict[str, Any]]:
    rows, _ = engine.run(CheckedSQL(original=sql, sql=sql, tables=()))
    return rows


def plain_llamaindex(engine: SQLEngine, llm: Any) -> Any:
    from llama_index.core import MockEmbedding, SQLDatabase
    from llama_index.core.query_engine import NLSQLTableQueryEngine

    database = SQLDatabase(engine.readonly.engine, include_tables=engine.tables)
    # synthesize_response=False: only the SQL is scored (kb is asked for no answer text either); LlamaIndex
    # would otherwise also write an answer from the SQL text, which costs minutes on a CPU and is not scored.
    return NLSQLTableQueryEngine(
        sql_database=database,
        tables=engine.tables,
        llm=llm,
        sql_only=True,
        synthesize_response=False,
        embed_model=MockEmbedding(embed_dim=1),
    )


def evaluate(name: str, questions: list[dict], engine: SQLEngine, plain: Any) -> dict[str, Any]:
    results = {"kb": [], "kb_first": [], "plain": []}
    seconds = {"kb": 0.0, "plain": 0.0}
    gold_refused = 0
    by_kind: dict[str, Counter] = {}
    failures = []
    for number, item in enumerate(questions, start=1):
        gold = normalize(run_statement(engine, item["sql"]))
        try:
            engine.guard.check(item["sql"])
        except SQLRefused as refusal:
            gold_refused += 1
            print(f"  guard refused the gold SQL of {item['q']!r}: {refusal}")
        t = time.perf_counter()
        outcome = engine.compute(item["q"])  # the SQL and its rows; no answer text is written (none is scored)
        seconds["kb"] += time.perf_counter() - t
        kb_ok = outcome.failure is None and outcome.rows is not None and normalize(outcome.rows) == gold
        first_ok = kb_ok and len(outcome.attempts) == 1
        t = time.perf_counter()
        plain_sql = str(plain.query(item["q"]).metadata.get("sql_query", ""))
        try:
            plain_rows = run_statement(engine, clean(plain_sql))
            plain_ok = normalize(plain_rows) == gold
        except Exception:  # the server rejected it
            plain_ok = False
        seconds["plain"] += time.perf_counter() - t
        for key, ok in (("kb", kb_ok), ("kb_first", first_ok), ("plain", plain_ok)):
            results[key].append(ok)
        kind = by_kind.setdefault(item["kind"], Counter())
        kind.update({"n": 1, "kb": kb_ok, "plain": plain_ok})
        if not kb_ok:
            failures.append((item["q"], [(a.sql, a.error) for a in outcome.attempts], item["sql"]))
        print(
            f"  [{name} {number}/{len(questions)}] kb {'ok ' if kb_ok else 'NO '} plain {'ok ' if plain_ok else 'NO '}"
            f"({seconds['kb']:.0f} s / {seconds['plain']:.0f} s so far) {item['q'][:70]}",
            flush=True,
        )
        if not kb_ok:  # shown as it happens, so a long run can be read while it goes on
            print(
                "      kb tried: " + " | ".join(f"{a.sql} -> {a.error or 'ran'}" for a in outcome.attempts), flush=True
            )
    return {
        "results": results,
        "seconds": seconds,
        "gold_refused": gold_refused,
        "by_kind": by_kind,
        "failures": failures,
        "n": len(questions),
    }


def report(name: str, outcome: dict[str, Any]) -> None:
    n = outcome["n"]
    r = outcome["results"]
    pct = {key: 100.0 * sum(values) / n for key, values in r.items()}
    print(f"\n{name}: {n} questions")
    print("| system | execution accuracy | first attempt | s / question |")
    print("|---|---|---|---|")
    print(
        f"| kb SQLEngine | {pct['kb']:.1f}% ({sum(r['kb'])}/{n}) | {pct['kb_first']:.1f}% | "
        f"{outcome['seconds']['kb'] / n:.1f} |"
    )
    print(
        f"| plain LlamaIndex NLSQLTableQueryEngine | {pct['plain']:.1f}% ({sum(r['plain'])}/{n}) | - | "
        f"{outcome['seconds']['plain'] / n:.1f} |"
    )
    print(
        f"kb - plain: {pct['kb'] - pct['plain']:+.1f} points; gold SELECTs refused by the guard: "
        f"{outcome['gold_refused']}/{n}"
    )
    print(
        "by kind: "
        + ", ".join(
            f"{k} kb {c['kb']}/{c['n']} plain {c['plain']}/{c['n']}" for k, c in sorted(outcome["by_kind"].items())
        )
    )
    for question, attempts, gold in outcome["failures"]:
        print(f"  kb missed: {question}\n    gold: {gold}")
        for sql, error in attempts:
            print(f"    tried: {sql}" + (f"  -> {error}" if error else ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["demo", "chinook"])
    parser.add_argument("--limit", type=int, default=0, help="first N questions of each set (a quick look)")
    args = parser.parse_args()
    settings = load_settings(ROOT / "config.yaml")
    server = private_server(settings)
    server.start()
    load_demo_data(settings)
    llm = build_llm(settings)
    print(f"model: {settings.active_profile.llm.model} ({settings.profile}); machine: 2 cores (see README)")
    sets = []
    if args.only in (None, "demo"):
        readonly = MariaDBConnection(readonly_url(settings))
        tables = [row[0] for row in readonly.fetchall("SHOW TABLES")]
        sets.append(("demo business database", "sql_demo.yaml", readonly, settings.sql.database, tables))
    if args.only in (None, "chinook"):
        if not CHINOOK_SQL.is_file():
            raise SystemExit(f"Chinook not found at {CHINOOK_SQL}: the benchmarks read ../shared/eval")
        load_chinook(server)
        readonly = MariaDBConnection(readonly_url(settings).set(database=CHINOOK))
        tables = [row[0] for row in readonly.fetchall("SHOW TABLES")]
        sets.append(("Chinook", "sql_chinook.yaml", readonly, CHINOOK, tables))
    outcomes = []
    for name, file, readonly, database, tables in sets:
        questions = yaml.safe_load((DATA / file).read_text())
        if args.limit:
            questions = questions[: args.limit]
        engine = SQLEngine(llm, readonly, database=database, tables=tables, row_limit=10_000, timeout_s=10)
        outcomes.append((name, evaluate(name, questions, engine, plain_llamaindex(engine, llm))))
        report(name, outcomes[-1][1])  # as soon as a set is done
    if len(outcomes) > 1:
        print("\nsummary:")
        for name, outcome in outcomes:
            n, r = outcome["n"], outcome["results"]
            print(f"  {name}: kb {100 * sum(r['kb']) / n:.1f}%, plain LlamaIndex {100 * sum(r['plain']) / n:.1f}%")


if __name__ == "__main__":
    main()
