"""Approved question/SQL pairs measured on questions they were not written from (``sql_accuracy.py --examples``).

For a set with a ``dev`` part, the dev questions with their gold SQL are the operator's approved pairs
and the ``test`` part is scored; for a set without one (Northwind, classicmodels), its questions are
split by a rule fixed before any scoring, even and odd positions in the file: pairs from one half,
scored on the other, and the reverse. At each point of the learning curve (``--examples 0,5,10,20,all``:
the first N pairs in file order) the pairs are put in a real example store (kb's MariaDB vector
store, the offline embedding model) and every scored question is asked of:

* kb: ``SQLEngine`` with the store's ``sql.examples_k`` closest pairs above
  ``sql.examples_min_similarity`` in its prompt;
* plain LlamaIndex: ``NLSQLTableQueryEngine`` whose text-to-SQL prompt shows the same closest pairs,
  through a ``PromptTemplate`` function mapping (LlamaIndex's own way to put dynamic few-shot
  examples in a prompt).

Both are scored by rows as in sql_accuracy.py, with the seconds per question, warm: at each point both
read their prompts' shared beginning into the prompt cache first (untimed), as ``kb serve`` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from llama_index.core import MockEmbedding, PromptTemplate, SQLDatabase
from llama_index.core.prompts.default_prompts import DEFAULT_TEXT_TO_SQL_TMPL
from llama_index.core.query_engine import NLSQLTableQueryEngine

from kb.business_database.examples import SQLExampleStore
from kb.engines.sql.engine import SQLEngine
from kb.engines.sql.guard import clean
from kb.engines.sql.writers import QUESTION_MARK, PrefixCachingLLM

Scorer = Callable[[Any, dict], bool]


@dataclass
class CurvePoint:
    """One set's scored questions at one number of approved pairs."""

    pairs: int
    n: int = 0
    kb: int = 0
    plain: int = 0
    shown: int = 0  # questions whose prompt showed at least one pair
    seconds_kb: float = 0.0
    seconds_plain: float = 0.0
    # each scored question: whether kb was right, and the similarity of the closest pair its prompt showed
    answers: dict[str, tuple[bool, Optional[float]]] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        n = max(self.n, 1)
        return {
            "pairs": self.pairs,
            "n": self.n,
            "kb_pct": round(100 * self.kb / n, 1),
            "plain_pct": round(100 * self.plain / n, 1),
            "shown_pct": round(100 * self.shown / n, 1),
            "seconds_kb": round(self.seconds_kb / n, 2),
            "seconds_plain": round(self.seconds_plain / n, 2),
        }


def splits(questions: list[dict]) -> list[tuple[str, list[dict], list[dict]]]:
    """(label, pairs, scored): the dev part teaching the test part; with only one part (a set without
    a dev part, or ``--parts dev`` to study the dev part alone), its even positions teaching the odd
    ones and the reverse."""
    dev = [q for q in questions if q.get("part", "test") == "dev"]
    test = [q for q in questions if q.get("part", "test") == "test"]
    if dev and test:
        return [("dev -> test", dev, test)]
    alone = dev or test
    even, odd = alone[0::2], alone[1::2]
    return [("even -> odd", even, odd), ("odd -> even", odd, even)]


def plain_with_examples(engine: SQLEngine, llm: Any, closest: Callable[[str], Sequence[Any]]) -> NLSQLTableQueryEngine:
    """Plain LlamaIndex whose prompt shows ``closest(question)`` before the question."""

    def examples(**kwargs: Any) -> str:
        shown = closest(kwargs["query_str"])
        if not shown:
            return ""
        return (
            "Examples of good SQL for these tables:\n"
            + "\n".join(f"Question: {e.question}\nSQLQuery: {e.sql}\n" for e in shown)
            + "\n"
        )

    # Before the tables, after the format the prompt asks for: placed right before the question (as kb
    # places them), the 1.5B model goes on writing examples of its own instead of the statement.
    template = DEFAULT_TEXT_TO_SQL_TMPL.replace(
        "Only use tables listed below.", "{examples}Only use tables listed below."
    )
    return NLSQLTableQueryEngine(
        sql_database=SQLDatabase(engine.readonly.engine, include_tables=engine.tables),
        tables=engine.tables,
        llm=llm,
        sql_only=True,
        synthesize_response=False,
        embed_model=MockEmbedding(embed_dim=1),
        text_to_sql_prompt=PromptTemplate(template, function_mappings={"examples": examples}),
    )


