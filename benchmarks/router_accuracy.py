"""Router accuracy: the LLM selector and the offline one, same run, in two domains.

* demo: the demo documents (data/docs) and the demo business database; 81 labelled questions
  (tests/data/route_questions.yaml) in a ``dev`` part (may be studied) and a ``test`` part (scored);
* mariadb-docs + classicmodels: the MariaDB Server documentation (1,278 pages from ../shared/eval,
  indexed once into a kept benchmark database) and the classicmodels sample database; 54 questions
  written before the router ever ran on them (benchmarks/data), ``test`` only;
* wide: the demo documents and the 104-table wide database (benchmarks/wide_database.py): the demo's
  labelled questions, plus every SQL set's test questions (benchmarks/data), all of them ``database``
  questions, scored in a part of their own (``sql-test``): the offline selector with a hundred
  tables to compare a question with.

Misses are printed question by question for ``dev`` parts only.
Run: ``.venv/bin/python benchmarks/router_accuracy.py [--domains demo,docs,wide] [--selectors offline,llm]``.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wide_database
import yaml
from common import ROOT, SHARED, kept_database, scratch_database
from sample_databases import load_sample
from sql_accuracy import DATA as SQL_DATA
from sql_accuracy import SETS as SQL_SETS

from kb.business_database.provisioning import DATA as DEMO_DATA
from kb.business_database.provisioning import load_demo_data, readonly_url
from kb.config import load_settings
from kb.knowledge_base import KnowledgeBase
from kb.server.database import private_server

DEMO_QUESTIONS = ROOT / "tests" / "data" / "route_questions.yaml"
DOCS_QUESTIONS = Path(__file__).parent / "data" / "route_questions_docs_classicmodels.yaml"
MARIADB_DOCS = SHARED / "eval" / "mariadb-docs"
ROUTES = ("documents", "database", "both")


@dataclass
class Tally:
    confusion: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    fallbacks: int = 0

    @property
    def n(self) -> int:
        return sum(self.confusion.values())

    @property
    def correct(self) -> int:
        return sum(v for (want, got), v in self.confusion.items() if want == got)


def measure(kb: KnowledgeBase, questions: list[dict], selector: str, domain: str) -> dict[str, Tally]:
    tallies: dict[str, Tally] = {}
    for item in questions:
        part = item.get("part", "test")
        tally = tallies.setdefault(part, Tally())
        started = time.perf_counter()
        decision = kb.route(item["q"])
        tally.seconds += time.perf_counter() - started
        tally.confusion[(item["route"], decision.route)] += 1
        tally.fallbacks += decision.selector == "llm+offline"
        if part == "dev" and decision.route != item["route"]:  # test parts are scored, not read
            print(
                f"  {domain} {selector}: {item['q']!r}: expected {item['route']}, got {decision.route} ({decision.reason})"
            )
    return tallies


def config_for(base: dict[str, Any], database_url: Any, sql_url: Any, selector: str, sql_database: str) -> dict:
    return {
        **base,
        "database": {"url": database_url.render_as_string(hide_password=False)},
        "sql": {"url": sql_url.render_as_string(hide_password=False), "database": sql_database},
        "router": {"selector": selector},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--domains", default="demo,docs")
    parser.add_argument("--selectors", default="offline,llm")
    args = parser.parse_args()
    domains, selectors = args.domains.split(","), args.selectors.split(",")
    project = load_settings(ROOT / "config.yaml")
    base = yaml.safe_load((ROOT / "config.yaml").read_text()) or {}
    results: dict[tuple[str, str, str], Tally] = {}
    llm = None
    if "demo" in domains:
        load_demo_data(project)
        questions = yaml.safe_load(DEMO_QUESTIONS.read_text())
        with scratch_database() as (url, _):
            for selector in selectors:
                kb = KnowledgeBase.from_config(
                    config_for(base, url, readonly_url(project), selector, project.sql.database), llm=llm
                )
                kb.index_directory(DEMO_DATA / "docs", progress=False)
                llm = kb.llm  # one model for every run
                for part, tally in measure(kb, questions, selector, "demo").items():
                    results[("demo", part, selector)] = tally
                kb.close()
    if "docs" in domains:
        server = private_server(project)
        database = load_sample(server, "classicmodels")
        questions = yaml.safe_load(DOCS_QUESTIONS.read_text())
        url = kept_database("kbbench_mariadb_docs")
        for selector in selectors:
            kb = KnowledgeBase.from_config(
                config_for(base, url, readonly_url(project).set(database=database), selector, database), llm=llm
            )
            report = kb.index_directory(MARIADB_DOCS, progress=False)  # incremental: built once, then skipped
            print(
                f"  MariaDB docs: {len(report.added) + len(report.updated)} indexed, {len(report.unchanged)} unchanged"
            )
            llm = kb.llm
            for part, tally in measure(kb, questions, selector, "docs").items():
                results[("mariadb-docs + classicmodels", part, selector)] = tally
            kb.close()
    if "wide" in domains:
        load_demo_data(project)
        wide_database.build(private_server(project), project.sql.database)
        questions = yaml.safe_load(DEMO_QUESTIONS.read_text()) + [
            {"q": item["q"], "route": "database", "part": "sql-test"}
            for sql_set in SQL_SETS
            for item in yaml.safe_load((SQL_DATA / sql_set.file).read_text())
            if item.get("part", "test") == "test"
        ]
        with scratch_database() as (url, _):
            for selector in selectors:
                kb = KnowledgeBase.from_config(
                    config_for(
                        base, url, readonly_url(project).set(database=wide_database.NAME), selector, wide_database.NAME
                    ),
                    llm=llm,
                )
                kb.index_directory(DEMO_DATA / "docs", progress=False)
                llm = kb.llm
                for part, tally in measure(kb, questions, selector, "wide").items():
                    results[("demo docs + wide (104 tables)", part, selector)] = tally
                kb.close()
    print(f"\nmodel {project.active_profile.llm.model}, {time.strftime('%Y-%m-%d')}")
    print("| domain | part | selector | accuracy | documents | database | both | s / question | fell back to offline |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (domain, part, selector), tally in sorted(results.items()):
        per_route = []
        for route in ROUTES:
            total = sum(v for (want, _), v in tally.confusion.items() if want == route)
            per_route.append(f"{tally.confusion[(route, route)]}/{total}")
        print(
            f"| {domain} | {part} | {selector} | {100 * tally.correct / tally.n:.1f}% ({tally.correct}/{tally.n}) | "
            f"{' | '.join(per_route)} | {tally.seconds / tally.n:.2f} | {tally.fallbacks if selector == 'llm' else '-'} |"
        )


if __name__ == "__main__":
    main()
