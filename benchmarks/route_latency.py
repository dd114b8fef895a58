"""Time to first token and total time per route on the offline default model, against plain LlamaIndex.

For each route (documents, database, both) a few questions are asked through
``KnowledgeBase.stream_query``; the clock starts when the question is asked (routing, retrieval and
the SQL included) and stops at the first streamed text and at the end.
In the same run, plain LlamaIndex answers the same documents questions
(``VectorStoreIndex.as_query_engine(streaming=True)``, same model, same store) and the same database
questions (``NLSQLTableQueryEngine``, which runs its SQL and writes the answer). Each question is
asked twice: "cold" is the first time in the process (on the documents route from an emptied prompt
state for both systems; on the others kb's prompt cache may hold the schema prefix from earlier
processes, by design), "warm" the second.

Run: ``.venv/bin/python benchmarks/route_latency.py`` (KB_PROFILE picks the model).
"""

from __future__ import annotations

import statistics
import time

import yaml
from common import ROOT, scratch_database

from kb.business_database.provisioning import DATA as DEMO_DATA
from kb.business_database.provisioning import load_demo_data, readonly_url
from kb.config import load_settings
from kb.knowledge_base import KnowledgeBase

QUESTIONS = {
    "documents": [
        "How many days do customers have to return a product?",
        "How often should the Barista Pro be descaled?",
        "Where does Nordbrew ship orders from?",
        "What does error E3 mean on the Barista Pro?",
        "Who pays the return shipping when a product is faulty?",
        "How much does express delivery in Finland cost?",
    ],
    "database": [
        "How many orders were placed in 2025?",
        "How many customers live in Germany?",
        "Which product was returned most often?",
    ],
    "both": [
        "How many returns were requested more than 30 days after delivery, which the return policy does not allow?",
        "What is our return policy, and how many returns did we get in October 2026?",
    ],
}


def timed_stream(ask) -> tuple[float, float]:
    """``ask()`` returns a stream of text: seconds from asking to its first text, and to its end."""
    started = time.perf_counter()
    first = None
    for chunk in ask():
        if first is None and str(chunk).strip():
            first = time.perf_counter() - started
    total = time.perf_counter() - started
    return (first if first is not None else total), total


def main() -> None:
    project = load_settings(ROOT / "config.yaml")
    load_demo_data(project)
    base = yaml.safe_load((ROOT / "config.yaml").read_text()) or {}
    with scratch_database() as (url, _):
        config = {
            **base,
            "database": {"url": url.render_as_string(hide_password=False)},
            "sql": {"url": readonly_url(project).render_as_string(hide_password=False)},
        }
        kb = KnowledgeBase.from_config(config)
        kb.index_directory(DEMO_DATA / "docs", progress=False)
        started = time.perf_counter()
        kb.llm
        load_s = time.perf_counter() - started
        from llama_index.core import MockEmbedding, SQLDatabase, VectorStoreIndex
        from llama_index.core.query_engine import NLSQLTableQueryEngine

        plain_docs = VectorStoreIndex.from_vector_store(kb.vector_store, embed_model=kb.embed_model).as_query_engine(
            llm=kb.llm, streaming=True
        )
        engine = kb.sql_engine
        plain_sql = NLSQLTableQueryEngine(
            sql_database=SQLDatabase(engine.readonly.engine, include_tables=engine.tables),
            tables=engine.tables,
            llm=kb.llm,
            embed_model=MockEmbedding(embed_dim=1),
        )
        # On the documents route a cold answer is timed from an empty prompt state for both systems:
        # the other system's prompt for the same question (the same chunks) is not reused.
        forget = getattr(kb.llm, "forget_prompts", lambda: None)
        rows = []
        for route, questions in QUESTIONS.items():
            for label in ("cold", "warm"):
                kb_first, kb_total, plain_first, plain_total, wrong_route = [], [], [], [], 0
                for question in questions:
                    streams: list = []

                    def ask_kb(q: str = question, kept: list = streams) -> object:
                        kept.append(kb.stream_query(q))
                        return kept[-1]

                    cold_documents = route == "documents" and label == "cold"
                    if cold_documents:
                        forget()
                    first, total = timed_stream(ask_kb)
                    kb_first.append(first)
                    kb_total.append(total)
                    wrong_route += streams[-1].answer.route != route
                    if route == "documents":
                        if cold_documents:
                            forget()
                        first, total = timed_stream(lambda q=question: plain_docs.query(q).response_gen)
                    elif route == "database":
                        started = time.perf_counter()
                        plain_sql.query(question)
                        first = total = time.perf_counter() - started
                    else:
                        continue
                    plain_first.append(first)
                    plain_total.append(total)
                med = statistics.median
                rows.append(
                    (
                        route,
                        label,
                        med(kb_first),
                        med(kb_total),
                        med(plain_first) if plain_first else None,
                        med(plain_total) if plain_total else None,
                        wrong_route,
                    )
                )
        print(
            f"\nmodel {kb.llm_model_name}, loaded in {load_s:.1f} s; medians over {sum(map(len, QUESTIONS.values()))} "
            "questions; routing included for kb"
        )
        print(
            "| route | pass | kb first token (s) | kb total (s) | plain LlamaIndex first token (s) | plain total (s) |"
        )
        print("|---|---|---|---|---|---|")
        for route, label, kf, kt, pf, pt, wrong in rows:
            plain = f"{pf:.1f} | {pt:.1f}" if pf is not None else "- | -"
            note = f" ({wrong} routed elsewhere)" if wrong else ""
            print(f"| {route}{note} | {label} | {kf:.1f} | {kt:.1f} | {plain} |")
        kb.close()


if __name__ == "__main__":
    main()
