"""How often each of kb's defect checks fires on the gold statements of every labelled set, dev parts
included: each firing is a check calling a right statement wrong, so every figure must be 0.

No model runs: every gold statement of benchmarks/data (the sets of ``sql_accuracy.py``) runs on its
own database, and :func:`kb.engines.sql.checks.defects` looks at it with the schema, the rows it
returned, its question and the rows past its ``LIMIT`` (the tie probe), as the engine would. Printed: one row per check (:data:`CHECKS`), one
column per part, and each firing's statement and message beneath.

With ``--only-full-group-by``, each gold statement also runs under MariaDB's ``ONLY_FULL_GROUP_BY``
and the statements it refuses are counted: what that strictness would cost right answers if kb
used it in place of the "arbitrary row" check.

Run: ``.venv/bin/python benchmarks/sql_gold_audit.py [--sets demo,chinook,...] [--only-full-group-by]``
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import yaml
from common import ROOT
from sample_databases import load_sample
from sql_accuracy import DATA, SETS

from kb.business_database.provisioning import load_demo_data, readonly_url
from kb.config import load_settings
from kb.engines.sql.checks import CHECKS, defects
from kb.engines.sql.guard import ReadOnlyGuard
from kb.engines.sql.schema import SchemaDescriber
from kb.engines.sql.ties import tie_probe, ties_throughout
from kb.server.database import private_server
from kb.stores.connection import MariaDBConnection


def fetched(readonly: MariaDBConnection, sql: str) -> list[dict[str, Any]]:
    """The rows of ``sql`` as dicts by column name."""
    with readonly.cursor() as cursor:
        cursor.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(s.key for s in SETS))
    parser.add_argument(
        "--only-full-group-by",
        action="store_true",
        help="also run each gold statement under MariaDB's ONLY_FULL_GROUP_BY and count those it refuses "
        "(the server's strictness as an alternative to the 'arbitrary row' check)",
    )
    args = parser.parse_args()
    wanted = set(args.sets.split(","))
    settings = load_settings(ROOT / "config.yaml")
    server = private_server(settings)
    server.start()
    load_demo_data(settings)
    fired: Counter[tuple[str, str]] = Counter()
    statements: Counter[str] = Counter()
    strict_refused: Counter[str] = Counter()  # gold statements ONLY_FULL_GROUP_BY refuses
    firings: list[str] = []
    for sql_set in (s for s in SETS if s.key in wanted):
        database = load_sample(server, sql_set.sample) if sql_set.sample else settings.sql.database
        readonly = MariaDBConnection(readonly_url(settings).set(database=database))
        tables = [row[0] for row in readonly.fetchall("SHOW TABLES")]
        schema = SchemaDescriber(readonly, database, tables)
        guard = ReadOnlyGuard(tables)
        for item in yaml.safe_load((DATA / sql_set.file).read_text()):
            part = f"{sql_set.key}/{item.get('part', 'test')}"
            statements[part] += 1
            sql = guard.check(item["sql"]).sql
            rows = fetched(readonly, sql)
            probe = tie_probe(sql)  # the engine's second look past a LIMIT (the "cut ties" check)
            cut = None
            if probe is not None and len(rows) >= probe[1] and ties_throughout(fetched(readonly, probe[0]), probe[1]):
                cut = (probe[1], probe[2])
            if args.only_full_group_by:
                try:
                    fetched(readonly, f"SET STATEMENT sql_mode = CONCAT(@@sql_mode, ',ONLY_FULL_GROUP_BY') FOR {sql}")
                except Exception as exc:  # refused by the strict mode: a right statement it would have lost
                    strict_refused[part] += 1
                    firings.append(f"{part}: {item['q']}\n  {sql}\n  ONLY_FULL_GROUP_BY: {str(exc).splitlines()[0]}")
            for found in defects(sql, schema, rows=rows, question=item["q"], cut_ties=cut):
                fired[(found.check, part)] += 1
                firings.append(f"{part}: {item['q']}\n  {sql}\n  {found.check}: {found}")
        readonly.dispose()
    parts = list(statements)
    print("| check | " + " | ".join(parts) + " |")
    print("|---|" + "---:|" * len(parts))
    print("| gold statements | " + " | ".join(str(statements[p]) for p in parts) + " |")
    for check in CHECKS:
        print(f"| {check.name} | " + " | ".join(str(fired[(check.name, p)]) for p in parts) + " |")
    if args.only_full_group_by:
        print("| refused under ONLY_FULL_GROUP_BY | " + " | ".join(str(strict_refused[p]) for p in parts) + " |")
    print(f"\n{sum(fired.values())} firings on {sum(statements.values())} gold statements")
    for firing in firings:
        print(firing)


if __name__ == "__main__":
    main()