def curve(
    database: str,
    questions: list[dict],
    counts: list[str],
    store: SQLExampleStore,
    make_engine: Callable[..., SQLEngine],
    llm: Any,
    kb_right: Scorer,
    plain_right: Scorer,
    k: int,
    floor: float,
    progress: Callable[[str], None],
    with_plain: bool = True,
    show_misses: bool = False,
) -> dict[str, list[CurvePoint]]:
    """The learning curve of every split of ``questions``: a point per count of pairs (``all``: every one).
    ``with_plain=False``: kb alone (a quicker look on dev parts); ``show_misses``: each question kb
    misses is printed with the pairs its prompt showed and its statement (dev parts only)."""
    results: dict[str, list[CurvePoint]] = {}
    for label, pairs, scored in splits(questions):
        points = results.setdefault(label, [])
        for count in counts:
            taught = pairs if count == "all" else pairs[: int(count)]
            store.store.clear()

            def closest(question: str) -> list[Any]:
                return store.closest(database, question, k, floor)

            engine = make_engine(examples=closest if taught else None)
            store.import_pairs(database, [(q["q"], q["sql"]) for q in taught], verify=engine.verify_example)
            plain = plain_with_examples(engine, llm, closest)
            # Both read their prompts' shared beginning into the prompt cache first, untimed, as kb serve
            # does at start-up: each point's questions are timed warm.
            engine.warm_prompt_cache()
            if with_plain and isinstance(llm, PrefixCachingLLM):
                with llm.prefilling_until(QUESTION_MARK):
                    plain.query(QUESTION_MARK)
            point = CurvePoint(len(taught))
            for number, item in enumerate(scored, 1):
                t = time.perf_counter()
                outcome = engine.compute(item["q"])
                point.seconds_kb += time.perf_counter() - t
                point.n += 1
                right = kb_right(outcome, item)
                point.kb += right
                if show_misses and not right:
                    shown = "".join(f"\n    pair: {e['question']} -> {e['sql']}" for e in outcome.examples)
                    progress(f"MISS {item['q']}\n    kb:   {outcome.sql}\n    gold: {item['sql']}{shown}")
                if with_plain:
                    t = time.perf_counter()
                    sql = str(plain.query(item["q"]).metadata.get("sql_query", ""))
                    point.seconds_plain += time.perf_counter() - t
                    point.plain += plain_right(clean(sql), item)
                point.shown += bool(outcome.examples)
                scores = [e["score"] for e in outcome.examples if e.get("score") is not None]
                point.answers[item["q"]] = (right, max(scores) if scores else None)
                progress(f"{label} pairs {len(taught)} {number}/{len(scored)} kb {point.kb} plain {point.plain}")
            points.append(point)
            engine.close()
    return results


SIMILARITY_BINS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)


def by_similarity(results: dict[str, dict[str, list[CurvePoint]]]) -> str:
    """Markdown: the questions of every split, binned by the similarity of the closest pair shown at the
    last point of its curve, with how many its pairs turned right (gained), wrong (lost) or left alone,
    against the curve's first point (no pairs): where pairs help and where they mislead."""
    bins = {low: [0, 0, 0] for low in SIMILARITY_BINS}  # gained, lost, unchanged
    unshown = [0, 0, 0]
    for splits_ in results.values():
        for points in splits_.values():
            if len(points) < 2:
                continue
            first, last = points[0].answers, points[-1].answers
            for question, (right, score) in last.items():
                before = first.get(question, (right, None))[0]
                tally = unshown if score is None else bins[max(b for b in SIMILARITY_BINS if b <= score)]
                tally[0 if right and not before else 1 if before and not right else 2] += 1
    lines = ["| closest pair's similarity | questions | gained | lost | unchanged |", "|---|---|---|---|---|"]
    for low, (gained, lost, same) in bins.items():
        lines.append(f"| {low:.1f}+ | {gained + lost + same} | {gained} | {lost} | {same} |")
    lines.append(f"| no pair shown | {sum(unshown)} | {unshown[0]} | {unshown[1]} | {unshown[2]} |")
    return "\n".join(lines)


def table(results: dict[str, dict[str, list[CurvePoint]]], titles: dict[str, str]) -> str:
    """Markdown: one row per set, split and number of pairs."""
    lines = [
        "| set | pairs from -> scored | approved pairs | n | questions shown a pair | kb | plain LlamaIndex "
        "(same pairs) | s / question kb vs plain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, splits_ in results.items():
        for label, points in splits_.items():
            for p in (point.row() for point in points):
                lines.append(
                    f"| {titles.get(key, key)} | {label} | {p['pairs']} | {p['n']} | {p['shown_pct']}% | {p['kb_pct']}% | "
                    f"{p['plain_pct']}% | {p['seconds_kb']} vs {p['seconds_plain']} |"
                )
    return "\n".join(lines)
