"""Answer quality over the demo documents: kb's documents engine against plain LlamaIndex, same run.

46 questions over data/docs (benchmarks/data/answer_quality.yaml), each with the fact its answer must
contain and the file it comes from. Both systems use the same LLM, the same embedding model and the
same ``MariaDBVectorStore`` (indexed once by kb):

* kb: ``KnowledgeBase.query(question, route="documents")`` (hybrid retrieval, kb's prompt);
* plain LlamaIndex: ``VectorStoreIndex.from_vector_store(store).as_query_engine()`` with its defaults.

Printed: fact present (%), first source correct (%), seconds per question, for each system.
Run: ``.venv/bin/python benchmarks/answer_quality.py [--limit N]`` (KB_PROFILE picks the model).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml
from common import ROOT, scratch_database

from kb.business import DATA as DEMO_DATA
from kb.knowledge_base import KnowledgeBase

QUESTIONS = Path(__file__).parent / "data" / "answer_quality.yaml"


def has_fact(text: str, facts: list[str]) -> bool:
    lowered = text.lower()
    return any(str(fact).lower() in lowered for fact in facts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--top-k", type=int, default=0, help="chunks given to kb's LLM (default: retrieval.top_k)")
    args = parser.parse_args()
    questions = yaml.safe_load(QUESTIONS.read_text())[: args.limit or None]
    with scratch_database() as (url, _):
        config = {"database": {"url": url.render_as_string(hide_password=False)}, "sql": {"enabled": False}}
        if args.top_k:
            config["retrieval"] = {"top_k": args.top_k}
        kb = KnowledgeBase.from_config({**_project_config(), **config})
        report = kb.index_directory(DEMO_DATA / "docs", progress=False)
        print(report.summary().splitlines()[0])
        from llama_index.core import VectorStoreIndex

        plain = VectorStoreIndex.from_vector_store(kb.vector_store, embed_model=kb.embed_model).as_query_engine(
            llm=kb.llm
        )
        scores = {"kb": [0, 0, 0.0], "plain": [0, 0, 0.0]}
        for number, item in enumerate(questions, start=1):
            t = time.perf_counter()
            answer = kb.query(item["q"], route="documents")
            kb_time = time.perf_counter() - t
            kb_first = answer.sources[0].path if answer.sources else None
            t = time.perf_counter()
            response = plain.query(item["q"])
            plain_time = time.perf_counter() - t
            plain_first = response.source_nodes[0].node.metadata.get("file_path") if response.source_nodes else None
            for name, text, first, seconds in (
                ("kb", answer.text, kb_first, kb_time),
                ("plain", str(response), plain_first, plain_time),
            ):
                scores[name][0] += has_fact(text, item["fact"])
                scores[name][1] += first == item["source"]
                scores[name][2] += seconds
            print(
                f"  [{number}/{len(questions)}] kb fact {'ok' if has_fact(answer.text, item['fact']) else 'NO'} "
                f"source {'ok' if kb_first == item['source'] else 'NO'} | plain fact "
                f"{'ok' if has_fact(str(response), item['fact']) else 'NO'} source "
                f"{'ok' if plain_first == item['source'] else 'NO'} | {item['q']}\n"
                f"      kb: {answer.text[:160]!r}\n      plain: {str(response)[:160]!r}",
                flush=True,
            )
        n = len(questions)
        print(f"\n{n} questions over data/docs; model {kb.llm_model_name}; embeddings {kb.embed_model_name}")
        print("| system | fact present | first source correct | s / question |")
        print("|---|---|---|---|")
        for name, label in (
            ("kb", f"kb documents engine (hybrid, top {kb.settings.retrieval.top_k})"),
            ("plain", "plain LlamaIndex as_query_engine() (dense, top 2)"),
        ):
            fact, source, seconds = scores[name]
            print(
                f"| {label} | {100 * fact / n:.1f}% ({fact}/{n}) | {100 * source / n:.1f}% ({source}/{n}) | "
                f"{seconds / n:.1f} |"
            )
        kb.close()


def _project_config() -> dict:
    """The project's config.yaml (profiles, models) as the base of the benchmark's configuration."""
    return yaml.safe_load((ROOT / "config.yaml").read_text()) or {}


if __name__ == "__main__":
    main()
