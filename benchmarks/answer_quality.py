"""Answers from documents: kb's documents route against plain LlamaIndex, same model, same store, same run.

Two labelled sets, each question with the fact its answer must contain and the file it comes from:

* demo (benchmarks/data/answer_quality.yaml, 46 questions over data/docs), in a ``dev`` part (may be
  studied to choose settings) and a ``test`` part (only scored);
* mariadb-docs (benchmarks/data/answer_quality_mariadb_docs.yaml, over the 1,278 pages of
  ../shared/eval/mariadb-docs, indexed once into a kept benchmark database): a ``dev`` part (26
  questions from pages no test question uses) and a ``test`` part (32, written before kb answered
  any of them).

Systems, both streamed so that the first token is timed:

* kb: ``KnowledgeBase.stream_query(question, route="documents")`` (hybrid retrieval, the question
  embedded once, ``engine.context_tokens`` of chunk text in the prompt, widened by ``engine.window_tokens``
  of sentences from the same pages), for each value given with ``--context-tokens`` and
  ``--window-tokens`` (the curves that choose the defaults);
* plain LlamaIndex: ``VectorStoreIndex.from_vector_store(store).as_query_engine(streaming=True)`` with
  its defaults (dense, top 2).

Every answer is timed cold (the model's context and prompt cache emptied before it: the prompt cache
on disk under kb's home is emptied too). Printed per set and part: fact present, first source correct, first token and total seconds (medians
and means). ``dev`` questions are printed one by one with each system's answer and, for kb, where the
expected page is among the sources (its rank, whether the model read it, ``-`` if not retrieved).
Run: ``.venv/bin/python benchmarks/answer_quality.py [--sets demo,docs] [--parts dev,test]
[--context-tokens 256,512] [--window-tokens 0,128] [--chunk-size 128] [--limit N] [--json FILE]`` (KB_PROFILE picks the model).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from common import ROOT, SHARED, kept_database, scratch_database

from kb.business_database.provisioning import DATA as DEMO_DATA
from kb.knowledge_base import KnowledgeBase

DATA = Path(__file__).parent / "data"
SETS = {
    "demo": (DATA / "answer_quality.yaml", DEMO_DATA / "docs"),
    "docs": (DATA / "answer_quality_mariadb_docs.yaml", SHARED / "eval" / "mariadb-docs"),
}


def has_fact(text: str, facts: list[str]) -> bool:
    lowered = text.lower()
    return any(str(fact).lower() in lowered for fact in facts)


@dataclass
class Tally:
    fact: int = 0
    source: int = 0
    first_token: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    chunks: list[int] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        n = len(self.total)
        return {
            "n": n,
            "fact_pct": round(100 * self.fact / n, 1),
            "fact": self.fact,
            "source_pct": round(100 * self.source / n, 1),
            "source": self.source,
            "first_token_median_s": round(statistics.median(self.first_token), 2),
            "first_token_mean_s": round(statistics.fmean(self.first_token), 2),
            "total_median_s": round(statistics.median(self.total), 2),
            "total_mean_s": round(statistics.fmean(self.total), 2),
            "chunks_in_prompt": round(statistics.fmean(self.chunks), 2) if self.chunks else None,
        }


def timed(pieces: Any) -> tuple[str, float, float]:
    """Consume a stream of text pieces: the text, the seconds to the first non-empty piece, the total."""
    started = time.perf_counter()
    first = None
    text = []
    for piece in pieces:
        if first is None and str(piece).strip():
            first = time.perf_counter() - started
        text.append(str(piece))
    total = time.perf_counter() - started
    return "".join(text), first if first is not None else total, total


def ask_kb(kb: KnowledgeBase, question: str) -> tuple[str, list[tuple[str | None, bool]], float, float]:
    """The answer's text, its sources (path, whether the model read it) in order, first token and total s."""
    started = time.perf_counter()
    streaming = kb.stream_query(question, route="documents")
    text, first, _ = timed(streaming)
    total = time.perf_counter() - started
    first += total - _  # the stream started after retrieval: time to first token counts from the question
    sources = [(s.path, s.in_prompt is not False) for s in streaming.answer.sources]
    return text, sources, first, total


def source_rank(sources: list[tuple[str | None, bool]], expected: str) -> str:
    """Where the expected page is among the sources: "1" (read), "3 not read", "-" (not retrieved)."""
    for rank, (path, read) in enumerate(sources, start=1):
        if path == expected:
            return f"{rank}{'' if read else ' not read'}"
    return "-"


def ask_plain(plain: Any, question: str) -> tuple[str, str | None, float, float]:
    started = time.perf_counter()
    response = plain.query(question)
    text, first, _ = timed(response.response_gen)
    total = time.perf_counter() - started
    first += total - _
    nodes = response.source_nodes
    return text, nodes[0].node.metadata.get("file_path") if nodes else None, first, total


