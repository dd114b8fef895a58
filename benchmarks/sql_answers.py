"""The database route's answer sentences: does the sentence the model writes from the rows carry them?

For each question of the SQL sets (benchmarks/data, the parts asked for) the gold statement is run and
its rows are handed to kb's answer writer (``SQLEngine.respond``, the prompt every database answer
goes through), so that only the sentence is measured, not the statement. A sentence names a row by
the rules of :mod:`kb.engines.answer_rows` (one of the row's values as written, numbers also rounded
or with a thousands separator, dates also with the month's name; case aside). Printed per set and
part, for results of one row and of several (2 to ``--max-rows``): the answers whose sentence names
every row, and those kb added its note of the rows left out to. A result of several rows answered
with one of them ("Karl Johansson's email is ..." where three customers have that name) is the miss
this counts. With ``--long``, results longer than the prompt shows (``ROWS_SHOWN``) too: the answers
that give the result's number of rows (the others get kb's line saying they were written from the
first rows). Misses are printed answer by answer for ``dev`` parts only.

Run: ``.venv/bin/python benchmarks/sql_answers.py [--sets demo,chinook,...] [--parts dev] [--max-rows 10] [--long]``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from common import ROOT
from sample_databases import load_sample
from sql_accuracy import DATA, SETS, run_statement

from kb.business_database.provisioning import load_demo_data, readonly_url
from kb.config import load_settings
from kb.engines.answer_rows import ROWS_SHOWN, names_row
from kb.engines.sql.engine import SQLEngine
from kb.engines.sql.loop import SQLOutcome
from kb.models.factories import build_llm
from kb.server.database import private_server
from kb.stores.connection import MariaDBConnection


@dataclass
class Tally:
    one: int = 0
    one_covered: int = 0
    several: int = 0
    several_covered: int = 0  # by the model's sentence
    several_noted: int = 0  # answers kb added its note of the rows left out to
    long: int = 0  # results of more rows than the prompt shows
    long_counted: int = 0  # whose sentence gives the number of rows
    seconds: float = 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default=",".join(s.key for s in SETS))
    parser.add_argument("--parts", default="dev")
    parser.add_argument("--max-rows", type=int, default=10)
    parser.add_argument("--several-only", action="store_true", help="results of one row left out (quicker)")
    parser.add_argument("--long", action="store_true", help=f"results of more than {ROWS_SHOWN} rows too")
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
            long = len(rows) > ROWS_SHOWN
            if long and not args.long:
                continue
            if not rows or (len(rows) > args.max_rows and not long) or (args.several_only and len(rows) == 1):
                continue
            tally = results.setdefault((sql_set.title, part), Tally())
            started = time.perf_counter()
            response = engine.respond(SQLOutcome(item["q"], sql=item["sql"], rows=rows))
            tally.seconds += time.perf_counter() - started
            answer = str(response.response)
            noted = bool(response.metadata.get("rows_left_out"))  # the sentence left rows out: kb added a note
            covered = not noted and all(names_row(answer, row) for row in rows)
            written.append({"set": sql_set.key, "part": part, "q": item["q"], "rows": rows, "answer": answer})
            if long:
                tally.long += 1
                counted = "rows_not_shown" not in response.metadata  # else kb added its line
                tally.long_counted += counted
                if part == "dev" and not counted:
                    print(f"  {sql_set.key}: {item['q']!r}: {len(rows)} rows, not given in {answer!r}")
                continue
            if len(rows) == 1:
                tally.one += 1
                tally.one_covered += covered
            else:
                tally.several += 1
                tally.several_covered += covered
                tally.several_noted += noted
            if part == "dev" and not covered:  # test parts are scored, not read
                print(f"  {sql_set.key}: {item['q']!r}: not every one of {len(rows)} rows in {answer!r}")
        engine.close()
    if args.json:
        args.json.write_text(json.dumps(written, indent=1, default=str))
    print(f"\nmodel {settings.active_profile.llm.model}, {time.strftime('%Y-%m-%d')}")
    print(
        "| set | part | one row: covered | several rows: every row covered by the model's sentence | "
        "kb's note of the rows left out added | longer than shown: the sentence gives the number of rows | "
        "s / answer |"
    )
    print("|---|---|---|---|---|---|---|")
    for (title, part), t in results.items():
        answers = t.one + t.several + t.long
        long = f"{t.long_counted}/{t.long}" if args.long else "-"
        print(
            f"| {title} | {part} | {t.one_covered}/{t.one} | {t.several_covered}/{t.several} | "
            f"{t.several_noted}/{t.several} | {long} | {t.seconds / max(answers, 1):.2f} |"
        )


if __name__ == "__main__":
    main()
