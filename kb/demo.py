"""The README's main command: the whole of kb on the offline default models.

Starts kb's MariaDB, loads the demo business database, indexes ``data/docs`` (incrementally: a
second run embeds nothing), and asks three questions, one per route, printing the route and why,
the answer, the sources and the SQL.
"""

from __future__ import annotations

from kb.business import DATA, load_demo_data
from kb.config import Settings
from kb.database import private_server, uses_private_server

QUESTIONS = [
    ("How many days do customers have to return a product?", "documents"),
    ("How many orders were placed in 2025?", "database"),
    ("How many returns were requested more than 30 days after delivery, which the return policy does not allow?",
     "both"),
]


def run(settings: Settings, out=print) -> None:
    from kb.cli import _print_answer_tail
    from kb.knowledge_base import KnowledgeBase

    if uses_private_server(settings):
        out(private_server(settings).start().describe())
        counts = load_demo_data(settings)
        out("business database loaded: " + ", ".join(f"{n} {table}" for table, n in counts.items()))
    kb = KnowledgeBase(settings)
    try:
        report = kb.index_directory(DATA / "docs", progress=False)
        out(report.summary())
        for question, expected in QUESTIONS:
            out("")
            out(f"Q: {question}")
            answer = kb.query(question)
            out(f"[route: {answer.route} - {answer.route_reason}]")
            out(f"A: {answer.text}")
            _print_answer_tail(answer, out, route=False)
        out("")
        out(f"profile {settings.profile!r}: the offline SmolLM2-135M writes the answers. It reads context "
            "well enough but cannot write correct SQL, so the database route shows the guard at work; "
            "switch to KB_PROFILE=openai or ollama for real SQL answers.")
    finally:
        kb.close()
