"""``kb serve`` under load: 16 concurrent clients on loopback against calling KnowledgeBase directly.

The same demo documents, the same questions and the same scripted LLM (so that the service is
measured, not the model) in one run:

* direct: 16 threads in this process calling ``KnowledgeBase.retrieve`` / ``.query``;
* served: 16 client threads over HTTP (keep-alive) to one ``kb serve`` process, its cache off,
  then the same with the cache on (the questions repeat, as a team's do).

For each: requests per second, p50 and p95 latency, errors; and the overhead ratio of the service
(direct throughput / served throughput). Both sides run on the same 2 cores as the clients, so the
ratio includes the HTTP clients' own CPU.

Run: ``.venv/bin/python benchmarks/serve.py [--requests 400] [--clients 16]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from common import ROOT, percentile, scratch_database

sys.path.insert(0, str(ROOT / "tests"))
from scripted_llm import ScriptedLLM
from serve_scripted import script
from serving import ServedKB, bearer

from kb.business_database.provisioning import DATA
from kb.knowledge_base import KnowledgeBase
from kb.service.keys import KeyStore

QUESTIONS = [
    "How many days do customers have to return a product?",
    "What does error E3 mean on the espresso machine?",
    "How long is the warranty on the Grinder Duo?",
    "How do I descale the espresso machine?",
    "Who pays for return shipping?",
    "What is the support team's response time?",
    "Can I return a used product?",
    "How do I reset the grinder?",
]


def run_load(call: Callable[[int], None], requests: int, clients: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def one(i: int) -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            call(i)
            ok = True
        except Exception:
            ok = False
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)
            errors += 0 if ok else 1

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(requests)))
    wall = time.perf_counter() - started
    return {
        "rps": requests / wall,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "errors": errors,
    }


def http_caller(url: str, key: str) -> Callable[[str, Callable[[int], dict]], Callable[[int], None]]:
    """``served(path, body)``: a call posting ``body(i)`` to ``path``, one keep-alive client per thread."""
    local = threading.local()

    def served(path: str, body: Callable[[int], dict]) -> Callable[[int], None]:
        def call(i: int) -> None:
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=url, headers=bearer(key), timeout=120)
            local.client.post(path, json=body(i)).raise_for_status()

        return call

    return served


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400, help="requests per measurement")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()

    with scratch_database() as (url, _tcp):
        base = {
            "database": {"url": url.render_as_string(hide_password=False)},
            "router": {"selector": "offline"},
            "sql": {"enabled": False},
            "serve": {"requests_per_minute": 10**6, "tokens_per_minute": 10**9},
        }
        kb = KnowledgeBase.from_config(base, llm=ScriptedLLM(script))
        kb.index_directory(DATA / "docs", progress=False)
        _, key = KeyStore(kb.connection).create("bench", collections=["*"])
        kb.retrieve(QUESTIONS[0])  # models loaded before timing
        model_lock = threading.Lock()  # the service serialises generation the same way

        def direct_query(i: int) -> None:
            with model_lock:
                kb.query(QUESTIONS[i % len(QUESTIONS)], route="documents")

        results: dict[str, dict[str, dict[str, Any]]] = {"retrieve": {}, "query": {}}
        results["retrieve"]["direct"] = run_load(
            lambda i: kb.retrieve(QUESTIONS[i % len(QUESTIONS)]), args.requests, args.clients
        )
        results["query"]["direct"] = run_load(direct_query, args.requests, args.clients)

        work = ROOT / ".kb" / "bench-serve"
        work.mkdir(parents=True, exist_ok=True)
        for label, cache in (("served, cache off", False), ("served, cache on", True)):
            server = ServedKB({**base, "cache": {"enabled": cache}}, work).wait_ready()
            served = http_caller(server.url, key)
            try:
                results["retrieve"][label] = run_load(
                    served("/v1/retrieve", lambda i: {"question": QUESTIONS[i % len(QUESTIONS)]}),
                    args.requests,
                    args.clients,
                )
                results["query"][label] = run_load(
                    served("/v1/query", lambda i: {"question": QUESTIONS[i % len(QUESTIONS)], "route": "documents"}),
                    args.requests,
                    args.clients,
                )
            finally:
                server.stop()
        kb.close()

    print(f"\n{args.clients} concurrent clients, {args.requests} requests per row, scripted LLM, demo documents")
    print(f"{'endpoint':<10} {'how':<20} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'errors':>7} {'direct/served':>14}")
    for endpoint, rows in results.items():
        direct = rows["direct"]["rps"]
        for how, r in rows.items():
            ratio = "" if how == "direct" else f"{direct / r['rps']:.2f}x"
            print(
                f"{endpoint:<10} {how:<20} {r['rps']:8.1f} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['errors']:7d} {ratio:>14}"
            )
    assert statistics.fmean(r["errors"] for rows in results.values() for r in rows.values()) == 0, "errors"


if __name__ == "__main__":
    main()
