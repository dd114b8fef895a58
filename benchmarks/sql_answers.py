"""The database route's answer sentences: does the sentence the model writes from the rows carry them?

For each question of the SQL sets (benchmarks/data, the parts asked for) the gold statement is run and
its rows are handed to kb's answer writer (``SQLEngine.respond``, the prompt every database answer
goes through), so that only the sentence is measured, not the statement. An answer covers a row when
one of the row's values appears in it as written (numbers also rounded to 2 decimals, without
trailing zeros, or with a thousands separator; dates also with the month's name; case aside). Printed per set and part, for results of
one row and of several (2 to ``--max-rows``): the answers that cover every row. A result of several
rows answered with one of them ("Karl Johansson's email is ..." where three customers have that
name) is the miss this counts. Misses are printed answer by answer for ``dev`` parts only.

Run: ``.venv/bin/python benchmarks/sql_answers.py [--sets demo,chinook,...] [--parts dev] [--max-rows 10]``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from common import ROOT
from sample_databases import load_sample
from sql_accuracy import DATA, SETS, run_statement

from kb.config import load_settings
from kb.engines.sql import SQLEngine, SQLOutcome
from kb.models.factories import build_llm
from kb.server.database import private_server
from kb.sql.business_database import load_demo_data, readonly_url
from kb.stores.connection import MariaDBConnection

_ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d(?: \d\d:\d\d:\d\d)?$")


def spellings(value: Any) -> set[str]:
    """How an answer may write a value: as the result shows it, and a number also rounded."""
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


def covers(answer: str, row: dict[str, Any]) -> bool:
    said = answer.lower()
    return any(s in said for value in row.values() if value is not None for s in spellings(value))


@dataclass
class Tally:
    one: int = 0
    one_covered: int = 0
    several: int = 0
    several_covered: int = 0
    seconds: float = 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default=",".join(s.key for s in SETS))
    parser.add_argument("--parts", default="dev")
    parser.add_argument("--max-rows", type=int, default=10)
    parser.add_argument("--several-only", action="store_true", help="results of one row left out (quicker)")
    parser.add_argument("--json", type=Path, help="write every answer here too (question, rows, answer)")
    args = parser.parse_args()
    wanted_sets, wanted_parts = set(args.sets.split(",")), set(args.parts.split(","))
    settings = load_settings(ROOT / "config.yaml")
    server = private_server(settings)
    server.start()
    load_demo_data(settings)
    llm = build_llm(settings)
    results: dict[tuple[str, str], Tally] = {}
    written: list[dict[str, Any]] = []
    for sql_set in SETS:
        if sql_set.key not in wanted_sets:
            continue
        database = load_sample(server, sql_set.sample) if sql_set.sample else settings.sql.database
        readonly = MariaDBConnection(readonly_url(settings).set(database=database))
        tables = [row[0] for row in readonly.fetchall("SHOW TABLES")]
        engine = SQLEngine(llm, readonly, database=database, tables=tables, row_limit=10_000, timeout_s=10)
        for item in yaml.safe_load((DATA / sql_set.file).read_text()):
            part = item.get("part", "test")
            if part not in wanted_parts:
                continue
            rows = run_statement(engine, item["sql"])
            if not rows or len(rows) > args.max_rows or (args.several_only and len(rows) == 1):
                continue
            tally = results.setdefault((sql_set.title, part), Tally())
            started = time.perf_counter()
            answer = str(engine.respond(SQLOutcome(item["q"], sql=item["sql"], rows=rows)).response)
            tally.seconds += time.perf_counter() - started
            covered = all(covers(answer, row) for row in rows)
            written.append({"set": sql_set.key, "part": part, "q": item["q"], "rows": rows, "answer": answer})
            if len(rows) == 1:
                tally.one += 1
                tally.one_covered += covered
            else:
                tally.several += 1
                tally.several_covered += covered
            if part == "dev" and not covered:  # test parts are scored, not read
                missed = sum(not covers(answer, row) for row in rows)
                print(f"  {sql_set.key}: {item['q']!r}: {missed} of {len(rows)} rows not in {answer!r}")
        engine.close()
    if args.json:
        args.json.write_text(json.dumps(written, indent=1, default=str))
    print(f"\nmodel {settings.active_profile.llm.model}, {time.strftime('%Y-%m-%d')}")
    print("| set | part | one row: covered | several rows: every row covered | s / answer |")
    print("|---|---|---|---|---|")
    for (title, part), t in results.items():
        answers = t.one + t.several
        print(
            f"| {title} | {part} | {t.one_covered}/{t.one} | {t.several_covered}/{t.several} | "
            f"{t.seconds / max(answers, 1):.2f} |"
        )


if __name__ == "__main__":
    main()
