"""Retrieval quality of each query mode on BEIR SciFact (test split, 300 queries).

Loads the 5,183 abstracts with the offline default embedding model (all-MiniLM-L6-v2) into a
``MariaDBVectorStore`` and prints nDCG@10, recall@100 and query latency p50 for DEFAULT (dense),
TEXT_SEARCH (BM25) and each HYBRID fusion strategy, beside the published references.
Run: ``.venv/bin/python benchmarks/retrieval_quality.py``.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from common import cached_embeddings, doc_text, load_scifact, percentile, scratch_database
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

from kb.stores import MariaDBVectorStore

REFERENCES = [
    ("BM25 (Elasticsearch, BEIR paper)", 0.665),
    ("BM25 flat (Anserini)", 0.679),
    ("all-MiniLM-L6-v2 dense (MTEB)", 0.645),
    ("BM25 + cross-encoder (BEIR paper)", 0.688),
]


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int = 100) -> float:
    wanted = {doc for doc, rel in relevant.items() if rel > 0}
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def evaluate(store, queries, query_vectors, qrels, mode, **options) -> dict:
    """Quality from top-100 runs; latency from separate top-10 runs (what an application asks)."""
    ndcgs, recalls, latencies = [], [], []
    for query, vector in zip(queries, query_vectors):
        q = VectorStoreQuery(query_embedding=vector.tolist(), query_str=query["text"], similarity_top_k=100, mode=mode)
        result = store.query(q, **options)
        relevant = qrels[query["_id"]]
        ndcgs.append(ndcg_at(result.ids, relevant))
        recalls.append(recall_at(result.ids, relevant))
    for query, vector in zip(queries, query_vectors):
        q = VectorStoreQuery(query_embedding=vector.tolist(), query_str=query["text"], similarity_top_k=10, mode=mode)
        started = time.perf_counter()
        store.query(q, **options)
        latencies.append((time.perf_counter() - started) * 1000)
    return {
        "ndcg@10": float(np.mean(ndcgs)),
        "recall@100": float(np.mean(recalls)),
        "p50_ms": percentile(latencies, 50),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extra", action="store_true", help="also try fusion parameter variants")
    args = parser.parse_args()

    corpus, queries, qrels = load_scifact()
    vectors = cached_embeddings("scifact-corpus", [doc_text(d) for d in corpus])
    query_vectors = cached_embeddings("scifact-queries", [q["text"] for q in queries], query=True)
    nodes = [TextNode(id_=d["_id"], text=doc_text(d), embedding=v.tolist()) for d, v in zip(corpus, vectors)]

    runs = [
        ("DEFAULT (dense)", VectorStoreQueryMode.DEFAULT, {}),
        ("TEXT_SEARCH (BM25)", VectorStoreQueryMode.TEXT_SEARCH, {}),
        ("HYBRID weighted (default)", VectorStoreQueryMode.HYBRID, {"fusion": "weighted"}),
        ("HYBRID rrf", VectorStoreQueryMode.HYBRID, {"fusion": "rrf"}),
        ("HYBRID text_then_vector", VectorStoreQueryMode.HYBRID, {"fusion": "text_then_vector"}),
        ("HYBRID vector_then_text", VectorStoreQueryMode.HYBRID, {"fusion": "vector_then_text"}),
    ]
    if args.extra:
        runs += [
            ("HYBRID rrf both_boost=0.2", VectorStoreQueryMode.HYBRID, {"fusion": "rrf", "both_boost": 0.2}),
            ("HYBRID rrf k=20", VectorStoreQueryMode.HYBRID, {"fusion": "rrf", "rrf_k": 20}),
            ("HYBRID rrf weights 1:1.5", VectorStoreQueryMode.HYBRID, {"fusion": "rrf", "weights": (1.0, 1.5)}),
            ("HYBRID weighted +boost 0.2", VectorStoreQueryMode.HYBRID, {"fusion": "weighted", "both_boost": 0.2}),
            ("TEXT_SEARCH 100 candidates", VectorStoreQueryMode.TEXT_SEARCH, {"text_candidates": 100}),
            ("TEXT_SEARCH 1000 candidates", VectorStoreQueryMode.TEXT_SEARCH, {"text_candidates": 1000}),
        ]
    with scratch_database() as (url, _):
        store = MariaDBVectorStore.from_params(url, table_name="scifact", embed_dim=vectors.shape[1])
        started = time.perf_counter()
        store.add(nodes)
        print(
            f"SciFact test: {len(nodes)} documents loaded in {time.perf_counter() - started:.1f} s, "
            f"{len(queries)} queries, all-MiniLM-L6-v2 embeddings, kb's MariaDB 11.8\n"
        )
        print(f"  {'mode':<30} {'nDCG@10':>8} {'R@100':>7} {'p50 ms (top-10)':>16}")
        for name, mode, options in runs:
            r = evaluate(store, queries, query_vectors, qrels, mode, **options)
            print(f"  {name:<30} {r['ndcg@10']:8.3f} {r['recall@100']:7.3f} {r['p50_ms']:16.1f}", flush=True)
        store.connection.dispose()
    print("\npublished references (nDCG@10):")
    for name, value in REFERENCES:
        print(f"  {name:<36} {value:.3f}")


if __name__ == "__main__":
    main()
