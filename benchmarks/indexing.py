"""Directory indexing throughput on 1,278 real Markdown pages (../shared/eval/mariadb-docs).

First run with the offline default embedding model: files/s, chunks/s, and where the time goes
(embedding vs database vs reading and chunking); then a no-change rerun.
Run: ``.venv/bin/python benchmarks/indexing.py``.
"""

from __future__ import annotations

import time

from common import SHARED, scratch_database

from kb.knowledge_base import KnowledgeBase

DOCS = SHARED / "eval" / "mariadb-docs"


def main() -> None:
    if not DOCS.is_dir():
        raise SystemExit(f"{DOCS} not found: the benchmarks read ../shared/eval")
    with scratch_database() as (url, _):
        kb = KnowledgeBase.from_config({"database": {"url": url.render_as_string(hide_password=False)}})
        kb.embed_model  # load the model before the clock starts (about a second, once per process)
        started = time.perf_counter()
        first = kb.index_directory(DOCS, progress=False)
        wall = time.perf_counter() - started
        files = len(first.added)
        print(
            f"first run: {files} files, {first.chunks} chunks in {wall:.1f} s: "
            f"{files / wall:.1f} files/s, {first.chunks / wall:.0f} chunks/s; {len(first.failed)} failed"
        )
        s = first.seconds
        other = max(wall - s["embed"] - s["database"], 0.0)
        print(
            f"  time: embedding {s['embed']:.1f} s ({s['embed'] / wall:.0%}), database {s['database']:.1f} s "
            f"({s['database'] / wall:.0%}), reading + chunking + waiting {other:.1f} s ({other / wall:.0%})"
        )
        print("  (targets: database under 10% of the first run)")
        started = time.perf_counter()
        again = kb.index_directory(DOCS, progress=False)
        rerun = time.perf_counter() - started
        print(
            f"no-change rerun: {rerun:.2f} s ({len(again.unchanged)} unchanged, {again.embedded} embedded; "
            f"target under 10 s)"
        )
        for failure in first.failed[:10]:
            print(f"  failed: {failure.path}: {failure.reason}")
        kb.close()


if __name__ == "__main__":
    main()
