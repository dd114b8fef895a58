"""The README's main command: the whole of kb on the offline default models.

Starts kb's MariaDB, loads the demo business database, indexes ``data/docs`` (incrementally: a
second run embeds nothing), reads the database's SQL prompts (up to the question) into the model's prompt cache (what
``kb serve`` does at start-up), and asks three questions, one per route, printing the route and why,
the answer, the sources and the SQL with its rows.
"""

from __future__ import annotations

from kb.business_database.provisioning import DATA, load_demo_data
from kb.config import Settings
from kb.engines.timing import Stopwatch
from kb.server.database import private_server, uses_private_server

QUESTIONS = [
    ("How many days do customers have to return a product?", "documents"),
    ("How many orders were placed in 2025?", "database"),
    (
        "How many returns were requested more than 30 days after delivery, which the return policy does not allow?",
        "both",
    ),
]


def run(settings: Settings, out=print) -> None:
    from kb.cli.output import print_answer_tail
    from kb.knowledge_base import KnowledgeBase

    if uses_private_server(settings):
        out(private_server(settings).start().describe())
        counts = load_demo_data(settings)
        out("business database loaded: " + ", ".join(f"{n} {table}" for table, n in counts.items()))
    kb = KnowledgeBase(settings)
    try:
        report = kb.index_directory(DATA / "docs", progress=False)
        out(report.summary())
        loading = Stopwatch()
        kb.llm  # loaded (and verified) once, before the first question's clock starts
        out(f"model {kb.llm_model_name} loaded in {loading.elapsed():.1f} s")
        warming = Stopwatch()
        warmed = kb.warm_sql_prompts()
        if warmed:
            out(
                f"SQL prompts for {settings.sql.database} read into the prompt cache ({warmed}) in "
                f"{warming.elapsed():.1f} s (kept on disk for later runs)"
            )
        for question, _ in QUESTIONS:
            out("")
            out(f"Q: {question}")
            answer = kb.query(question)
            out(f"[route: {answer.route} - {answer.route_reason}]")
            out(f"A: {answer.text}")
            print_answer_tail(answer, out, route=False)
            out(f"({answer.timings.get('total_ms', 0) / 1000:.1f} s)")
        out("")
        out(
            f"profile {settings.profile!r}: every answer above was written on this machine by "
            f"{settings.active_profile.llm.model}; KB_PROFILE=openai or ollama switches models without code changes."
        )
    finally:
        kb.close()
