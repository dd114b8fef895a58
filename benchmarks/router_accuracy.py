"""Router accuracy on the 45 labelled demo questions: the LLM selector and the offline one, same run.

The LLM selector is what the default profile uses; the offline selector (embeddings and language
cues, no LLM) is its fallback when a reply is not a route, and the choice for a ``small`` model.
Run: ``.venv/bin/python benchmarks/router_accuracy.py`` (KB_PROFILE picks the model).
"""

from __future__ import annotations

import time
from collections import Counter

import yaml
from common import ROOT, scratch_database

from kb.business import DATA as DEMO_DATA
from kb.business import load_demo_data, readonly_url
from kb.config import load_settings
from kb.knowledge_base import KnowledgeBase

QUESTIONS = ROOT / "tests" / "data" / "route_questions.yaml"


def main() -> None:
    questions = yaml.safe_load(QUESTIONS.read_text())
    project = load_settings(ROOT / "config.yaml")
    load_demo_data(project)
    base = yaml.safe_load((ROOT / "config.yaml").read_text()) or {}
    with scratch_database() as (url, _):
        results = {}
        llm = None
        for selector in ("offline", "llm"):
            config = {
                **base,
                "database": {"url": url.render_as_string(hide_password=False)},
                "sql": {"url": readonly_url(project).render_as_string(hide_password=False)},
                "router": {"selector": selector},
            }
            kb = KnowledgeBase.from_config(config, llm=llm)
            kb.index_directory(DEMO_DATA / "docs", progress=False)
            llm = kb.llm  # one model for both runs
            confusion: Counter = Counter()
            fallbacks = 0
            started = time.perf_counter()
            for item in questions:
                decision = kb.route(item["q"])
                confusion[(item["route"], decision.route)] += 1
                fallbacks += decision.selector == "llm+offline"
                if decision.route != item["route"]:
                    print(
                        f"  {selector}: {item['q']!r}: expected {item['route']}, got {decision.route} ({decision.reason})"
                    )
            seconds = (time.perf_counter() - started) / len(questions)
            correct = sum(n for (want, got), n in confusion.items() if want == got)
            results[selector] = (correct, seconds, fallbacks, confusion)
            kb.close()
    n = len(questions)
    print(f"\n{n} labelled questions (tests/data/route_questions.yaml); model {project.active_profile.llm.model}")
    print("| selector | accuracy | documents | database | both | s / question | fell back to offline |")
    print("|---|---|---|---|---|---|---|")
    for selector, (correct, seconds, fallbacks, confusion) in results.items():
        per_route = []
        for route in ("documents", "database", "both"):
            total = sum(v for (want, _), v in confusion.items() if want == route)
            per_route.append(f"{confusion[(route, route)]}/{total}")
        print(
            f"| {selector} | {100 * correct / n:.1f}% ({correct}/{n}) | {' | '.join(per_route)} | {seconds:.2f} | "
            f"{fallbacks if selector == 'llm' else '-'} |"
        )


if __name__ == "__main__":
    main()
