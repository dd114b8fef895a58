"""Reads on a replica: query throughput with 0 and 1 replicas, and replica lag under an indexing load.

A primary and one local replica (`kb db start --replicas 1`'s code) in a scratch home folder, the
SciFact corpus (5,183 MiniLM vectors) in a kb vector store on the primary. Same run, same machine:

1. dense top-10 queries from 4 client threads for 20 s: every read on the primary (0 replicas)
   vs every read on the replica (1 replica, through ReplicatedConnection);
2. read-your-writes: a chat-like loop that writes one row then reads it back through the replica
   (each read waits for the write's GTID) vs the same loop on the primary alone;
3. lag while indexing: 5,183 chunks upserted back to back in batches of 250 on the primary; how
   long after its commit each batch was applied on the replica, and Seconds_Behind_Master.

On this 2-core machine the primary and the replica share the same two cores, so (1) shows the
mechanism and its overhead, not scaling: a replica on its own machine adds its cores' worth of
query throughput (see docs/scaling.md).

Run: .venv/bin/python benchmarks/replicas.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cached_embeddings, doc_text, load_scifact, percentile
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery

from kb.config import load_settings
from kb.server.database import private_server
from kb.server.private_server import PrivateServer
from kb.stores.chat_store import MariaDBChatStore
from kb.stores.connection import MariaDBConnection
from kb.stores.replication import ReplicatedConnection, covers
from kb.stores.vector_store import MariaDBVectorStore

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 4
SECONDS = 20.0


def topology(home: Path) -> PrivateServer:
    main = private_server(load_settings(ROOT / "config.yaml", environ={}))
    main.start()  # provisions the binaries once
    (home / "mariadb").mkdir(parents=True)
    (home / "mariadb" / "prefix").symlink_to(main.prefix)
    primary = PrivateServer(home, port=main.port + 61, database="kb")
    started = time.perf_counter()
    primary.start(replicas=1)
    print(f"primary + 1 replica provisioned and replicating in {time.perf_counter() - started:.1f} s")
    return primary


def nodes(corpus: list[dict], vectors: np.ndarray) -> list[TextNode]:
    return [
        TextNode(id_=doc["_id"], text=doc_text(doc), embedding=vector.tolist()) for doc, vector in zip(corpus, vectors)
    ]


def throughput(store: MariaDBVectorStore, queries: np.ndarray) -> tuple[float, float]:
    """Queries per second and p50 latency (ms) of CLIENTS threads for SECONDS."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + SECONDS

    def client(offset: int) -> None:
        i = offset
        mine = []
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            store.query(VectorStoreQuery(query_embedding=queries[i % len(queries)].tolist(), similarity_top_k=10))
            mine.append(time.perf_counter() - started)
            i += CLIENTS
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies) / SECONDS, percentile([x * 1000 for x in latencies], 50)


def write_then_read(chats: MariaDBChatStore, rounds: int = 300) -> float:
    """Mean ms of one add_message + get_messages round (a chat turn's pattern)."""
    from llama_index.core.llms import ChatMessage

    started = time.perf_counter()
    for i in range(rounds):
        chats.add_message("bench", ChatMessage(role="user", content=f"turn {i}"))
        assert chats.get_messages("bench")[-1].content == f"turn {i}"  # read-your-writes held
    return (time.perf_counter() - started) * 1000 / rounds


