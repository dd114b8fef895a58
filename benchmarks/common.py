"""Shared by the benchmarks: SciFact, cached MiniLM embeddings, a scratch database, timing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SCIFACT = SHARED / "eval" / "scifact"
sys.path.insert(0, str(ROOT))

from kb.config import load_settings  # noqa: E402
from kb.server.database import private_server  # noqa: E402
from kb.stores.connection import MariaDBConnection, quote_identifier  # noqa: E402


def load_scifact() -> tuple[list[dict], list[dict], dict[str, dict[str, int]]]:
    """(corpus, test queries, qrels) of BEIR SciFact from ../shared/eval/scifact."""
    if not SCIFACT.is_dir():
        raise SystemExit(f"SciFact not found at {SCIFACT}: the benchmarks read ../shared/eval")
    corpus = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").open()]
    queries = [json.loads(line) for line in (SCIFACT / "queries.test.jsonl").open()]
    qrels: dict[str, dict[str, int]] = {}
    with (SCIFACT / "qrels" / "test.tsv").open() as handle:
        next(handle)
        for line in handle:
            qid, did, score = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, {})[did] = int(score)
    queries = [q for q in queries if q["_id"] in qrels]
    return corpus, queries, qrels


def doc_text(doc: dict) -> str:
    return f"{doc.get('title', '')}\n{doc['text']}".strip()


def embed_model():
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from kb.models.factories import local_embedding_path

    return HuggingFaceEmbedding(model_name=str(local_embedding_path()), device="cpu", embed_batch_size=64)


def cached_embeddings(name: str, texts: list[str], *, query: bool = False) -> np.ndarray:
    """MiniLM embeddings of ``texts``, computed once and kept under .kb/cache/benchmarks."""
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    path = ROOT / ".kb" / "cache" / "benchmarks" / f"{name}-{digest}.npy"
    if path.exists():
        return np.load(path)
    model = embed_model()
    started = time.perf_counter()
    if query:
        vectors = [model.get_query_embedding(t) for t in texts]
    else:
        vectors = model.get_text_embedding_batch(texts, show_progress=False)
    print(f"  embedded {len(texts)} {name} texts in {time.perf_counter() - started:.1f} s", flush=True)
    array = np.asarray(vectors, dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)
    return array


@contextlib.contextmanager
def scratch_database() -> Iterator[tuple]:
    """A new database on kb's private server: (admin URL with the database, TCP URL), dropped after."""
    server = private_server(load_settings(ROOT / "config.yaml", environ={}))
    server.start()
    admin = MariaDBConnection(server.admin_url())
    name = f"kbbench_{secrets.token_hex(4)}"
    admin.execute(f"CREATE DATABASE {quote_identifier(name)}")
    try:
        url = server.admin_url().set(database=name)
        tcp = url.set(host="127.0.0.1", port=server.port, query={})
        yield url, tcp
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {quote_identifier(name)}")
        admin.dispose()


def kept_database(name: str) -> Any:
    """A database on kb's private server kept between runs (an index worth building once, such as the
    1,278 MariaDB documentation pages): its admin URL. Drop it by hand to start over."""
    server = private_server(load_settings(ROOT / "config.yaml", environ={}))
    server.start()
    admin = MariaDBConnection(server.admin_url())
    try:
        admin.execute(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(name)} CHARACTER SET utf8mb4")
    finally:
        admin.dispose()
    return server.admin_url().set(database=name)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def exact_top_k(corpus: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact cosine top-k indexes per query (the recall reference)."""
    c = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = q @ c.T
    return np.argsort(-scores, axis=1)[:, :k]
