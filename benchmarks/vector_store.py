"""Insert and query speed of kb's MariaDBVectorStore against its peer and the server's own limit.

The same SciFact MiniLM vectors (5,183 x 384, real embeddings) are loaded and queried in one run by:

* ``kb``: ``stores.MariaDBVectorStore`` (batched upserts, binary vectors), with its lexical (BM25)
  side, which the peer does not have;
* ``kb-dense``: the same with ``full_text=False`` (no lexical side: the peer's feature set);
* ``peer``: ``llama-index-vector-stores-mariadb`` 0.6.0 (its defaults: PyMySQL over TCP, ef_search 20);
* ``plain``: bare ``executemany`` of bytes into kb's tables (chunks + lexical stems) on one
  connection, with no upsert and no serialization: the server's own limit for that shape.

All three talk to the same private MariaDB 11.8 over TCP. Printed: insert rows/s, top-10 query p50
and p95, recall@10 against exact numpy search, and the ratios (machines are shared and noisy: the
ratios are what to read). Run: ``.venv/bin/python benchmarks/vector_store.py [--m 6 16]``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from common import cached_embeddings, doc_text, exact_top_k, load_scifact, percentile, scratch_database
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery

from kb.stores import MariaDBVectorStore

TOP_K = 10


def make_nodes(corpus, vectors) -> list[TextNode]:
    return [
        TextNode(
            id_=doc["_id"], text=doc_text(doc), metadata={"title": doc.get("title", "")}, embedding=vector.tolist()
        )
        for doc, vector in zip(corpus, vectors)
    ]


def measure_queries(run_query, queries: np.ndarray, truth: np.ndarray, ids: list[str]) -> dict:
    latencies, recalls = [], []
    for _ in range(3):  # warm the HNSW cache and the connection pool
        run_query(queries[0])
    for q, want in zip(queries, truth):
        started = time.perf_counter()
        got = run_query(q)
        latencies.append((time.perf_counter() - started) * 1000)
        expected = {ids[i] for i in want}
        recalls.append(len(expected & set(got)) / len(expected))
    return {
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "recall@10": float(np.mean(recalls)),
    }


def bench_kb(url, nodes, queries, truth, ids, m: int, full_text: bool = True) -> dict:
    store = MariaDBVectorStore.from_params(
        url, table_name=f"kb_m{m}_{int(full_text)}", embed_dim=len(nodes[0].embedding), hnsw_m=m, full_text=full_text
    )
    started = time.perf_counter()
    store.add(nodes)
    insert_s = time.perf_counter() - started
    stats = measure_queries(
        lambda q: store.query(VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=TOP_K)).ids,
        queries,
        truth,
        ids,
    )
    assert store.count() == len(nodes)
    store.connection.dispose()
    return {"rows/s": len(nodes) / insert_s, **stats}


def bench_plain(url, nodes, queries, truth, ids, m: int) -> dict:
    """kb's tables, created by kb, filled by bare executemany on one connection: no serialization,
    no upsert, stems computed before the clock starts. What the server itself takes."""
    from kb.stores.lexical import Analyzer, text_hash

    shape = MariaDBVectorStore.from_params(url, table_name=f"plain_m{m}", embed_dim=len(nodes[0].embedding), hnsw_m=m)
    conn = shape.connection
    rows = [
        (
            n.node_id,
            n.ref_doc_id,
            n.text,
            text_hash(n.text),
            json.dumps(n.metadata),
            "{}",
            np.asarray(n.embedding, dtype="<f4").tobytes(),
        )
        for n in nodes
    ]
    analyzer = Analyzer(min_token_size=int(conn.fetchall("SELECT @@innodb_ft_min_token_size")[0][0]))
    lexical = []
    for n in nodes:
        stems = analyzer.stems(n.text)
        lexical.append((n.node_id, " ".join(stems), len(stems), text_hash(n.text)))
    started = time.perf_counter()
    with conn.cursor() as cur:
        for i in range(0, len(rows), 1000):
            cur.executemany(
                f"INSERT INTO plain_m{m}_lexical (node_id, stems, length, text_hash) VALUES (?, ?, ?, ?)",
                lexical[i : i + 1000],
            )
            cur.executemany(
                f"INSERT INTO plain_m{m} (node_id, ref_doc_id, text, text_hash, metadata, node_content, "
                "embedding) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows[i : i + 1000],
            )
    insert_s = time.perf_counter() - started

    def query(q):
        return [
            r[0]
            for r in conn.fetchall(
                f"SELECT node_id FROM plain_m{m} ORDER BY VEC_DISTANCE_COSINE(embedding, ?) LIMIT {TOP_K}",
                (np.asarray(q, dtype="<f4").tobytes(),),
            )
        ]

    stats = measure_queries(query, queries, truth, ids)
    conn.dispose()
    return {"rows/s": len(rows) / insert_s, **stats}


def bench_peer(url, nodes, queries, truth, ids, m: int) -> dict:
    from llama_index.vector_stores.mariadb import MariaDBVectorStore as PeerStore

    peer = PeerStore.from_params(
        host=url.host,
        port=str(url.port),
        database=url.database,
        user=url.username,
        password=url.password,
        table_name=f"peer_m{m}",
        embed_dim=len(nodes[0].embedding),
        default_m=m,
    )
    started = time.perf_counter()
    peer.add(nodes)
    insert_s = time.perf_counter() - started
    stats = measure_queries(
        lambda q: peer.query(VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=TOP_K)).ids,
        queries,
        truth,
        ids,
    )
    peer.close()
    return {"rows/s": len(nodes) / insert_s, **stats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--m", type=int, nargs="+", default=[6, 16], help="HNSW M values to compare at")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N documents")
    args = parser.parse_args()

    corpus, query_rows, _ = load_scifact()
    if args.limit:
        corpus = corpus[: args.limit]
    vectors = cached_embeddings("scifact-corpus", [doc_text(d) for d in corpus])
    queries = cached_embeddings("scifact-queries", [q["text"] for q in query_rows], query=True)
    ids = [d["_id"] for d in corpus]
    truth = exact_top_k(vectors, queries, TOP_K)
    nodes = make_nodes(corpus, vectors)
    print(
        f"SciFact: {len(nodes)} vectors x {vectors.shape[1]}, {len(queries)} queries, top-{TOP_K}, "
        "all over TCP to kb's MariaDB 11.8"
    )

    results: dict[tuple[str, int], dict] = {}
    with scratch_database() as (_, tcp):
        for m in args.m:
            for name, bench in (
                ("plain", bench_plain),
                ("kb", bench_kb),
                ("peer", bench_peer),
                ("kb-dense", lambda *a: bench_kb(*a, full_text=False)),
            ):
                results[(name, m)] = bench(tcp, nodes, queries, truth, ids, m)
                r = results[(name, m)]
                print(
                    f"  M={m:<3} {name:<8} insert {r['rows/s']:8.0f} rows/s   query p50 {r['p50_ms']:6.2f} ms  "
                    f"p95 {r['p95_ms']:6.2f} ms   recall@10 {r['recall@10']:.3f}",
                    flush=True,
                )

    print("\nratios (same run, same M)")
    for m in args.m:
        kb, peer, plain = results[("kb", m)], results[("peer", m)], results[("plain", m)]
        dense = results[("kb-dense", m)]
        print(
            f"  M={m:<3} kb-dense/peer insert {dense['rows/s'] / peer['rows/s']:5.1f}x   "
            f"kb-dense/peer query p50 {dense['p50_ms'] / peer['p50_ms']:5.2f}"
        )
        print(
            f"  M={m:<3} kb/peer insert {kb['rows/s'] / peer['rows/s']:5.1f}x (target >= 5x)   "
            f"kb/plain insert {kb['rows/s'] / plain['rows/s']:5.0%} (target >= 80%)   "
            f"kb/peer query p50 {kb['p50_ms'] / peer['p50_ms']:5.2f} (target < 1)   "
            f"kb recall@10 {kb['recall@10']:.3f} (target >= 0.95)"
        )


if __name__ == "__main__":
    main()