def table(results: dict[tuple[str, str, str], Tally]) -> str:
    lines = [
        "| set | part | system | n | fact present | first source correct | first token s (median / mean) "
        "| total s (median / mean) | chunks in prompt |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (key, part, system), tally in results.items():
        r = tally.row()
        lines.append(
            f"| {key} | {part} | {system} | {r['n']} | {r['fact_pct']}% ({r['fact']}) | {r['source_pct']}% "
            f"({r['source']}) | {r['first_token_median_s']} / {r['first_token_mean_s']} | {r['total_median_s']} / "
            f"{r['total_mean_s']} | {r['chunks_in_prompt'] if r['chunks_in_prompt'] is not None else '-'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default="demo,docs")
    parser.add_argument("--parts", default="dev,test")
    parser.add_argument("--context-tokens", default="", help="values of engine.context_tokens to compare (a curve)")
    parser.add_argument("--window-tokens", default="", help="values of engine.window_tokens to compare (with each)")
    parser.add_argument(
        "--chunk-size", type=int, default=0, help="indexing.chunk_size to index with (its own kept index; overlap 1/8)"
    )
    parser.add_argument("--no-plain", action="store_true")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    base = yaml.safe_load((ROOT / "config.yaml").read_text()) or {}
    budgets = [int(v) for v in args.context_tokens.split(",") if v] or [None]
    windows = [int(v) for v in args.window_tokens.split(",") if v] or [None]
    settings = [(budget, window) for budget in budgets for window in windows]
    results: dict[tuple[str, str, str], Tally] = {}
    llm = None
    for key in args.sets.split(","):
        file, folder = SETS[key]
        questions = [q for q in yaml.safe_load(file.read_text()) if q.get("part", "test") in parts]
        questions = questions[: args.limit or None]
        with scratch_database() as (scratch, _):
            suffix = f"_c{args.chunk_size}" if args.chunk_size else ""
            url = scratch if key == "demo" else kept_database(f"kbbench_mariadb_docs{suffix}")
            config = {**base, "database": {"url": url.render_as_string(hide_password=False)}, "sql": {"enabled": False}}
            if args.chunk_size:
                sizes = {"chunk_size": args.chunk_size, "chunk_overlap": args.chunk_size // 8}
                config["indexing"] = {**base.get("indexing", {}), **sizes}
            kbs = {}
            for budget, window in settings:
                engine = dict(base.get("engine", {}))
                engine.update({"context_tokens": budget} if budget is not None else {})
                engine.update({"window_tokens": window} if window is not None else {})
                kbs[budget, window] = KnowledgeBase.from_config({**config, "engine": engine}, llm=llm)
                llm = kbs[budget, window].llm  # one model for every system
            first_kb = next(iter(kbs.values()))
            # every answer is timed cold: another system's prompt for the same question (the same first
            # chunk, say) must not be reused from llama.cpp's context or kb's prompt cache
            cold = getattr(first_kb.llm, "forget_prompts", lambda: None)
            report = first_kb.index_directory(folder, progress=False)  # incremental: the kept index is reused
            print(report.summary().splitlines()[0], flush=True)
            from llama_index.core import VectorStoreIndex

            plain = VectorStoreIndex.from_vector_store(
                first_kb.vector_store, embed_model=first_kb.embed_model
            ).as_query_engine(llm=first_kb.llm, streaming=True)
            for number, item in enumerate(questions, start=1):
                part = item.get("part", "test")
                lines = []
                for kb in kbs.values():
                    e = kb.settings.engine
                    name = f"kb (context_tokens {e.context_tokens}, window_tokens {e.window_tokens})"
                    cold()
                    text, sources, first, total = ask_kb(kb, item["q"])
                    tally = results.setdefault((key, part, name), Tally())
                    ok = has_fact(text, item["fact"])
                    tally.fact += ok
                    tally.source += bool(sources) and sources[0][0] == item["source"]
                    tally.first_token.append(first)
                    tally.total.append(total)
                    tally.chunks.append(sum(read for _, read in sources))
                    rank = source_rank(sources, item["source"])
                    lines.append(
                        f"{name}: fact {'ok' if ok else 'NO'} page {rank} {first:.1f}/{total:.1f} s {text[:120]!r}"
                    )
                if not args.no_plain:
                    cold()
                    text, first_path, first, total = ask_plain(plain, item["q"])
                    tally = results.setdefault((key, part, "plain LlamaIndex (dense, top 2)"), Tally())
                    ok = has_fact(text, item["fact"])
                    tally.fact += ok
                    tally.source += first_path == item["source"]
                    tally.first_token.append(first)
                    tally.total.append(total)
                    lines.append(f"plain: fact {'ok' if ok else 'NO'} {first:.1f}/{total:.1f} s {text[:120]!r}")
                print(f"  [{key} {part} {number}/{len(questions)}]", flush=True)
                if part == "dev":  # test parts are scored, never read question by question
                    print(f"      {item['q']}\n      " + "\n      ".join(lines), flush=True)
            for kb in kbs.values():
                kb.close()
        print("\n" + table(results), flush=True)
    print(f"\nfinal ({time.strftime('%Y-%m-%d')}):\n" + table(results))
    if args.json:
        args.json.write_text(json.dumps({"/".join(k): t.row() for k, t in results.items()}, indent=2))


if __name__ == "__main__":
    main()
