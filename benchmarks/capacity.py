"""Inputs of docs/scaling.md: how big MariaDB's HNSW index is per chunk, and insert/query rates per node.

For M in (6, 16, 32) and dimensions 384 (all-MiniLM-L6-v2) and 1536 (text-embedding-3-small): 5,000
unit vectors (SciFact's MiniLM vectors for 384, random ones for 1536) into a kb vector store on the
private server; the vector index's own file (``<table>#i#01.ibd``, the graph with its stored vectors)
per row, extrapolated to a million chunks; insert rows/s; dense top-10 p50 at ef_search 40, one
client. ``mhnsw_max_cache_size`` should hold the graph: about the index file's size.

Run: .venv/bin/python benchmarks/capacity.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, cached_embeddings, doc_text, load_scifact, percentile
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery

from kb.config import load_settings
from kb.server.database import private_server
from kb.stores.connection import MariaDBConnection
from kb.stores.vector_store import MariaDBVectorStore

ROWS = 5000


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    server = private_server(load_settings(ROOT / "config.yaml", environ={}))
    server.start()
    corpus, _, _ = load_scifact()
    minilm = cached_embeddings("scifact-corpus", [doc_text(d) for d in corpus])[:ROWS]
    rng = np.random.default_rng(0)
    vectors = {384: unit(minilm), 1536: unit(rng.normal(size=(ROWS, 1536)))}
    queries = {dim: unit(rng.normal(size=(200, dim))) for dim in vectors}
    conn = MariaDBConnection(server.app_url(), pool_size=2)
    admin = MariaDBConnection(server.admin_url(), pool_size=1)
    print(f"{ROWS:,} vectors per row of the table; index file = the HNSW graph with its vectors")
    print(
        f"{'dim':>5} {'M':>3} {'index bytes/chunk':>18} {'GB per 1M chunks':>17} {'insert rows/s':>14} {'query p50 ms':>13}"
    )
    for dim, matrix in vectors.items():
        for m in (6, 16, 32):
            table = f"kb_capacity_{dim}_{m}"
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            store = MariaDBVectorStore(conn, table_name=table, embed_dim=dim, hnsw_m=m, full_text=False)
            nodes = [TextNode(id_=f"c{i}", text=f"chunk {i}", embedding=row.tolist()) for i, row in enumerate(matrix)]
            started = time.perf_counter()
            store.add(nodes)
            rate = ROWS / (time.perf_counter() - started)
            latencies = []
            for q in queries[dim]:
                t = time.perf_counter()
                store.query(VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=10))
                latencies.append((time.perf_counter() - t) * 1000)
            admin.execute(f"FLUSH TABLES kb.{table}")  # the index's pages on disk
            files = list((server.datadir / "kb").glob(f"{table}#i#*.ibd"))
            size = sum(f.stat().st_size for f in files)
            per_chunk = size / ROWS
            print(
                f"{dim:>5} {m:>3} {per_chunk:>18,.0f} {per_chunk * 1e6 / 1e9:>17.2f} {rate:>14,.0f} "
                f"{percentile(latencies, 50):>13.2f}",
                flush=True,
            )
            conn.execute(f"DROP TABLE {table}")
    conn.dispose()
    admin.dispose()


if __name__ == "__main__":
    main()