def lag_under_indexing(conn: ReplicatedConnection, all_nodes: list[TextNode], replica: PrivateServer) -> None:
    """Index back to back on the primary; a watcher polls the replica's applied position every 20 ms
    and notes when each batch's GTID arrived there."""
    store = MariaDBVectorStore(conn, table_name="bench_indexing", embed_dim=384)
    monitor = MariaDBConnection(replica.admin_url(), pool_size=1)
    commits: list[tuple[str, float]] = []
    applied: dict[int, float] = {}
    behind: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() or len(applied) < len(commits):
            with monitor.cursor() as cur:
                cur.execute("SELECT @@gtid_slave_pos")
                position = cur.fetchone()[0] or ""
                cur.execute("SHOW REPLICA STATUS")
                names = [d[0] for d in cur.description]
                behind.append(float(dict(zip(names, cur.fetchone()))["Seconds_Behind_Master"] or 0))
            now = time.perf_counter()
            for i, (gtid, _) in enumerate(list(commits)):
                if i not in applied and covers(position, gtid):
                    applied[i] = now
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.perf_counter()
    for start in range(0, len(all_nodes), 250):
        store.add(all_nodes[start : start + 250])
        commits.append((conn.written, time.perf_counter()))
    elapsed = time.perf_counter() - started
    done.set()
    watcher.join()
    monitor.dispose()
    lags = [(applied[i] - committed) * 1000 for i, (_, committed) in enumerate(commits)]
    print(
        f"\nLag while indexing {len(all_nodes):,} chunks back to back in batches of 250 "
        f"({len(all_nodes) / elapsed:,.0f} chunks/s on the primary):"
    )
    print(
        f"  a batch reached the replica {percentile(lags, 50):,.0f} ms (p50) / {percentile(lags, 95):,.0f} ms (p95) / "
        f"{max(lags):,.0f} ms (max) after its commit; the last one {lags[-1]:,.0f} ms after indexing ended"
    )
    print(f"  Seconds_Behind_Master sampled every 20 ms: max {max(behind or [0]):.0f} s")


def main() -> None:
    corpus, queries, _ = load_scifact()
    vectors = cached_embeddings("scifact-corpus", [doc_text(d) for d in corpus])
    query_vectors = cached_embeddings("scifact-queries", [q["text"] for q in queries], query=True)
    home = Path(tempfile.mkdtemp(prefix="kb-replicas-"))
    primary = topology(home)
    try:
        replica = primary.replica(1)
        conn = ReplicatedConnection(primary.app_url(), [replica.app_url()], pool_size=CLIENTS + 2)
        alone = MariaDBConnection(primary.app_url(), pool_size=CLIENTS + 2)
        store = MariaDBVectorStore(conn, table_name="bench_nodes", embed_dim=384)
        started = time.perf_counter()
        store.add(nodes(corpus, vectors))
        print(f"{len(corpus):,} SciFact chunks indexed on the primary in {time.perf_counter() - started:.1f} s")
        on_primary = MariaDBVectorStore(alone, table_name="bench_nodes", embed_dim=384, perform_setup=False)
        store.query(VectorStoreQuery(query_embedding=query_vectors[0].tolist(), similarity_top_k=10))  # waits once

        print(f"\nDense top-10 queries, {CLIENTS} client threads, {SECONDS:.0f} s each (same run):")
        qps0, p50_0 = throughput(on_primary, query_vectors)
        qps1, p50_1 = throughput(store, query_vectors)
        print(f"  {'topology':<34} {'queries/s':>10} {'p50 ms':>8}")
        print(f"  {'0 replicas (all reads on primary)':<34} {qps0:>10.0f} {p50_0:>8.1f}")
        print(f"  {'1 replica (reads on the replica)':<34} {qps1:>10.0f} {p50_1:>8.1f}")
        print(f"  ratio 1 replica / 0 replicas: {qps1 / qps0:.2f} (same 2 cores serve both servers)")
        served = conn.replicas[0].reads
        print(f"  reads served by the replica: {served:,}; by the primary: {conn.primary_reads:,}")

        chat_primary = MariaDBChatStore(alone, table_name="bench_chat_primary")
        chat_replica = MariaDBChatStore(conn, table_name="bench_chat_replica")
        ms0, ms1 = write_then_read(chat_primary), write_then_read(chat_replica)
        print("\nRead-your-writes: write a chat message, read the session back, 300 rounds:")
        print(f"  primary alone {ms0:.2f} ms/round; through the replica (GTID wait) {ms1:.2f} ms/round")
        print(f"  ({ms1 / ms0:.2f}x; every read saw its write)")

        lag_under_indexing(conn, nodes(corpus, vectors), replica)
        conn.dispose()
        alone.dispose()
    finally:
        primary.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
